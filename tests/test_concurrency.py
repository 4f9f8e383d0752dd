"""Concurrency limits: the limiter's rules, and throttling through the real Invoke API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from edge.invoke.concurrency import NODE_LIMIT, RESERVED_LIMIT, ConcurrencyLimiter
from sandbox.runtime.errors import FunctionThrottled
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

# -- the limiter's rules (spec §10) ---------------------------------------------------------


def _fill(limiter: ConcurrencyLimiter, held: list[str]) -> ExitStack:
    """Hold one lease per name in `held` (until the returned stack is closed)."""
    stack = ExitStack()
    for name in held:
        stack.enter_context(limiter.acquire(name))
    return stack


@pytest.mark.parametrize(
    ("node", "reserved", "held", "name", "reason"),
    [
        pytest.param(10, {"a": 2}, ["a", "a"], "a", RESERVED_LIMIT, id="reserved-is-a-cap"),
        pytest.param(10, {"a": 0}, [], "a", RESERVED_LIMIT, id="reserved-zero-throttles-all"),
        pytest.param(3, {}, ["a", "b", "c"], "d", NODE_LIMIT, id="node-limit-shared"),
        pytest.param(
            5, {"a": 3}, ["b", "c"], "d", NODE_LIMIT, id="reservation-carved-out-of-the-node"
        ),
    ],
)
def test_throttled(
    node: int, reserved: dict[str, int], held: list[str], name: str, reason: str
) -> None:
    limiter = ConcurrencyLimiter(node, reserved)
    with _fill(limiter, held), pytest.raises(FunctionThrottled) as caught, limiter.acquire(name):
        pass
    assert caught.value.reason == reason
    assert limiter.throttles == {(name, reason): 1}


@pytest.mark.parametrize(
    ("node", "reserved", "held", "name"),
    [
        pytest.param(5, {"a": 3}, ["b", "c"], "a", id="reserved-room-survives-a-busy-node"),
        pytest.param(5, {"a": 3}, ["a", "a", "a"], "b", id="others-keep-the-unreserved-part"),
        pytest.param(2, {}, ["a"], "b", id="under-the-node-limit"),
    ],
)
def test_admitted(node: int, reserved: dict[str, int], held: list[str], name: str) -> None:
    limiter = ConcurrencyLimiter(node, reserved)
    with _fill(limiter, held):
        with limiter.acquire(name):
            assert limiter.in_flight(name) == held.count(name) + 1
        assert limiter.in_flight(name) == held.count(name)


def test_release_frees_room_and_tells_listeners() -> None:
    limiter = ConcurrencyLimiter(10, {"a": 1})
    released: list[int] = []
    limiter.add_release_listener(lambda: released.append(limiter.in_flight("a")))
    with limiter.acquire("a"):
        assert limiter.available("a") == 0
    assert limiter.available("a") == 1
    assert released == [0]


def test_a_failing_invocation_gives_its_slot_back() -> None:
    limiter = ConcurrencyLimiter(1)
    with pytest.raises(RuntimeError), limiter.acquire("a"):
        raise RuntimeError("function failed")
    with limiter.acquire("b"):
        assert limiter.total_in_flight == 1


# -- through the real server ----------------------------------------------------------------

RESERVED = 3
EXTRA = 2


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeProcess, Path]]:
    tmp = tmp_path_factory.mktemp("concurrency")
    # The functions write their marks where the test reads them: their one writable directory.
    shared = [str(shared_directory(tmp))]
    functions = function_table(
        "gated", "gated", reserved_concurrency=RESERVED, timeout=30, writable_paths=shared
    ) + function_table(
        "worker",
        "gated",
        reserved_concurrency=2,
        timeout=30,
        on_success=f"file:{tmp / 'worker-success.jsonl'}",
        writable_paths=shared,
    )
    process = start_edge(edge_config(tmp, functions), tmp)
    yield process, tmp
    process.stop()


def _marks_and_gate(tmp: Path, test_tmp: Path) -> tuple[Path, Path]:
    """This test's marks and gate files, in the functions' writable directory."""
    shared = tmp / "shared"
    return shared / f"marks-{test_tmp.name}.jsonl", shared / f"gate-{test_tmp.name}"


def _starts(marks: Path) -> list[Any]:
    return [line for line in read_jsonl(marks) if "start" in line]


def test_reserved_concurrency_throttles_exactly_the_excess(
    edge: tuple[EdgeProcess, Path], tmp_path: Path
) -> None:
    process, tmp = edge
    client = lambda_client(process)
    marks, gate = _marks_and_gate(tmp, tmp_path)

    def call(number: int) -> Any:
        event = {"id": number, "marks": str(marks), "gate": str(gate)}
        try:
            response = client.invoke(FunctionName="gated", Payload=json.dumps(event).encode())
        except botocore.exceptions.ClientError as error:
            return error.response
        return json.loads(response["Payload"].read())["id"]

    with ThreadPoolExecutor(RESERVED + EXTRA) as pool:
        futures = [pool.submit(call, n) for n in range(RESERVED + EXTRA)]
        # The admitted invocations hold their slots until the gate opens.
        wait_until(lambda: len(_starts(marks)) == RESERVED, what="admitted invocations")
        wait_until(lambda: sum(f.done() for f in futures) == EXTRA, what="429s")
        gate.touch()
        results = [f.result() for f in futures]
    throttled = [r for r in results if isinstance(r, dict)]
    assert [r["ResponseMetadata"]["HTTPStatusCode"] for r in throttled] == [429] * EXTRA
    assert {r["Reason"] for r in throttled} == {"ReservedFunctionConcurrentInvocationLimitExceeded"}
    ran = sorted(r for r in results if isinstance(r, int))
    assert ran == sorted(s["start"] for s in _starts(marks))
    assert len(ran) == RESERVED


def test_async_events_wait_for_room_and_none_is_lost(
    edge: tuple[EdgeProcess, Path], tmp_path: Path
) -> None:
    process, tmp = edge
    client = lambda_client(process)
    marks, gate = _marks_and_gate(tmp, tmp_path)
    success = tmp / "worker-success.jsonl"
    blockers = 2

    def block(number: int) -> Any:
        event = {"id": f"sync-{number}", "marks": str(marks), "gate": str(gate)}
        return client.invoke(FunctionName="worker", Payload=json.dumps(event).encode())

    events = 8
    with ThreadPoolExecutor(blockers) as pool:
        held = [pool.submit(block, n) for n in range(blockers)]
        wait_until(lambda: len(_starts(marks)) == blockers, what="blocking invocations")
        for number in range(events):
            event = {"id": f"async-{number}", "marks": str(marks)}
            response = client.invoke(
                FunctionName="worker", InvocationType="Event", Payload=json.dumps(event).encode()
            )
            assert response["StatusCode"] == 202
        # No room: every accepted event is still queued while the slots are held.
        with httpx.Client(base_url=process.admin_url) as http:
            metrics = http.get("/metrics").text
        assert re.search(r"^edge_async_queue_depth 8\.0$", metrics, re.MULTILINE)
        assert len(_starts(marks)) == blockers
        gate.touch()
        assert all(f.result()["StatusCode"] == 200 for f in held)
    records = wait_until(
        lambda: (r := read_jsonl(success)) and len(r) >= events and r, what="all async events"
    )
    ran = sorted(r["responsePayload"]["id"] for r in records)
    assert ran == sorted(f"async-{n}" for n in range(events))
    assert all(r["requestContext"]["condition"] == "Success" for r in records)


# -- a node's worker processes counting as one (SharedCounts) --------------------------------


def test_a_dead_process_count_is_reclaimed_before_throttling(tmp_path: Path) -> None:
    """A worker that died holding invocations does not keep the node's capacity."""
    import os
    import warnings

    from edge.invoke.shared_counts import SharedCounts

    limiter = ConcurrencyLimiter(10, {"a": 1}, shared=SharedCounts(tmp_path / "counts", 2))
    with warnings.catch_warnings():  # the child only counts and exits (Python 3.12 warns)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child takes the only slot and dies holding it
        limiter.admit("a")
        os._exit(0)
    os.waitpid(pid, 0)
    assert limiter.available("a") == 0  # counted, while nobody has asked for room
    with limiter.acquire("a"):
        with pytest.raises(FunctionThrottled) as throttled:
            limiter.check("a")
        assert throttled.value.reason == RESERVED_LIMIT
    assert limiter.available("a") == 1
