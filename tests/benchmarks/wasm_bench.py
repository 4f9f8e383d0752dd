"""Per-invocation overhead of the WASM runtime; by hand: `python -m tests.benchmarks.wasm_bench`.

A ~1 KB viewer-request event through a core-ABI guest that returns it unchanged, measured as
`await function.invoke(...)` on the event loop (copy in/out, logs included), for fresh
instances and reused ones, three ways in turn: as invocations run now (on the loop for a slice,
instances from the pooling allocator), with each instance mapped on its own (`pooling=False`),
and handed to the slot's thread every time (`slice_seconds=0`, how every invocation ran before).
Then where the time goes: the thread hand-off alone (our slot thread vs `run_in_executor` vs
`asyncio.to_thread`) and the synchronous steps on one thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from edge.events import EventType, sample_event
from sandbox.wasm import WasmEngine, WasmFunction, WasmFunctionSpec
from sandbox.wasm.instance import LinkedModule

RETURN_REQUEST = """
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "edge_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $ptr))
  (func (export "edge_reset") (global.set $heap (i32.const 1024)))
  (func (export "viewer_request") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))))
"""
ROUNDS = 5000


def _event() -> bytes:
    """A viewer-request event as the edge builds it, padded to ~1 KB (still valid JSON)."""
    event = orjson.dumps(sample_event(EventType.VIEWER_REQUEST, uri="/index.html"))
    return event + b" " * max(0, 1024 - len(event))


def _summary(name: str, samples_us: list[float]) -> None:
    samples_us.sort()
    p50 = statistics.median(samples_us)
    p99 = samples_us[int(len(samples_us) * 0.99)]
    print(f"{name:<72} p50 {p50:7.1f} µs   p99 {p99:7.1f} µs")


async def _time_async(call: Callable[[], Awaitable[object]], rounds: int = ROUNDS) -> list[float]:
    for _ in range(200):
        await call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def _time_sync(call: Callable[[], object], rounds: int = ROUNDS) -> list[float]:
    for _ in range(200):
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


# (label, WasmEngine options): how invocations run today, and the two ways they ran before, so
# one run compares them (each series takes turns, a slice at a time, against the same drift).
ENGINES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("on the loop, pooled instances", {}),
    ("on the loop, instances mapped one by one", {"pooling": False}),
    ("thread hand-off every time (slice_seconds=0)", {"slice_seconds": 0.0}),
)
TURNS = 10


async def _invocations(cache: Path, module: Path, event: bytes) -> None:
    engines = [WasmEngine(cache_dir=cache, **options) for _, options in ENGINES]
    samples: dict[tuple[str, bool], list[float]] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            calls = []
            for (label, _), engine in zip(ENGINES, engines, strict=True):
                for reuse in (False, True):
                    spec = WasmFunctionSpec(name="bench", module=module, reuse_instance=reuse)
                    function = await stack.enter_async_context(WasmFunction(spec, engine=engine))
                    result = await function.invoke(event, entry="viewer_request")
                    assert result.payload == event

                    async def call(invoke: Any = function.invoke) -> object:
                        return await invoke(event, entry="viewer_request")

                    calls.append(((label, reuse), call))
            for _ in range(TURNS):
                for key, call in calls:
                    taken = await _time_async(call, ROUNDS // TURNS)
                    samples.setdefault(key, []).extend(taken)
    finally:
        for engine in engines:
            engine.close()
    for (label, reuse), taken in samples.items():
        _summary(f"invoke(), {'reused' if reuse else 'fresh'}, {label}", taken)


async def _handoffs() -> None:
    loop = asyncio.get_running_loop()

    def work() -> int:
        return 1

    # Our slot: a thread with a SimpleQueue, answering with call_soon_threadsafe.
    jobs: queue.SimpleQueue[asyncio.Future[int] | None] = queue.SimpleQueue()

    def serve() -> None:
        while (future := jobs.get()) is not None:
            value = work()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future, value)

    def _resolve(future: asyncio.Future[int], value: int) -> None:
        if not future.done():
            future.set_result(value)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def slot_call() -> int:
        future: asyncio.Future[int] = loop.create_future()
        jobs.put(future)
        return await future

    _summary("hand-off: slot thread + call_soon_threadsafe", await _time_async(slot_call))
    jobs.put(None)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
        _summary(
            "hand-off: loop.run_in_executor(ThreadPoolExecutor)",
            await _time_async(lambda: loop.run_in_executor(executor, work)),
        )
    _summary("hand-off: asyncio.to_thread", await _time_async(lambda: asyncio.to_thread(work)))


def _steps(engine: WasmEngine, module: Path, event: bytes) -> None:
    loaded = engine.load_module(module, fuel=False)
    linked = LinkedModule(
        engine.engine(fuel=False), loaded.module, "core", memory_limit_bytes=128 << 20
    )

    def instantiate() -> object:
        return linked.instantiate(memory_limit_bytes=128 << 20, deadline_ticks=10**6, fuel=None)

    _summary("sync: Store + limits + pre-linked instantiate", _time_sync(instantiate))
    instance = instantiate()

    def round_trip() -> bytes:
        instance.reset()  # type: ignore[attr-defined]
        ptr = instance.alloc(len(event))  # type: ignore[attr-defined]
        instance.write(ptr, event)  # type: ignore[attr-defined]
        packed = instance.call_entry("viewer_request", ptr, len(event))  # type: ignore[attr-defined]
        return instance.read(packed >> 32, packed & 0xFFFF_FFFF)  # type: ignore[attr-defined, no-any-return]

    _summary("sync: reset + alloc + copy in + call + copy out", _time_sync(round_trip))


def main() -> None:
    event = _event()
    with tempfile.TemporaryDirectory() as directory:
        module = Path(directory) / "return_request.wat"
        module.write_text(RETURN_REQUEST)
        engine = WasmEngine(cache_dir=Path(directory) / "cache")
        try:
            print(f"event: {len(event)} bytes, {ROUNDS} rounds each")
            asyncio.run(_invocations(Path(directory) / "cache", module, event))
            asyncio.run(_handoffs())
            _steps(engine, module, event)
        finally:
            engine.close()


if __name__ == "__main__":
    main()
