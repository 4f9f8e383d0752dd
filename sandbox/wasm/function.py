"""A WASM function version behind the runtime seam: slots, throttling, loop or thread.

`WasmFunction` is a `Runtime`: `invoke(event) -> InvocationResult`, raising one of
`sandbox.runtime.errors`. Each invocation takes one execution slot (at most `max_concurrency`
exist; an invocation that finds them all busy is throttled at once, as Lambda throttles a
version at its reserved concurrency, spec §8.3).

Where it runs: an invocation of a core module on the raw path starts on the event loop, with
its guest's epoch deadline at the end of a short slice (`WasmEngine.slice_seconds`, 2 ms).
Nearly every hook ends well within it, and costs no thread hand-off (~40-50 µs) at all. A
guest still running at the end of the slice is suspended there (wasmtime's async call on its
own fiber stack) and the same call resumes on the slot's thread, which runs it until it ends
or its deadline drops it (a timeout): a spinning guest holds the loop for one slice at most.
Other invocations (WASI commands, the public-API fallback, `slice_seconds=0`) run on the slot's
thread from the start, where wasmtime releases the GIL while the guest runs. A slot's thread
is started the first time it is needed; the loop puts the work on its queue and the thread
answers with `call_soon_threadsafe`, about half the cost of `run_in_executor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from sandbox.runtime.errors import (
    THROTTLE_REASON,
    FunctionCodeInvalid,
    FunctionError,
    FunctionThrottled,
    PoolClosed,
)
from sandbox.runtime.protocol import Invocation, Runtime
from sandbox.runtime.result import InvocationResult, continue_unchanged
from sandbox.runtime.sink import LogSink, deliver_log
from sandbox.runtime.stats import Counters, RuntimeStats
from sandbox.wasm.engine import WasmEngine
from sandbox.wasm.errors import WasmModuleError
from sandbox.wasm.guest import LiveInstance, ModuleAbiError
from sandbox.wasm.instance import LinkedModule
from sandbox.wasm.invocation import FUEL_ERROR, Running, SlotState, begin_invocation
from sandbox.wasm.spec import WasmFunctionSpec

# Stores of finished invocations that wait for the loop's next round to be freed, at most.
_MAX_RETIRED = 16
_Job = tuple[Running, "asyncio.Future[InvocationResult]", asyncio.AbstractEventLoop]


@dataclass(frozen=True, slots=True)
class WasmStats(RuntimeStats):
    """`RuntimeStats`, where an environment is an execution slot, a cold start a new instance
    and a warm start an invocation served by a slot's warm instance (`reuse_instance`).

    `out_of_fuel`: invocations that used up their fuel. `compiled` / `cache_hits`: whether
    `start()` compiled the module or loaded it from the engine's cache (disk or memory).
    """

    out_of_fuel: int
    compiled: int
    cache_hits: int


class _Slot:
    """One execution slot: its warm state, and a thread (started when first needed) that runs
    the invocations that outlive their slice on the loop, or that never start there."""

    def __init__(self, function: WasmFunction, number: int) -> None:
        self.state = SlotState()
        self._function = function
        self._number = number
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.future: asyncio.Future[InvocationResult] | None = None
        self.thread: threading.Thread | None = None

    def submit(self, job: _Job) -> None:
        self.future = job[1]
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._serve,
                name=f"wasm-{self._function.spec.name}-{self._number}",
                daemon=True,
            )
            self.thread.start()
        self._queue.put(job)

    def stop(self) -> None:
        if self.thread is not None:
            self._queue.put(None)

    def _serve(self) -> None:
        function = self._function
        state = self.state
        while True:
            job = self._queue.get()
            if job is None:
                state.warm = state.retired = None  # drop the stores on their own thread
                return
            running, future, loop = job
            outcome: InvocationResult | BaseException
            try:
                outcome = running.run_to_end()
            except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting caller
                outcome = exc
            del running, job
            # RuntimeError: the loop is closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(function._complete, self, future, outcome)
            del outcome
            state.retired = None


class WasmFunction(Runtime):
    """One WASM function version, run by wasmtime with a fresh (or per-slot warm) instance.

    `log_sink` receives each invocation's complete log text (START..REPORT, also for failed
    invocations); it is called on the event loop and must be quick and must not raise.
    `engine` is shared by every function of the process (and owned by the caller).

    Use as `async with WasmFunction(spec, engine=engine) as function:` or call `aclose()`.
    """

    def __init__(
        self, spec: WasmFunctionSpec, *, engine: WasmEngine, log_sink: LogSink | None = None
    ) -> None:
        super().__init__(spec)
        self.spec = spec
        self._engine = engine
        self._log_sink = log_sink
        self._linked: LinkedModule | None = None
        self._start_error: FunctionCodeInvalid | None = None
        self._start_lock = asyncio.Lock()
        self._slots: list[_Slot] = []
        self._idle: list[_Slot] = []  # most recently used last
        self._compiled = 0
        self._cache_hits = 0
        self._counts = Counters()
        self._out_of_fuel = 0
        # Stores of invocations that ended on the loop, freed by the loop's next round.
        self._retired: list[LiveInstance] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Compile (or load from the cache) and link the module, off the event loop.

        Optional: the first `invoke()` does it. Raises `WasmModuleError` when the module
        cannot be read, is not valid WebAssembly, or does not follow its ABI; every later
        `start()` and `invoke()` raises it again, without trying again.
        """
        if self.closed:
            raise PoolClosed("the function is closed")
        if self._linked is not None:
            return
        async with self._start_lock:
            if self._start_error is not None:
                raise self._start_error.with_traceback(None)
            if self._linked is None:
                try:
                    self._linked = await asyncio.to_thread(self._link)
                except FunctionCodeInvalid as error:
                    self._start_error = error
                    raise
            self.started = True

    def _link(self) -> LinkedModule:
        linked, compiled = link(self.spec, self._engine)
        if compiled:
            self._compiled += 1
        else:
            self._cache_hits += 1
        return linked

    async def aclose(self) -> None:
        """Stop every slot. In-flight callers get PoolClosed at once; a guest still running
        goes on until its deadline, and this returns when every slot thread has ended."""
        if self.closed:
            return
        self.closed = True
        for slot in self._slots:
            slot.stop()
            future = slot.future
            if future is not None and not future.done():
                future.set_exception(PoolClosed("the function was closed during the invocation"))
                future.exception()
        threads = [slot.thread for slot in self._slots if slot.thread is not None]
        for slot in self._slots:
            if slot.thread is None:  # nothing else will drop its stores (and pool slots)
                slot.state.warm = slot.state.retired = None
        self._idle.clear()
        self._retired.clear()
        if threads:
            await asyncio.to_thread(_join_all, threads)

    # -- invoking -------------------------------------------------------------------------

    def has_entry(self, entry: str) -> bool:
        """Whether the module exports `entry` (a WASI command handles every entry).

        A missing entry point means "continue unchanged": the caller need not build the event.
        True before `start()` (and when it failed: the invocation then says why).
        """
        linked = self._linked
        return linked is None or entry in linked.entries

    async def _invoke(self, invocation: Invocation) -> InvocationResult:
        """Run `invocation` in a free slot (a new slot under `max_concurrency`, else throttled
        at once): on the loop for one slice, then on the slot's thread (module docstring).
        The payload is the guest's bytes as they are (the caller validates them); `CONTINUE`
        (b"") when the guest returned 0 or has no such entry point. A guest has no context
        object (ABI.md): `invoked_arn`, `client_context` and `cognito_identity` do not reach
        it. A WASI exit status is `FunctionCrashed`.
        """
        spec = self.spec
        linked = self._linked
        assert linked is not None  # started by `invoke`
        if invocation.entry not in linked.entries:
            return continue_unchanged(invocation.request_id, spec.version, spec.memory_size_mb)
        if self._idle:
            slot = self._idle.pop()
        elif len(self._slots) < spec.max_concurrency:
            slot = _Slot(self, len(self._slots))
            self._slots.append(slot)
        else:
            self._counts.throttles += 1
            raise FunctionThrottled(spec.name, THROTTLE_REASON)
        self._counts.invocations += 1
        running = begin_invocation(linked, spec, self._engine, slot.state, invocation)
        if self._on_loop:
            try:
                result = running.run_slice()
            except BaseException as exc:
                self._settle(slot, exc)
                self._retire(slot.state)
                raise
            if result is not None:
                self._settle(slot, result)
                self._retire(slot.state)
                return result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InvocationResult] = loop.create_future()
        slot.submit((running, future, loop))
        del running
        # The slot is released by _complete() when the guest is done, not here: a cancelled
        # caller does not stop the guest, and its slot stays busy until the guest ends.
        return await future

    @property
    def _on_loop(self) -> bool:
        linked = self._linked
        return linked is not None and linked.sliced and self._engine.slice_seconds > 0

    def _retire(self, state: SlotState) -> None:
        """Free the store of an invocation that ended on the loop once the caller has gone on
        with its answer (freeing a store, unmapping its memory, costs ~5-15 µs)."""
        retired = state.retired
        if retired is None:
            return
        state.retired = None
        waiting = self._retired
        waiting.append(retired)
        if len(waiting) == 1:
            asyncio.get_running_loop().call_soon(waiting.clear)
        elif len(waiting) > _MAX_RETIRED:
            # A caller that awaits invocation after invocation without the loop coming round.
            waiting.clear()

    def _settle(self, slot: _Slot, outcome: InvocationResult | BaseException) -> None:
        """On the loop: release the slot, count and log an invocation that ended."""
        slot.future = None
        if self.closed:
            slot.stop()
        else:
            self._idle.append(slot)
        if isinstance(outcome, InvocationResult):
            deliver_log(self._log_sink, outcome.log)
            return
        if isinstance(outcome, FunctionThrottled):  # every instance slot of the engine taken
            self._counts.throttles += 1
            return
        if isinstance(outcome, FunctionError):
            self._counts.count_error(outcome)
            if outcome.error_type == FUEL_ERROR:
                self._out_of_fuel += 1
            deliver_log(self._log_sink, outcome.log)

    def _complete(
        self,
        slot: _Slot,
        future: asyncio.Future[InvocationResult],
        outcome: InvocationResult | BaseException,
    ) -> None:
        """On the loop, for an invocation that ended on the slot's thread: settle it and
        answer the caller."""
        self._settle(slot, outcome)
        if future.done():
            return
        if isinstance(outcome, InvocationResult):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)

    def stats(self) -> WasmStats:
        """Counters and gauges for a metrics layer."""
        slots = self._slots
        counts = self._counts
        counts.cold_starts = sum(slot.state.instances for slot in slots)
        counts.warm_starts = sum(slot.state.reuses for slot in slots)
        common = counts.snapshot(
            environments=len(slots), busy=len(slots) - len(self._idle), idle=len(self._idle)
        )
        return WasmStats(
            **{field.name: getattr(common, field.name) for field in dataclasses.fields(common)},
            out_of_fuel=self._out_of_fuel,
            compiled=self._compiled,
            cache_hits=self._cache_hits,
        )


def link(spec: WasmFunctionSpec, engine: WasmEngine) -> tuple[LinkedModule, bool]:
    """Load `spec`'s module (compiled, or from the engine's cache) and link it under its ABI;
    the linked module and whether it was compiled. Blocking: call it off the event loop.

    Raises `WasmModuleError` naming what is wrong (an import the host does not offer, an
    export of the wrong type, invalid WebAssembly, an unreadable file).
    """
    fuel = spec.fuel is not None
    try:
        try:
            loaded = engine.load_module(spec.module, fuel=fuel)
            linked = _linked(spec, engine, loaded.module, pooled=True)
        except wasmtime.WasmtimeError as exc:
            if _POOL_MISFIT not in str(exc):
                raise
            # A module bigger than a pool slot (a large table, several memories) runs on an
            # engine that maps each instance on its own, as before the pool.
            loaded = engine.load_module(spec.module, fuel=fuel, pooled=False)
            linked = _linked(spec, engine, loaded.module, pooled=False)
    except (OSError, UnicodeDecodeError, wasmtime.WasmtimeError, ModuleAbiError) as exc:
        raise WasmModuleError(spec.name, Path(spec.module), str(exc)) from exc
    return linked, loaded.compiled


_POOL_MISFIT = "does not fit in pooling allocator requirements"  # wasmtime's words


def _linked(
    spec: WasmFunctionSpec, engine: WasmEngine, module: wasmtime.Module, *, pooled: bool
) -> LinkedModule:
    return LinkedModule(
        engine.engine(fuel=spec.fuel is not None, pooled=pooled),
        module,
        spec.abi,
        memory_limit_bytes=spec.memory_limit_bytes,
        raw_calls=engine.raw_calls,
    )


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()
