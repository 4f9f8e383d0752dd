"""WASM invocations on the event loop: a guest runs there for one slice at most, then goes on
(the same call, suspended and resumed) on its slot's thread until it ends or times out; the
engine's pool of instance slots, and what happens when it is all taken."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.runtime.errors import FunctionThrottled, FunctionTimeout
from sandbox.wasm import WasmEngine, WasmFunction, WasmFunctionSpec
from sandbox.wasm import engine as engine_module

GUEST = Path(__file__).resolve().parent / "wasm" / "slices.wat"
EVENT = b'{"Records":[]}'


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[WasmEngine]:
    shared = WasmEngine(cache_dir=tmp_path / "cache")
    assert shared.raw_calls, shared.raw_calls_problem  # the path that runs on the loop
    yield shared
    shared.close()


def spec(name: str, **overrides: object) -> WasmFunctionSpec:
    return WasmFunctionSpec(name=name, module=GUEST, **overrides)  # type: ignore[arg-type]


async def heartbeat(beats: list[str]) -> None:
    """What every other request on the loop needs: the loop coming round again."""
    while True:
        await asyncio.sleep(0.001)
        beats.append("beat")


def test_a_spinning_guest_leaves_the_loop_serving_others_until_it_times_out(
    engine: WasmEngine,
) -> None:
    events: list[str] = []

    async def main() -> FunctionTimeout:
        async with (
            WasmFunction(spec("spinner", timeout_seconds=0.5), engine=engine) as spinner,
            WasmFunction(spec("fast"), engine=engine) as fast,
        ):
            await fast.start()
            ticker = asyncio.ensure_future(heartbeat(events))
            spinning = asyncio.ensure_future(spinner.invoke(EVENT))
            await asyncio.sleep(0)  # the spinner's first slice runs on the loop, now
            answers = [await fast.invoke(EVENT, entry="origin_request") for _ in range(5)]
            events.append("fast answered")
            assert all(answer.payload == b'{"fast":true}' for answer in answers)
            with pytest.raises(FunctionTimeout) as caught:
                await spinning
            events.append("spinner timed out")
            ticker.cancel()
            return caught.value

    error = asyncio.run(main())
    assert error.error_type == "Sandbox.Timedout"
    assert error.log.endswith("Status: timeout\t\n")
    # The fast invocations and the heartbeat went on while the guest spun.
    assert events.index("fast answered") < events.index("spinner timed out")
    beats_during_spin = events[: events.index("spinner timed out")].count("beat")
    assert beats_during_spin >= 10


@pytest.mark.parametrize("slice_seconds", [0.002, 0.0], ids=["loop-first", "thread-only"])
def test_a_long_guest_call_finishes_on_its_thread_with_its_state_and_log(
    tmp_path: Path, slice_seconds: float
) -> None:
    engine = WasmEngine(cache_dir=tmp_path / "cache", slice_seconds=slice_seconds)
    beats: list[str] = []

    async def main() -> list[tuple[bytes, str, int]]:
        async with WasmFunction(
            spec("long", reuse_instance=True, timeout_seconds=30), engine=engine
        ) as function:
            await function.start()
            ticker = asyncio.ensure_future(heartbeat(beats))
            outcomes = []
            for _ in range(2):
                before = len(beats)
                result = await function.invoke(EVENT, entry="viewer_request")
                outcomes.append((result.payload, result.log, len(beats) - before))
            ticker.cancel()
            return outcomes

    try:
        outcomes = asyncio.run(main())
    finally:
        engine.close()
    # The warm instance's global went on counting: the call moved, it was not run again.
    assert [payload for payload, _, _ in outcomes] == [b"1", b"2"]
    for _, log, beats_during in outcomes:
        lines = [line.split("\t")[-1] for line in log.splitlines() if "\tINFO\t" in line]
        assert lines == ["before the slice", "after the slice"]
        assert beats_during >= 1  # the loop went on while the guest counted


def test_with_every_instance_slot_taken_an_invocation_is_throttled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "POOL_INSTANCES", 2)
    engine = WasmEngine(cache_dir=tmp_path / "cache")

    async def main() -> tuple[list[bytes], FunctionThrottled, int]:
        async with (
            WasmFunction(spec("warm-a", reuse_instance=True), engine=engine) as first,
            WasmFunction(spec("warm-b", reuse_instance=True), engine=engine) as second,
            WasmFunction(spec("fresh"), engine=engine) as third,
        ):
            # Two warm instances hold both slots of the pool.
            answers = [
                (await function.invoke(EVENT, entry="origin_request")).payload
                for function in (first, second)
            ]
            with pytest.raises(FunctionThrottled) as caught:
                await third.invoke(EVENT, entry="origin_request")
            return answers, caught.value, third.stats().throttles

    try:
        answers, throttled, throttles = asyncio.run(main())
    finally:
        engine.close()
    assert answers == [b'{"fast":true}'] * 2
    assert throttled.reason == "ConcurrentInvocationLimitExceeded"
    assert throttles == 1


def test_a_module_bigger_than_a_pool_slot_still_runs(tmp_path: Path) -> None:
    # A table past the pool's 20,000 elements and a second memory: each instance of such a
    # module is mapped on its own.
    module = tmp_path / "big.wat"
    module.write_text(
        '(module (memory (export "memory") 1) (memory $second 1) (table 30000 funcref)\n'
        ' (func (export "edge_alloc") (param i32) (result i32) (i32.const 1024))\n'
        ' (func (export "handler") (param i32 i32) (result i64) (i64.const 0)))\n'
    )
    engine = WasmEngine(cache_dir=tmp_path / "cache")

    async def main() -> bytes:
        function_spec = WasmFunctionSpec(name="big", module=module)
        async with WasmFunction(function_spec, engine=engine) as function:
            return (await function.invoke(EVENT)).payload

    try:
        assert asyncio.run(main()) == b""  # continue unchanged
    finally:
        engine.close()
