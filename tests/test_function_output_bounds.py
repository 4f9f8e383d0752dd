"""Function output and results are bounded on the host side, whatever the function does.

A function may print without end, log 100 MB messages, return a 10 MB result, or write frames of
its own to the socket its runtime answers on. In each case the edge holds at most about one
legitimate answer, the log keeps the output's tail behind a line saying how much was dropped,
the caller gets the answer Lambda gives (Function.ResponseSizeTooLarge for a result over the
limit), and the next invocation works.

Memory is read from /proc: `VmHWM` is reset through `clear_refs` ("5") before each hostile
invocation, so the peak after it is that invocation's alone.

The bound, `GROWTH_BOUND_MIB`: the most a legitimate invocation makes the host hold is a result
at the 6 MiB limit about twice (the bytes being received and the payload) and a 1 MiB log a few
times over (bytes, text, the log line written out): ~16 MiB. 32 MiB leaves room for the
allocator's slack, and is well below what these cases cost before the host bounded them
(measured: +80 MiB for WASI stdio, +201 MiB for WASM log messages, +300 MiB for a forged
100 MiB log, +750 MiB for a forged 250 MiB result). They cost 0-12 MiB now.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.python_worker import marshaller
from sandbox.python_worker.framing import HEADER, Frame, FrameDecoder, FrameLimits, encode_frame
from sandbox.python_worker.function import PythonFunctionPool
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.output import OutputTail
from sandbox.python_worker.spec import FunctionSpec
from sandbox.runtime.errors import FunctionCrashed, FunctionError, FunctionTimeout
from sandbox.runtime.limits import MIB
from sandbox.wasm import WasmEngine, WasmFunction, WasmFunctionSpec
from tests.conftest import EdgeProcess, vm_kib
from tests.origin_app import OriginServer

FUNCTIONS = Path(__file__).resolve().parent / "functions"
WASM = Path(__file__).resolve().parent / "wasm"
GROWTH_BOUND_MIB = 32
RESULT_LIMIT = 6 * MIB  # Lambda's synchronous response limit (spec §14)
LOG_LIMIT = MIB
MARKER = re.compile(r"\[\.\.\. (\d+) bytes of output dropped \.\.\.\]\n")


class PeakGrowth:
    """`with PeakGrowth(pid) as growth:` ... `growth.mib`: how far process `pid`'s resident set
    rose, at its peak inside the block, above where it was when the block began."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mib = 0.0
        self._before_kib = 0

    def __enter__(self) -> PeakGrowth:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        self._before_kib = vm_kib(self.pid, "VmRSS")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.mib = (vm_kib(self.pid, "VmHWM") - self._before_kib) / 1024


def dropped_and_kept(log: str) -> tuple[int, str]:
    """(the count in the log's dropped-output marker, the text after the marker)."""
    found = MARKER.search(log)
    assert found is not None, f"no dropped-output marker in {log[:300]!r}"
    return int(found[1]), log[found.end() :]


# -- the frame decoder keeps sections within its limits (pure) -----------------------------


@settings(max_examples=60)
@given(
    frames=st.lists(
        st.tuples(st.integers(2, 4), st.binary(max_size=20), st.binary(max_size=40)),
        min_size=1,
        max_size=3,
    ),
    log_sizes=st.lists(st.integers(0, 60), min_size=3, max_size=3),
)
def test_a_log_over_the_limit_keeps_its_tail_at_every_split(
    frames: list[tuple[int, bytes, bytes]], log_sizes: list[int]
) -> None:
    limits = FrameLimits(max_meta_bytes=20, max_log_bytes=16, max_blob_bytes=40)
    logs = [bytes(range(size)) for size in log_sizes]
    wire = b"".join(
        encode_frame(kind, meta, blob, log)
        for (kind, meta, blob), log in zip(frames, logs, strict=False)
    )
    expected = [
        Frame(kind, meta, blob, log[-16:] if len(log) > 16 else log, max(0, len(log) - 16))
        for (kind, meta, blob), log in zip(frames, logs, strict=False)
    ]
    for split in range(len(wire) + 1):
        decoder = FrameDecoder(limits)
        assert decoder.feed(wire[:split]) + decoder.feed(wire[split:]) == expected
        assert decoder.pending_bytes == 0


def test_the_decoder_never_holds_a_skipped_log() -> None:
    decoder = FrameDecoder(FrameLimits(max_meta_bytes=64, max_log_bytes=MIB, max_blob_bytes=64))
    header = HEADER.pack(3, 2, 100 * MIB, 2)  # kind, meta, log and blob lengths
    assert decoder.feed(header + b"{}") == []
    chunk = b"y" * MIB
    for _ in range(99):
        decoder.feed(chunk)
        assert decoder.pending_bytes <= 2 + MIB
    (frame,) = decoder.feed(chunk + b"ok")
    assert (frame.blob, len(frame.log), frame.log_dropped) == (b"ok", MIB, 99 * MIB)


# -- the marshaller: orjson's bytes, without orjson's reservation (pure) -------------------

_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 9), children, max_size=6)
    ),
    max_leaves=40,
)


@pytest.fixture
def tiny_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of a few bytes, so that small values take every path of the piecewise encoder."""
    monkeypatch.setattr(marshaller, "SMALL_BYTES", 8)
    monkeypatch.setattr(marshaller, "STRING_SLICE_CHARS", 3)


_OPTIONS = orjson.OPT_NON_STR_KEYS


@settings(max_examples=300)
@given(value=_JSON_VALUES)
@pytest.mark.usefixtures("tiny_pieces")
def test_piecewise_encoding_writes_what_orjson_writes(value: Any) -> None:
    expected = orjson.dumps(value, option=_OPTIONS)
    assert marshaller.marshal_within(value, 1 << 30, default=str, option=_OPTIONS) == expected
    # Over the limit: the exact size, never the bytes.
    if len(expected) > 1:
        limit = len(expected) - 1
        assert marshaller.marshal_within(value, limit, default=str, option=_OPTIONS) == limit + 1


@pytest.mark.usefixtures("tiny_pieces")
@pytest.mark.parametrize("depth", [253, 254, 255, 300])
def test_piecewise_encoding_keeps_orjsons_nesting_limit(depth: int) -> None:
    value: Any = "a long enough string"
    for _ in range(depth):
        value = [value, "padding"]
    try:
        expected: bytes | str = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        expected = str(exc)
    try:
        got: bytes | int | str = marshaller.marshal_within(value, 1 << 30, default=str, option=0)
    except orjson.JSONEncodeError as exc:
        got = str(exc)
    assert got == expected


def test_a_result_referring_to_itself_is_a_marshal_error() -> None:
    looped: list[Any] = ["x" * 100_000]
    looped.append(looped)
    with pytest.raises(orjson.JSONEncodeError, match="Recursion limit reached"):
        marshaller.marshal_within(looped, RESULT_LIMIT, default=str, option=0)


# -- the environment's stdout: a file that stays near the log limit ------------------------


def test_stdout_file_is_compacted_to_its_tail_and_counts_what_it_dropped() -> None:
    fd = os.memfd_create("bounds-test")
    try:
        tail = OutputTail(fd, keep_bytes=1000, check_every_bytes=100)
        written = bytearray()
        largest = 0
        for index in range(400):
            piece = f"{index:04d}:".encode() + b"x" * (index % 37)
            if index % 50 == 49:
                piece *= 40  # now and then a write longer than what is kept
            tail.write(fd, piece)
            written += piece
            largest = max(largest, os.fstat(fd).st_size)
        assert largest <= 2 * 1000 + 100  # the ceiling, give or take one unchecked stretch
        drained = tail.drain(1000)
        dropped, kept = dropped_and_kept(drained.decode())
        assert kept.encode() == written[-1000:]
        assert dropped == len(written) - 1000
        assert os.fstat(fd).st_size == 0
        tail.write(fd, b"next invocation\n")
        assert tail.drain(1000) == b"next invocation\n"
    finally:
        os.close(fd)


# -- Python environments (real processes) --------------------------------------------------


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def zygote(runner: asyncio.Runner) -> Iterator[Zygote]:
    zygote = runner.run(Zygote.launch(code_dirs=[FUNCTIONS]))
    yield zygote
    runner.run(zygote.aclose())


class Pool:
    """One pool over `bounds.<handler>`, driven from the test's thread."""

    def __init__(self, runner: asyncio.Runner, pool: PythonFunctionPool) -> None:
        self.runner = runner
        self.pool = pool
        self.logs: list[str] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.runner.run(self.pool.invoke(orjson.dumps(event)))

    def failure(self, event: dict[str, Any]) -> FunctionError:
        with pytest.raises(FunctionError) as failed:
            self.invoke(event)
        return failed.value


@pytest.fixture
def pool_of(runner: asyncio.Runner, zygote: Zygote) -> Iterator[Callable[..., Pool]]:
    pools: list[PythonFunctionPool] = []

    def make(handler: str, **overrides: Any) -> Pool:
        spec = FunctionSpec(
            name="bounds",
            handler=f"bounds.{handler}",
            code_dir=FUNCTIONS,
            timeout_seconds=overrides.pop("timeout_seconds", 10.0),
            **overrides,
        )
        logs: list[str] = []
        pool = PythonFunctionPool(spec, log_sink=logs.append, zygote=zygote)
        runner.run(pool.start())
        pools.append(pool)
        driver = Pool(runner, pool)
        driver.logs = logs
        return driver

    yield make
    for pool in pools:
        runner.run(pool.aclose())


def test_a_forged_result_over_the_limit_is_refused_from_its_header(
    pool_of: Callable[..., Pool],
) -> None:
    pool = pool_of("forge_large_result")
    with PeakGrowth(os.getpid()) as growth:
        error = pool.failure({"mb": 250})
    assert growth.mib < GROWTH_BOUND_MIB
    # What Lambda answers a runtime that posts a response over the limit.
    assert error.error_type == "Function.ResponseSizeTooLarge"
    assert error.error_message == (
        f"Response payload size ({250 * MIB} bytes) exceeded maximum allowed payload size "
        f"({RESULT_LIMIT} bytes)."
    )
    assert "Function.ResponseSizeTooLarge" in pool.logs[-1]
    assert pool.invoke({"mb": 0}).payload == b"null"  # a fresh environment answers


def test_a_forged_answer_that_cannot_be_read_is_the_environments_crash(
    pool_of: Callable[..., Pool],
) -> None:
    pool = pool_of("forge_garbage_answer")
    error = pool.failure({})
    assert isinstance(error, FunctionCrashed)
    assert error.error_type == "Runtime.ExitError"
    assert "broke the runtime protocol" in error.error_message
    assert pool.pool.stats().environments == 0  # killed, not reused


def test_a_forged_log_keeps_only_its_tail(pool_of: Callable[..., Pool]) -> None:
    pool = pool_of("forge_large_log")
    with PeakGrowth(os.getpid()) as growth:
        result = pool.invoke({"mb": 100})
    assert growth.mib < GROWTH_BOUND_MIB
    assert orjson.loads(result.payload) == {"forged": True}
    log = pool.logs[-1]
    dropped, kept = dropped_and_kept(log)
    output = kept[: kept.index("END RequestId")]
    assert set(output) == {"y"}
    assert dropped + len(output) == 100 * MIB  # every byte is either kept or counted
    assert len(log) < LOG_LIMIT + 1024
    assert pool.pool.stats().environments == 0  # it broke the protocol: not used again


def test_printing_300_mib_keeps_the_output_file_near_the_log_limit(
    pool_of: Callable[..., Pool],
) -> None:
    pool = pool_of("print_a_lot")
    result = pool.invoke({"mb": 300})
    # The memfd behind fds 1/2 is shared memory no limit of the process counts.
    assert orjson.loads(result.payload)["largest_stdout_bytes"] <= 2 * LOG_LIMIT
    dropped, kept = dropped_and_kept(result.log)
    output = kept[: kept.index("END RequestId")]
    assert output.endswith("z\nthe last line\n")
    assert dropped + len(output) == 300 * MIB + len("the last line\n")
    after = pool.invoke({"mb": 0}).log  # the next invocation starts from an empty file
    assert "the last line\nEND RequestId" in after
    assert "dropped" not in after


@pytest.mark.parametrize("stream", ["stderr", "__stdout__", "__stderr__"])
def test_every_python_stream_of_fds_1_and_2_is_bounded(
    pool_of: Callable[..., Pool], stream: str
) -> None:
    result = pool_of("print_a_lot").invoke({"mb": 20, "stream": stream})
    assert orjson.loads(result.payload)["largest_stdout_bytes"] <= 2 * LOG_LIMIT
    dropped, _ = dropped_and_kept(result.log)
    assert dropped > 19 * MIB


def test_output_read_after_a_timeout_is_bounded_and_marked(pool_of: Callable[..., Pool]) -> None:
    pool = pool_of("print_then_hang", timeout_seconds=1.0)
    error = pool.failure({"mb": 50})
    assert isinstance(error, FunctionTimeout)
    dropped, kept = dropped_and_kept(error.log)
    output = kept[: kept.index("still here\n") + len("still here\n")]
    assert dropped + len(output) == 50 * MIB + len("still here\n")
    assert len(error.log) < LOG_LIMIT + 1024


@pytest.mark.parametrize(
    ("char", "mb"),
    [
        pytest.param("r", 10, id="10-MiB-ascii"),
        pytest.param("\U0001f600", 2, id="2-Mi-emoji-8-MiB-of-json"),
    ],
)
def test_a_result_over_the_limit_is_response_size_too_large(
    pool_of: Callable[..., Pool], char: str, mb: int
) -> None:
    pool = pool_of("large_result")
    error = pool.failure({"char": char, "mb": mb})
    size = len(orjson.dumps({"body": char * (mb * MIB)}))
    assert not isinstance(error, FunctionCrashed)
    assert error.error_type == "Function.ResponseSizeTooLarge"
    assert error.error_message == (
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({RESULT_LIMIT} bytes)."
    )
    before = pool.pool.stats()
    assert orjson.loads(pool.invoke({"mb": 0}).payload) == {"body": ""}
    assert pool.pool.stats().cold_starts == before.cold_starts  # the same environment served


def test_a_result_just_within_the_limit_comes_back_whole(pool_of: Callable[..., Pool]) -> None:
    pool = pool_of("large_result")
    event = {"char": "\u20ac", "mb": 1.9}  # 3 bytes each in UTF-8: 5.7 MiB of JSON
    result = pool.invoke(event)
    assert result.payload == orjson.dumps({"body": "\u20ac" * int(1.9 * MIB)})


def test_an_error_with_a_50_mib_message_is_clipped(pool_of: Callable[..., Pool]) -> None:
    pool = pool_of("raise_large_message")
    error = pool.failure({"mb": 50})
    assert error.error_type == "ValueError"
    assert error.error_message.startswith("mmmm")
    assert error.error_message.endswith("characters dropped ...]")
    assert len(error.payload_bytes) <= RESULT_LIMIT
    assert len(error.log) < LOG_LIMIT + 1024


def test_an_error_message_json_cannot_carry_is_escaped(pool_of: Callable[..., Pool]) -> None:
    error = pool_of("raise_unencodable_message").failure({})
    assert error.error_type == "ValueError"
    assert error.error_message == "before \\ud800 after"


# -- WASM (real wasmtime, in this process) -------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[WasmEngine]:
    shared = WasmEngine(cache_dir=False)
    yield shared
    shared.close()


def run_wasm(
    engine: WasmEngine, spec: WasmFunctionSpec, entry: str, then: str | None = "origin_request"
) -> tuple[Any, Any, list[str], float]:
    """(the outcome of invoking `entry`, then of invoking `then` on the same function (None:
    no second invocation), the logs, how much this process grew during the first invocation
    (compiling the module before it is not counted))."""
    logs: list[str] = []

    async def invoke(function: WasmFunction, entry: str) -> Any:
        try:
            return await function.invoke(b"{}", entry=entry)
        except FunctionError as exc:
            return exc

    async def main() -> tuple[Any, Any, float]:
        async with WasmFunction(spec, engine=engine, log_sink=logs.append) as function:
            with PeakGrowth(os.getpid()) as growth:
                first = await invoke(function, entry)
            second = None if then is None else await invoke(function, then)
            return first, second, growth.mib

    first, second, growth = asyncio.run(main())
    return first, second, logs, growth


def test_wasm_log_messages_of_100_mib_keep_the_logs_tail(engine: WasmEngine) -> None:
    spec = WasmFunctionSpec(name="log-flood", module=WASM / "log_flood.wat")
    result, after, logs, growth_mib = run_wasm(engine, spec, "handler")
    assert growth_mib < GROWTH_BOUND_MIB
    assert result.payload == b""
    assert after.payload == b""
    dropped, kept = dropped_and_kept(logs[0])
    assert kept.startswith("A" * 1000)
    assert len(logs[0]) < LOG_LIMIT + 1024
    assert dropped > 3 * 100 * MIB - LOG_LIMIT
    assert logs[1].count("\tINFO\tok\n") == 1


def test_wasi_stdout_over_the_limit_is_measured_not_held(engine: WasmEngine) -> None:
    spec = WasmFunctionSpec(name="stdio-flood", module=WASM / "stdio_flood.wat", abi="wasi")
    error, _, logs, growth_mib = run_wasm(engine, spec, "handler", then=None)
    assert growth_mib < GROWTH_BOUND_MIB
    assert error.error_type == "Function.ResponseSizeTooLarge"
    assert f"({8 * MIB} bytes)" in error.error_message
    dropped, kept = dropped_and_kept(logs[0])
    stderr_tail = kept[: kept.index("\n")]
    assert set(stderr_tail) == {"E"}
    assert dropped + len(stderr_tail) == 24 * MIB


def test_a_core_result_over_the_limit_is_refused_before_it_is_read(engine: WasmEngine) -> None:
    spec = WasmFunctionSpec(name="log-flood", module=WASM / "log_flood.wat")
    error, after, _, _ = run_wasm(engine, spec, "viewer_request")
    assert after.payload == b""
    assert error.error_type == "Function.ResponseSizeTooLarge"
    assert f"({100 * MIB} bytes)" in error.error_message


# -- through the real edge: the viewer, the function origin and the Invoke API -------------


def _function(name: str, handler: str, **settings: Any) -> str:
    lines = [f"[functions.{name}]", f'handler = "{FUNCTIONS / "bounds"}.{handler}"']
    lines += [f"{key} = {value!r}" for key, value in settings.items()]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def edge(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("edge-bounds")
    config = tmp / "edge.toml"
    config.write_text(
        "\n\n".join(
            [
                f'[server]\nname = "edge-bounds"\n\n[origins.app]\nurl = "{origin.url}"',
                '[origins.large]\nfunction = "large-result"',
                f'[invoke]\nqueue_path = "{tmp / "queue.sqlite3"}"',
                '[[behaviors]]\npath = "/viewer/*"\norigin = "app"\n'
                'viewer-request = "large-result"',
                '[[behaviors]]\npath = "/origin/*"\norigin = "large"',
                '[[behaviors]]\npath = "*"\norigin = "app"',
                _function("large-result", "large_result"),
                _function("forge-result", "forge_large_result", timeout=10),
                _function("forge-log", "forge_large_log", timeout=10),
                _function("print-a-lot", "print_a_lot", timeout=20),
                _function("ok", "ok"),
                f'[functions.log-flood]\nruntime = "wasm"\nmodule = "{WASM / "log_flood.wat"}"',
            ]
        )
    )
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
    process.start(tmp)
    yield process
    process.stop()


def invoke_api(edge: EdgeProcess, name: str, event: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=edge.admin_url, timeout=60) as client:
        return client.post(f"/2015-03-31/functions/{name}/invocations", content=orjson.dumps(event))


def function_log(edge: EdgeProcess, request_id: str) -> str:
    """The function's log for one invocation, START to REPORT, from the edge's stderr (without
    the function and trigger that lead each line there)."""
    found = edge.wait_for(
        rf"(?s)START RequestId: {request_id} .*?REPORT RequestId: {request_id}[^\n]*\n"
    )
    return re.sub(r"(?m)^[A-Za-z0-9_-]+ [a-z-]+ \| ", "", found[0])


def test_a_10_mib_result_through_the_invoke_api(edge: EdgeProcess) -> None:
    with PeakGrowth(edge.pid) as growth:
        response = invoke_api(edge, "large-result", {"mb": 10})
    assert growth.mib < GROWTH_BOUND_MIB
    # §8.2: a function error is a 200 flagged by X-Amz-Function-Error, with the error document.
    assert response.status_code == 200
    assert response.headers["x-amz-function-error"] == "Unhandled"
    document = response.json()
    assert document["errorType"] == "Function.ResponseSizeTooLarge"
    assert document["errorMessage"] == (
        f"Response payload size ({10 * MIB + 11} bytes) exceeded maximum allowed payload "
        f"size ({RESULT_LIMIT} bytes)."
    )
    assert invoke_api(edge, "large-result", {"mb": 0}).json() == {"body": ""}


def test_a_10_mib_result_at_a_lambda_edge_trigger(edge: EdgeProcess) -> None:
    with httpx.Client(base_url=edge.url, timeout=60) as client:
        response = client.get("/viewer/x")
    # Lambda refuses the result before CloudFront reads it: an execution error (spec §4.1).
    assert response.status_code == 503
    assert response.headers["x-cache"] == "LambdaExecutionError from edge-bounds"
    edge.wait_for(r"Function\.ResponseSizeTooLarge")


def test_a_10_mib_result_from_a_function_origin(edge: EdgeProcess) -> None:
    with httpx.Client(base_url=edge.url, timeout=60) as client:
        response = client.get("/origin/x")
    # §7.4: the load balancer answers 502 and logs LambdaResponseTooLarge.
    assert response.status_code == 502
    assert response.headers["x-edge-error"] == "LambdaResponseTooLarge"


def test_a_forged_250_mib_result_leaves_the_edge_small(edge: EdgeProcess) -> None:
    with PeakGrowth(edge.pid) as growth:
        response = invoke_api(edge, "forge-result", {"mb": 250})
    assert growth.mib < GROWTH_BOUND_MIB
    assert response.status_code == 200
    assert response.headers["x-amz-function-error"] == "Unhandled"
    assert response.json()["errorType"] == "Function.ResponseSizeTooLarge"
    assert invoke_api(edge, "ok", {}).json() == {"ok": True}


def test_a_forged_100_mib_log_reaches_the_edges_log_as_its_tail(edge: EdgeProcess) -> None:
    with PeakGrowth(edge.pid) as growth:
        response = invoke_api(edge, "forge-log", {"mb": 100})
    assert growth.mib < GROWTH_BOUND_MIB
    assert response.json() == {"forged": True}
    log = function_log(edge, response.headers["x-amzn-requestid"])
    assert len(log) < LOG_LIMIT + 1024
    dropped, kept = dropped_and_kept(log)
    assert dropped + kept.index("END RequestId") == 100 * MIB


def test_printing_300_mib_through_the_edge(edge: EdgeProcess) -> None:
    response = invoke_api(edge, "print-a-lot", {"mb": 300})
    assert response.json()["largest_stdout_bytes"] <= 2 * LOG_LIMIT
    log = function_log(edge, response.headers["x-amzn-requestid"])
    assert len(log) < LOG_LIMIT + 1024
    dropped, _ = dropped_and_kept(log)
    assert dropped > 299 * MIB


def test_wasm_log_flood_through_the_edge(edge: EdgeProcess) -> None:
    with PeakGrowth(edge.pid) as growth:
        response = invoke_api(edge, "log-flood", {})
    assert growth.mib < GROWTH_BOUND_MIB
    assert response.status_code == 200
    assert "x-amz-function-error" not in response.headers
    log = function_log(edge, response.headers["x-amzn-requestid"])
    assert len(log) < LOG_LIMIT + 1024
    dropped, kept = dropped_and_kept(log)
    assert kept.startswith("A" * 1000)
    assert dropped > 299 * MIB
