"""The WASM runtime on real wasmtime: both ABIs, every limit, slots, the module cache, logs."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sandbox.runtime.errors import (
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionThrottled,
    FunctionTimeout,
    PayloadTooLarge,
    PoolClosed,
)
from sandbox.wasm import (
    CONTINUE,
    WasmEngine,
    WasmFunction,
    WasmFunctionSpec,
    WasmModuleError,
    abi,
    raw_calls,
)

GUESTS = Path(__file__).resolve().parent / "wasm"
HEADER_DIR = Path(__file__).resolve().parent.parent / "sandbox" / "wasm"
EVENT = b'{"Records":[{"cf":{"request":{"uri":"/index.html"}}}]}'

T = TypeVar("T")


@pytest.fixture(params=["raw-calls", "public-api"])
def engine(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[WasmEngine]:
    """The engine, once calling wasmtime through its private bindings (the fast path, when
    its self-test passes) and once through the public API only (the fallback): every test of
    this file runs both ways."""
    shared = WasmEngine(cache_dir=tmp_path / "cache", raw_calls=request.param == "raw-calls")
    assert shared.raw_calls is (request.param == "raw-calls"), shared.raw_calls_problem
    yield shared
    shared.close()


def spec(module: str, **overrides: Any) -> WasmFunctionSpec:
    return WasmFunctionSpec(name=Path(module).stem, module=GUESTS / module, **overrides)


def with_function(
    engine: WasmEngine,
    function_spec: WasmFunctionSpec,
    body: Callable[[WasmFunction], Awaitable[T]],
    logs: list[str] | None = None,
) -> T:
    async def main() -> T:
        sink = logs.append if logs is not None else None
        async with WasmFunction(function_spec, engine=engine, log_sink=sink) as function:
            return await body(function)

    return asyncio.run(main())


REPORT = re.compile(
    r"REPORT RequestId: (?P<id>[^\t]+)\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: (?P<size>\d+) MB\tMax Memory Used: (?P<used>\d+) MB\t(?P<rest>.*)\n\Z"
)


# -- the core ABI ------------------------------------------------------------------------


def test_core_echo_returns_the_event_with_log_lines(engine: WasmEngine) -> None:
    logs: list[str] = []
    result = with_function(
        engine, spec("echo.wat"), lambda f: f.invoke(EVENT, request_id="req-1" + "0" * 31), logs
    )
    assert result.payload == EVENT
    request_id = "req-1" + "0" * 31
    lines = result.log.splitlines(keepends=True)
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST\n"
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT[\d:.]+Z\t{request_id}\tINFO\tgot an event\n", lines[1]
    )
    assert lines[2] == f"END RequestId: {request_id}\n"
    report = REPORT.match(lines[3])
    assert report is not None
    assert (report["size"], report["used"], report["rest"]) == ("128", "1", "")
    assert logs == [result.log]
    assert result.max_memory_used_mb == 1
    assert result.billed_duration_ms >= 1


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param("viewer_request", b'{"status":"200","statusDescription":"OK"}', id="fixed"),
        pytest.param("origin_response", CONTINUE, id="zero-is-continue"),
        pytest.param("origin_request", CONTINUE, id="missing-entry-is-continue"),
    ],
)
def test_core_entry_points(engine: WasmEngine, entry: str, expected: bytes) -> None:
    result = with_function(engine, spec("echo.wat"), lambda f: f.invoke(EVENT, entry=entry))
    assert result.payload == expected


def test_has_entry_names_the_exported_entry_points(engine: WasmEngine) -> None:
    async def body(function: WasmFunction) -> dict[str, bool]:
        return {entry: function.has_entry(entry) for entry in sorted(abi.ENTRY_POINTS)}

    assert with_function(engine, spec("echo.wat"), body) == {
        "handler": True,
        "origin_request": False,
        "origin_response": True,
        "viewer_request": True,
        "viewer_response": True,
    }


def test_module_breaking_the_abi_fails_to_start(engine: WasmEngine) -> None:
    with pytest.raises(WasmModuleError, match=r"'handler' has type \(i32\) -> \(i32\)"):
        with_function(engine, spec("bad_signature.wat"), lambda f: f.invoke(EVENT))


# -- the WASI ABI ------------------------------------------------------------------------


def test_wasi_command_copies_stdin_to_stdout_and_stderr_to_the_log(engine: WasmEngine) -> None:
    result = with_function(engine, spec("cat.wat", abi="wasi"), lambda f: f.invoke(EVENT))
    assert result.payload == EVENT
    assert "\ncat: copied\nEND RequestId: " in result.log


def test_wasi_exit_status_is_a_crash(engine: WasmEngine) -> None:
    with pytest.raises(FunctionCrashed) as caught:
        with_function(engine, spec("cat.wat", abi="wasi"), lambda f: f.invoke(b""))
    assert caught.value.error_type == "Runtime.ExitError"
    assert caught.value.error_message.endswith("Runtime exited with error: exit status 3")
    assert "Status: error\tError Type: Runtime.ExitError\t" in caught.value.log


# -- limits ------------------------------------------------------------------------------


def test_endless_loop_times_out_while_another_function_answers(engine: WasmEngine) -> None:
    async def main() -> tuple[FunctionTimeout, float, bool]:
        async with (
            WasmFunction(spec("limits.wat", timeout_seconds=0.3), engine=engine) as spinner,
            WasmFunction(spec("echo.wat"), engine=engine) as echo,
        ):
            started = time.monotonic()
            spinning = asyncio.ensure_future(spinner.invoke(EVENT))
            answers = [await echo.invoke(EVENT) for _ in range(20)]
            still_spinning = not spinning.done()
            assert all(answer.payload == EVENT for answer in answers)
            with pytest.raises(FunctionTimeout) as caught:
                await spinning
            return caught.value, time.monotonic() - started, still_spinning

    error, elapsed, still_spinning = asyncio.run(main())
    assert still_spinning
    assert 0.3 <= elapsed < 10  # stopped at its timeout, not left spinning
    assert error.error_type == "Sandbox.Timedout"
    assert error.error_message == (
        f"RequestId: {error.request_id} Error: Task timed out after 0.30 seconds"
    )
    assert f"{error.request_id} Task timed out after 0.30 seconds\n" in error.log
    assert error.log.endswith("Status: timeout\t\n")


def test_caller_deadline_shortens_the_timeout(engine: WasmEngine) -> None:
    async def body(function: WasmFunction) -> None:
        await function.invoke(EVENT, deadline=time.monotonic() + 0.05, timeout_seconds=0.05)

    with pytest.raises(FunctionTimeout, match=r"after 0\.05 seconds"):
        with_function(engine, spec("limits.wat", timeout_seconds=30), body)


def test_growing_past_the_memory_cap_is_memory_exceeded(engine: WasmEngine) -> None:
    with pytest.raises(FunctionMemoryExceeded) as caught:
        with_function(
            engine,
            spec("limits.wat", memory_mb=2),
            lambda f: f.invoke(EVENT, entry="viewer_request"),
        )
    assert caught.value.error_type == "Runtime.OutOfMemory"
    assert "Max Memory Used: 2 MB\tStatus: error\tError Type: Runtime.OutOfMemory\t" in (
        caught.value.log
    )


def test_trap_is_a_function_error_and_the_next_call_works(engine: WasmEngine) -> None:
    async def body(function: WasmFunction) -> tuple[FunctionError, bytes]:
        with pytest.raises(FunctionError) as caught:
            await function.invoke(EVENT, entry="origin_request")
        after = await function.invoke(EVENT, entry="viewer_response")
        return caught.value, after.payload

    error, after = with_function(engine, spec("limits.wat"), body)
    assert type(error) is FunctionError
    assert error.error_type == "Runtime.Trap"
    assert "unreachable" in error.error_message
    assert "[ERROR] Runtime.Trap: wasm trap: wasm `unreachable` instruction executed\n" in (
        error.log
    )
    assert error.payload["stackTrace"]
    assert after == CONTINUE


def test_fuel_exhaustion_fails_the_invocation(engine: WasmEngine) -> None:
    with pytest.raises(FunctionError) as caught:
        with_function(
            engine,
            spec("limits.wat", fuel=100_000),
            lambda f: f.invoke(EVENT, entry="viewer_response"),
        )
    assert caught.value.error_type == "Runtime.OutOfFuel"
    unlimited = with_function(
        engine, spec("limits.wat"), lambda f: f.invoke(EVENT, entry="viewer_response")
    )
    assert unlimited.payload == CONTINUE


def test_result_outside_memory_is_a_function_error(engine: WasmEngine) -> None:
    with pytest.raises(FunctionError) as caught:
        with_function(
            engine, spec("limits.wat"), lambda f: f.invoke(EVENT, entry="origin_response")
        )
    assert caught.value.error_type == "Runtime.AbiViolation"
    assert "outside the guest's memory" in caught.value.error_message


def test_event_over_the_payload_limit_is_refused(engine: WasmEngine) -> None:
    with pytest.raises(PayloadTooLarge):
        with_function(engine, spec("echo.wat", max_event_bytes=10), lambda f: f.invoke(EVENT))


def test_concurrency_cap_throttles_exactly_the_excess(engine: WasmEngine) -> None:
    async def body(function: WasmFunction) -> list[object]:
        calls = [function.invoke(EVENT) for _ in range(5)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    function_spec = spec("limits.wat", max_concurrency=3, timeout_seconds=0.2)
    outcomes = with_function(engine, function_spec, body)
    assert sum(isinstance(o, FunctionThrottled) for o in outcomes) == 2
    assert sum(isinstance(o, FunctionTimeout) for o in outcomes) == 3


# -- instances ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reuse", "counts"),
    [
        pytest.param(False, [b"1", b"1", b"1"], id="fresh-by-default"),
        pytest.param(True, [b"1", b"2", b"3"], id="reuse-instance"),
    ],
)
def test_guest_globals_persist_only_with_reuse(
    engine: WasmEngine, reuse: bool, counts: list[bytes]
) -> None:
    async def body(function: WasmFunction) -> list[Any]:
        return [await function.invoke(EVENT, entry="viewer_response") for _ in range(3)]

    function = spec("echo.wat", reuse_instance=reuse)
    results = with_function(engine, function, body)
    assert [result.payload for result in results] == counts
    # A warm instance's first invocation reports its instantiation as Init Duration.
    assert ("Init Duration: " in results[0].log) is reuse
    assert all("Init Duration: " not in result.log for result in results[1:])


def test_second_start_loads_the_compiled_module_from_disk(tmp_path: Path) -> None:
    def start_once() -> tuple[Any, Any, bytes]:
        engine = WasmEngine(cache_dir=tmp_path / "cache")
        try:
            result = with_function(engine, spec("echo.wat"), _invoke_with_stats)
            return engine.cache_stats(), result[0], result[1]
        finally:
            engine.close()

    first_cache, first_stats, _ = start_once()
    second_cache, second_stats, payload = start_once()
    assert (first_cache.compiles, first_stats.compiled) == (1, 1)
    assert (second_cache.compiles, second_cache.disk_hits) == (0, 1)
    assert (second_stats.compiled, second_stats.cache_hits) == (0, 1)
    assert payload == EVENT
    assert len(list((tmp_path / "cache").glob("*.cwasm"))) == 1


async def _invoke_with_stats(function: WasmFunction) -> tuple[Any, bytes]:
    result = await function.invoke(EVENT)
    return function.stats(), result.payload


def test_closed_function_refuses_invocations(engine: WasmEngine) -> None:
    async def main() -> None:
        function = WasmFunction(spec("echo.wat"), engine=engine)
        await function.invoke(EVENT)
        await function.aclose()
        with pytest.raises(PoolClosed):
            await function.invoke(EVENT)

    asyncio.run(main())


# -- the pure codec and the C header -----------------------------------------------------


@pytest.mark.parametrize(
    ("ptr", "length"),
    [
        pytest.param(0, 0, id="zero"),
        pytest.param(4096, 57, id="small"),
        pytest.param(0xFFFF_FFF0, 0xFFFF_FFFF, id="high-bit-set"),
    ],
)
def test_result_packing_round_trips(ptr: int, length: int) -> None:
    packed = abi.pack_result(ptr, length)
    assert -(1 << 63) <= packed < 1 << 63  # fits a wasm i64
    assert abi.unpack_result(packed) == (ptr, length)


@pytest.mark.parametrize(
    ("memory_bytes", "limit_bytes", "requested", "expected"),
    [
        pytest.param(65536, 128 << 20, 0, False, id="far-below-the-cap"),
        pytest.param(127 << 20, 128 << 20, 0, True, id="within-a-sixteenth"),
        pytest.param(65536, 128 << 20, 200 << 20, True, id="request-does-not-fit"),
    ],
)
def test_memory_exceeded_heuristic(
    memory_bytes: int, limit_bytes: int, requested: int, expected: bool
) -> None:
    assert abi.memory_exceeded(memory_bytes, limit_bytes, requested) is expected


def test_c_header_builds_a_guest_that_runs(engine: WasmEngine, tmp_path: Path) -> None:
    pytest.importorskip("ziglang")
    source = tmp_path / "guest.c"
    source.write_text(
        '#include "edge_abi.h"\n'
        "static unsigned char heap[65536]; static int top;\n"
        "EDGE_EXPORT(edge_alloc) void *edge_alloc(int32_t size) {\n"
        "  void *p = heap + top; top += (size + 7) & ~7; return p; }\n"
        "EDGE_EXPORT(edge_reset) void edge_reset(void) { top = 0; }\n"
        "EDGE_EXPORT(handler) int64_t handler(const char *event, int32_t len) {\n"
        '  edge_log("from C", 6); return edge_result(event, (size_t)len); }\n'
    )
    module = tmp_path / "guest.wasm"
    subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", "wasm32-freestanding", "-O2",
         "-nostdlib", "-Wl,--no-entry", "-Wall", "-Werror", f"-I{HEADER_DIR}",
         "-o", str(module), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    function = WasmFunctionSpec(name="c-guest", module=module, reuse_instance=True)
    result = with_function(engine, function, lambda f: f.invoke(EVENT))
    assert result.payload == EVENT
    assert "\tINFO\tfrom C\n" in result.log


# -- wasmtime's private bindings, held safely --------------------------------------------


@pytest.fixture
def fresh_self_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The raw-call self-test runs again (it is cached per process), with no bindings bound."""
    monkeypatch.setattr(raw_calls, "_bound", [])
    raw_calls.self_test.cache_clear()
    yield
    raw_calls.self_test.cache_clear()


def _echo_through(engine: WasmEngine) -> bytes:
    function = WasmFunction(spec("echo.wat"), engine=engine)

    async def run() -> bytes:
        async with function:
            return (await function.invoke(EVENT)).payload

    try:
        return asyncio.run(run())
    finally:
        engine.close()


def test_the_raw_path_passes_its_self_test_on_the_pinned_wasmtime(fresh_self_test: None) -> None:
    assert raw_calls.self_test() is None
    assert WasmEngine(cache_dir=False).raw_calls


def test_a_missing_private_binding_falls_back_to_the_public_api(
    fresh_self_test: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from wasmtime import _bindings

    monkeypatch.delattr(_bindings, "_wasmtime_func_call_unchecked")
    engine = WasmEngine(cache_dir=False)
    with caplog.at_level("WARNING", logger="sandbox.wasm"):
        assert engine.raw_calls is False
    assert engine.raw_calls_problem is not None
    assert "_wasmtime_func_call_unchecked" in engine.raw_calls_problem
    assert "public API" in caplog.text
    assert _echo_through(engine) == EVENT


def test_an_untested_wasmtime_release_takes_the_public_api(
    fresh_self_test: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw_calls, "TESTED_VERSIONS", ("1.",))
    engine = WasmEngine(cache_dir=False)
    assert engine.raw_calls is False
    assert "is not a release the raw calls were tested with" in str(engine.raw_calls_problem)
    assert _echo_through(engine) == EVENT


def test_the_pin_names_the_tested_releases() -> None:
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    pinned = re.search(r'"wasmtime>=(\d+),<(\d+)"', pyproject)
    assert pinned is not None
    low, high = int(pinned[1]), int(pinned[2])
    assert [f"{v}." for v in range(low, high)] == list(raw_calls.TESTED_VERSIONS)


def test_wasi_output_sinks_are_released_with_their_instance(tmp_path: Path) -> None:
    """No wasmtime finalizer calls back into Python (it may run on wasmtime's own threads
    while the interpreter exits): the raw path drops its sinks when the instance goes."""
    engine = WasmEngine(cache_dir=tmp_path / "cache")
    assert engine.raw_calls
    result = with_function(engine, spec("cat.wat", abi="wasi"), lambda f: f.invoke(EVENT))
    engine.close()
    assert result.payload == EVENT
    assert raw_calls._sinks == {}


# -- reactors --------------------------------------------------------------------------------


def test_a_reactors_initialize_runs_once_per_new_instance(engine: WasmEngine) -> None:
    async def three(function: WasmFunction) -> list[bytes]:
        return [(await function.invoke(EVENT)).payload for _ in range(3)]

    # Fresh instances: each is initialised (its allocator would trap otherwise), never reset.
    fresh = with_function(engine, spec("reactor.wat"), three)
    assert fresh == [b'{"inits":1,"resets":0}'] * 3
    # A reused instance: initialised once; edge_reset before each invocation but its first.
    reused = spec("reactor.wat", reuse_instance=True, max_concurrency=1)
    assert with_function(engine, reused, three) == [
        b'{"inits":1,"resets":0}',
        b'{"inits":1,"resets":1}',
        b'{"inits":1,"resets":2}',
    ]


def test_a_log_line_outside_memory_is_an_abi_violation(engine: WasmEngine) -> None:
    with pytest.raises(FunctionError) as caught:
        with_function(
            engine, spec("reactor.wat"), lambda f: f.invoke(EVENT, entry="origin_request")
        )
    assert caught.value.error_type == "Runtime.AbiViolation"
    assert caught.value.error_message == (
        "edge.log: message at 0xffdc (100 bytes) is outside memory"
    )


def test_initialize_must_have_the_reactor_type(engine: WasmEngine, tmp_path: Path) -> None:
    module = tmp_path / "bad_initialize.wat"
    module.write_text(
        (GUESTS / "reactor.wat")
        .read_text()
        .replace('(func (export "_initialize")', '(func (export "_initialize") (param i32)')
    )
    function_spec = WasmFunctionSpec(name="bad", module=module)
    with pytest.raises(WasmModuleError, match=r"export '_initialize' has type \(i32\) -> \(\)"):
        with_function(engine, function_spec, lambda f: f.invoke(EVENT))
