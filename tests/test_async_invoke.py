"""Asynchronous invocation: retry rules, records, the durable queue, and the real server
(destinations, retries, reserved concurrency 0, and a SIGKILL in the middle of a run)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config import FunctionConfig, InvokeConfig
from edge.invoke.concurrency import ConcurrencyLimiter
from edge.invoke.dispatcher import Dispatcher
from edge.invoke.queue import EventQueue, NewEvent
from edge.invoke.records import Outcome, invocation_record, iso_timestamp
from edge.invoke.retry import RetryPolicy
from sandbox.runtime.errors import FunctionError
from sandbox.runtime.result import InvocationResult
from tests.conftest import EdgeProcess
from tests.invoke_functions.harness import (
    edge_config,
    function_table,
    lambda_client,
    read_jsonl,
    shared_directory,
    start_edge,
    wait_until,
)

# The shape of AWS's sample record (spec §9.1, events/async-destination-record.json).
SAMPLE_KEYS = {
    "version",
    "timestamp",
    "requestContext",
    "requestPayload",
    "responseContext",
    "responsePayload",
}
SAMPLE_CONTEXT_KEYS = {"requestId", "functionArn", "condition", "approximateInvokeCount"}

# -- rules (spec §9) ------------------------------------------------------------------------

POLICY = RetryPolicy(2, 3600.0, (60.0, 120.0))


@pytest.mark.parametrize(
    ("errors", "now", "due"),
    [
        pytest.param(1, 1000.0, 1060.0, id="first-retry-after-1-min"),
        pytest.param(2, 1000.0, 1120.0, id="second-retry-after-2-min"),
        pytest.param(3, 1000.0, None, id="retries-exhausted"),
        pytest.param(1, 3580.0, 3600.0, id="retry-capped-at-max-age"),
    ],
)
def test_retry_after_function_error(errors: int, now: float, due: float | None) -> None:
    assert POLICY.after_function_error(errors, enqueued_at=0.0, now=now) == due


def test_no_retries_when_maximum_retry_attempts_is_zero() -> None:
    assert RetryPolicy(0, 3600.0).after_function_error(1, 0.0, 10.0) is None


@pytest.mark.parametrize(
    ("throttles", "now", "due"),
    [
        pytest.param(1, 100.0, 101.0, id="first-after-1s"),
        pytest.param(4, 100.0, 108.0, id="doubling"),
        pytest.param(30, 100.0, 400.0, id="capped-at-5-min"),
        pytest.param(30, 3500.0, 3600.0, id="capped-at-max-age"),
    ],
)
def test_throttle_backoff(throttles: int, now: float, due: float) -> None:
    assert POLICY.after_throttle(throttles, enqueued_at=0.0, now=now) == due


def test_record_has_the_shape_of_aws_sample() -> None:
    record = json.loads(
        invocation_record(
            request_id="r-1",
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
            condition="RetriesExhausted",
            invoke_count=3,
            request_payload=b'{"ORDER_IDS": []}',
            outcome=Outcome(200, b'{"errorMessage": "boom"}', "Unhandled"),
            now=1573755365.568,
        )
    )
    assert set(record) == SAMPLE_KEYS
    assert set(record["requestContext"]) == SAMPLE_CONTEXT_KEYS
    assert record["version"] == "1.0"
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["timestamp"] == "2019-11-14T18:16:05.568Z"
    assert record["requestPayload"] == {"ORDER_IDS": []}


def test_success_record_has_no_function_error() -> None:
    record = json.loads(
        invocation_record(
            request_id="r",
            function_arn="arn",
            condition="Success",
            invoke_count=1,
            request_payload=b"{}",
            outcome=Outcome(200, b'"ok"'),
            now=0.0,
        )
    )
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == "ok"


def test_iso_timestamp_keeps_milliseconds() -> None:
    assert iso_timestamp(0.0015) == "1970-01-01T00:00:00.001Z"


# -- the queue and the dispatcher, in process -----------------------------------------------


def test_queue_requeues_running_events_after_a_crash(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, list[str], int]:
        first = EventQueue(tmp_path / "q.sqlite3")
        await first.open()
        for n in range(3):
            await first.put(NewEvent(f"id-{n}", "f", "$LATEST", b"{}"), now=10.0)
        claimed = await first.claim({"f": 2}, {}, now=10.0)
        await first.finish(claimed[0], deliveries=[("file:x.jsonl", b"{}")], now=11.0)
        await first.close()  # claimed[1] is left running, as a SIGKILL would leave it
        second = EventQueue(tmp_path / "q.sqlite3")
        recovered = await second.open()
        again = await second.claim({"f": 10}, {}, now=12.0)
        stats = await second.stats()
        await second.close()
        return recovered, [e.request_id for e in again], stats.outbox

    recovered, again, outbox = asyncio.run(scenario())
    assert recovered == 1
    assert again == ["id-1", "id-2"]  # the finished event never comes back
    assert outbox == 1


class ManualClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_event_too_old_goes_to_on_failure_with_its_last_error(tmp_path: Path) -> None:
    functions = {
        "f": FunctionConfig(
            handler="m.h", maximum_event_age=60, on_failure="file:/dev/null/failures.jsonl"
        )
    }
    clock = ManualClock(1000.0)
    attempts: list[str] = []

    async def invoke(name: str, payload: bytes, request_id: str) -> InvocationResult:
        attempts.append(request_id)
        raise FunctionError({"errorType": "ValueError", "errorMessage": "bad"})

    async def run_until(dispatcher: Dispatcher, done: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(dispatcher.run())
            await done.wait()
            await dispatcher.stop()

    async def scenario() -> tuple[Any, int]:
        queue = EventQueue(tmp_path / "q.sqlite3")
        await queue.open()
        limiter = ConcurrencyLimiter(10)
        attempted = asyncio.Event()

        async def first_attempt(name: str, payload: bytes, request_id: str) -> InvocationResult:
            try:
                return await invoke(name, payload, request_id)
            finally:
                attempted.set()

        settings = InvokeConfig()  # retry after 60 s: past the event's maximum age
        await queue.put(NewEvent("r-1", "f", "$LATEST", b'{"n": 1}'), now=clock())
        dispatcher = Dispatcher(queue, limiter, first_attempt, functions, settings, clock=clock)
        await run_until(dispatcher, attempted)
        clock.now += 61
        finished = asyncio.Event()
        later = Dispatcher(
            queue, limiter, invoke, functions, settings, on_finished=finished.set, clock=clock
        )
        await run_until(later, finished)
        deliveries = await queue.due_deliveries(clock())
        stats = await queue.stats()
        await queue.close()
        return deliveries, stats.depth

    deliveries, depth = asyncio.run(scenario())
    assert attempts == ["r-1"]  # tried once; too old before the retry was due
    assert depth == 0
    (delivery,) = deliveries
    record = json.loads(delivery.body)
    assert delivery.target == "file:/dev/null/failures.jsonl"
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "bad"


# -- the real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, Path]]:
    tmp = tmp_path_factory.mktemp("async")
    shared = [str(shared_directory(tmp))]
    functions = "".join(
        [
            function_table("echo", "echo", on_success=f"file:{tmp / 'success.jsonl'}"),
            function_table(
                "flaky",
                "flaky",
                on_failure=f"file:{tmp / 'failure.jsonl'}",
                dead_letter=f"file:{tmp / 'dlq.jsonl'}",
                writable_paths=shared,
            ),
            function_table(
                "closed",
                "echo",
                reserved_concurrency=0,
                on_failure=f"file:{tmp / 'closed-failure.jsonl'}",
            ),
            function_table("chained", "echo", on_success="function:sink"),
            function_table(
                "sink",
                "sink",
                environment={"SINK": str(tmp / "shared" / "sink.jsonl")},
                writable_paths=shared,
            ),
        ]
    )
    process = start_edge(edge_config(tmp, functions, "retry_delays = [0.05, 0.1]"), tmp)
    yield process, tmp
    process.stop()


def _send(client: Any, name: str, event: Any) -> str:
    response = client.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode()
    )
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    return str(response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"])


def _records_for(path: Path, request_id: str) -> list[Any]:
    return [r for r in read_jsonl(path) if r["requestContext"]["requestId"] == request_id]


def test_async_success_reaches_the_file_destination(server: tuple[EdgeProcess, Path]) -> None:
    process, tmp = server
    request_id = _send(lambda_client(process), "echo", {"order": 7})
    (record,) = wait_until(lambda: _records_for(tmp / "success.jsonl", request_id), what="record")
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["functionArn"].endswith(":function:echo:$LATEST")
    assert record["requestPayload"] == {"order": 7}
    assert record["responsePayload"] == {"echo": {"order": 7}, "request_id": request_id}
    assert "functionError" not in record["responseContext"]


def test_retries_then_on_failure_and_dead_letter(
    server: tuple[EdgeProcess, Path], tmp_path: Path
) -> None:
    process, tmp = server
    marks = tmp / "shared" / f"attempts-{tmp_path.name}.jsonl"
    event = {"id": "e-1", "marks": str(marks)}
    request_id = _send(lambda_client(process), "flaky", event)
    (record,) = wait_until(lambda: _records_for(tmp / "failure.jsonl", request_id), what="record")
    assert len(read_jsonl(marks)) == 3  # the first attempt and two retries
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    dead = wait_until(
        lambda: [
            m
            for m in read_jsonl(tmp / "dlq.jsonl")
            if m["messageAttributes"]["RequestID"]["StringValue"] == request_id
        ],
        what="dead letter",
    )
    assert json.loads(dead[0]["body"]) == event
    assert dead[0]["messageAttributes"]["ErrorCode"]["StringValue"] == "200"
    assert dead[0]["messageAttributes"]["ErrorMessage"]["StringValue"] == "attempt failed for e-1"


def test_reserved_concurrency_zero_goes_straight_to_on_failure(
    server: tuple[EdgeProcess, Path],
) -> None:
    process, tmp = server
    request_id = _send(lambda_client(process), "closed", {"x": 1})
    (record,) = wait_until(
        lambda: _records_for(tmp / "closed-failure.jsonl", request_id), what="record"
    )
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["responseContext"]["statusCode"] == 429
    assert record["responsePayload"]["Reason"] == (
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    )


def test_function_destination_receives_the_record(server: tuple[EdgeProcess, Path]) -> None:
    process, tmp = server
    request_id = _send(lambda_client(process), "chained", {"step": 1})
    (record,) = wait_until(
        lambda: _records_for(tmp / "shared" / "sink.jsonl", request_id), what="record"
    )
    assert record["requestContext"]["condition"] == "Success"
    assert record["responsePayload"]["echo"] == {"step": 1}


# -- the crash test -------------------------------------------------------------------------

FAST = 4
TOTAL = 10
SLOTS = 2


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _environment_alive(mark: dict[str, Any]) -> bool:
    """Whether the environment that wrote `mark` still has a live process. A sandboxed one
    has a PID namespace of its own, its pid inside it meaningless here: look for any process
    in that namespace."""
    if mark["pidns"] == os.readlink("/proc/self/ns/pid"):
        return _alive(mark["pid"])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "pid") == mark["pidns"] and _alive(int(entry.name)):
                    return True
            except OSError:
                continue
    return False


def test_sigkill_loses_no_event_and_reruns_no_success(tmp_path: Path) -> None:
    shared = shared_directory(tmp_path)
    marks, gate, success = shared / "marks.jsonl", shared / "gate", tmp_path / "success.jsonl"
    config = edge_config(
        tmp_path,
        function_table(
            "gated",
            "gated",
            reserved_concurrency=SLOTS,
            timeout=30,
            on_success=f"file:{success}",
            writable_paths=[str(shared)],
        ),
    )
    first = start_edge(config, tmp_path)
    client = lambda_client(first)
    for number in range(TOTAL):
        event: dict[str, Any] = {"id": number, "marks": str(marks)}
        if number >= FAST:
            event["gate"] = str(gate)  # these block until the gate opens
        _send(client, "gated", event)

    def starts() -> list[Any]:
        return [m for m in read_jsonl(marks) if "start" in m]

    # The fast events are done and recorded; the next two are blocked mid-run.
    wait_until(lambda: len(read_jsonl(success)) >= FAST, what="fast events")
    wait_until(lambda: len([s for s in starts() if s["start"] >= FAST]) == SLOTS, what="blocked")
    blocked = [s for s in starts() if s["start"] >= FAST]
    os.kill(first.pid, signal.SIGKILL)
    first.stop()
    # Their environments die with the edge (the zygote kills them when its host is gone).
    wait_until(lambda: not any(_environment_alive(s) for s in blocked), what="environments gone")

    gate.touch()
    second = start_edge(config, tmp_path)
    try:
        wait_until(
            lambda: {r["responsePayload"]["id"] for r in read_jsonl(success)} == set(range(TOTAL)),
            timeout=20,
            what="every event",
        )
    finally:
        second.stop()
    done = [m["done"] for m in read_jsonl(marks) if "done" in m]
    assert sorted(done) == list(range(TOTAL))  # each ran to success exactly once
    restarted = [s["start"] for s in starts()]
    for interrupted in blocked:
        assert restarted.count(interrupted["start"]) == 2  # run again after the restart
    assert "were running when the edge stopped" in second.log
