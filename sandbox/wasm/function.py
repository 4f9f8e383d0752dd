"""A WASM function version behind the sandbox interface: slots, throttling, the thread hand-off.

`WasmFunction` has the shape of `PythonFunctionPool`: `invoke(event) -> InvocationResult`,
raising one of `sandbox.errors`. Each invocation runs on the thread of one execution slot
(never on the event loop: wasmtime releases the GIL while the guest runs, so a spinning guest
stalls nobody); at most `max_concurrency` slots exist, and an invocation that finds them all
busy is throttled, as Lambda throttles a version at its reserved concurrency (spec §8.3).
A slot is a thread with a queue: the loop puts the request on it and the thread answers with
`call_soon_threadsafe` — about half the cost of `run_in_executor` (see wasm_bench.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from sandbox.errors import (
    FunctionError,
    FunctionMemoryExceeded,
    FunctionThrottled,
    FunctionTimeout,
    PayloadTooLarge,
    PoolClosed,
)
from sandbox.pool import THROTTLE_REASON, LogSink, new_request_id
from sandbox.python_worker import log_lines
from sandbox.python_worker.environment import InvocationResult
from sandbox.wasm import abi
from sandbox.wasm.engine import WasmEngine
from sandbox.wasm.errors import WasmModuleError
from sandbox.wasm.instance import LinkedModule, ModuleAbiError
from sandbox.wasm.invocation import FUEL_ERROR, InvocationRequest, SlotState, run_invocation
from sandbox.wasm.spec import WasmFunctionSpec

_Job = tuple[InvocationRequest, "asyncio.Future[InvocationResult]", asyncio.AbstractEventLoop]


@dataclass(frozen=True, slots=True)
class WasmStats:
    """A snapshot of a function's counters (totals since start) and gauges (now).

    `compiled` / `cache_hits`: whether `start()` compiled the module or loaded it from the
    engine's cache (disk or memory). `instances`: instances created; `reuses`: invocations
    served by a warm instance (`reuse_instance`).
    """

    invocations: int
    throttles: int
    function_errors: int
    timeouts: int
    memory_exceeded: int
    out_of_fuel: int
    compiled: int
    cache_hits: int
    instances: int
    reuses: int
    slots: int
    busy: int
    idle: int


class _Slot:
    """One execution slot: a thread that runs one invocation at a time, and its warm state."""

    def __init__(self, function: WasmFunction, number: int) -> None:
        self.state = SlotState()
        self._function = function
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.future: asyncio.Future[InvocationResult] | None = None
        self.thread = threading.Thread(
            target=self._serve, name=f"wasm-{function.spec.name}-{number}", daemon=True
        )
        self.thread.start()

    def submit(self, job: _Job) -> None:
        self.future = job[1]
        self._queue.put(job)

    def stop(self) -> None:
        self._queue.put(None)

    def _serve(self) -> None:
        function = self._function
        linked = function._linked
        assert linked is not None
        spec, engine, state = function.spec, function._engine, self.state
        while True:
            job = self._queue.get()
            if job is None:
                state.warm = state.retired = None  # drop the stores on their own thread
                return
            request, future, loop = job
            outcome: InvocationResult | BaseException
            try:
                outcome = run_invocation(linked, spec, engine, state, request)
            except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting caller
                outcome = exc
            # RuntimeError: the loop is closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(function._complete, self, future, outcome)
            del outcome
            state.retired = None


class WasmFunction:
    """One WASM function version, run by wasmtime with a fresh (or per-slot warm) instance.

    `log_sink` receives each invocation's complete log text (START..REPORT, also for failed
    invocations); it is called on the event loop and must be quick and must not raise.
    `engine` is shared by every function of the process (and owned by the caller).

    Use as `async with WasmFunction(spec, engine=engine) as function:` or call `aclose()`.
    """

    def __init__(
        self, spec: WasmFunctionSpec, *, engine: WasmEngine, log_sink: LogSink | None = None
    ) -> None:
        self.spec = spec
        self._engine = engine
        self._log_sink = log_sink
        self._linked: LinkedModule | None = None
        self._start_lock = asyncio.Lock()
        self._slots: list[_Slot] = []
        self._idle: list[_Slot] = []  # most recently used last
        self._closed = False
        self._compiled = 0
        self._cache_hits = 0
        self._invocations = 0
        self._throttles = 0
        self._errors = 0
        self._timeouts = 0
        self._memory_exceeded = 0
        self._out_of_fuel = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Compile (or load from the cache) and link the module, off the event loop.

        Optional: the first `invoke()` does it. Raises `WasmModuleError` when the module
        cannot be read, is not valid WebAssembly, or does not follow its ABI.
        """
        if self._closed:
            raise PoolClosed("the function is closed")
        if self._linked is not None:
            return
        async with self._start_lock:
            if self._linked is None:
                self._linked = await asyncio.to_thread(self._link)

    def _link(self) -> LinkedModule:
        spec = self.spec
        fuel = spec.fuel is not None
        try:
            loaded = self._engine.load_module(spec.module, fuel=fuel)
            linked = LinkedModule(
                self._engine.engine(fuel=fuel),
                loaded.module,
                spec.abi,
                memory_limit_bytes=spec.memory_limit_bytes,
            )
        except (OSError, UnicodeDecodeError, wasmtime.WasmtimeError, ModuleAbiError) as exc:
            raise WasmModuleError(spec.name, Path(spec.module), str(exc)) from exc
        if loaded.compiled:
            self._compiled += 1
        else:
            self._cache_hits += 1
        return linked

    async def __aenter__(self) -> WasmFunction:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every slot. In-flight callers get PoolClosed at once; a guest still running
        goes on until its deadline, and this returns when every slot thread has ended."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            slot.stop()
            future = slot.future
            if future is not None and not future.done():
                future.set_exception(PoolClosed("the function was closed during the invocation"))
                future.exception()
        threads = [slot.thread for slot in self._slots]
        self._idle.clear()
        if threads:
            await asyncio.to_thread(_join_all, threads)

    # -- invoking -------------------------------------------------------------------------

    def has_entry(self, entry: str) -> bool:
        """Whether the module exports `entry` (a WASI command handles every entry).

        A missing entry point means "continue unchanged": the caller need not build the event.
        Requires `start()`.
        """
        if self._linked is None:
            raise RuntimeError(f"start() the function {self.spec.name!r} before asking")
        return entry in self._linked.entries

    async def invoke(
        self,
        event: bytes,
        *,
        entry: str = "handler",
        request_id: str | None = None,
        deadline: float | None = None,
        timeout_seconds: float | None = None,
    ) -> InvocationResult:
        """Invoke the entry point `entry` once with `event` (JSON bytes).

        `deadline` (absolute, `time.monotonic()` clock) can only shorten the function's
        timeout; `timeout_seconds` names the caller's limit in a timeout message when the
        caller's deadline is the one that ends the invocation. The result's payload is the
        guest's bytes as they are (the caller validates them); `abi.CONTINUE` (b"") when the
        guest returned 0 or has no such entry point. Raises `FunctionError` (`FunctionTimeout`,
        `FunctionMemoryExceeded`, `FunctionCrashed` for a WASI exit status) when the guest
        failed, `FunctionThrottled` when all `max_concurrency` slots are busy,
        `PayloadTooLarge`, `PoolClosed` after `aclose()`, `WasmModuleError` if it cannot start.
        """
        if self._closed:
            raise PoolClosed("the function is closed")
        spec = self.spec
        if len(event) > spec.max_event_bytes:
            raise PayloadTooLarge(len(event), spec.max_event_bytes)
        linked = self._linked
        if linked is None:
            await self.start()
            linked = self._linked
            assert linked is not None
        now = time.monotonic()
        budget = now + spec.timeout_seconds
        if deadline is None or deadline >= budget:
            deadline, budget_seconds = budget, spec.timeout_seconds
        else:
            budget_seconds = (
                timeout_seconds if timeout_seconds is not None else max(0.0, deadline - now)
            )
        request_id = request_id or new_request_id()
        if entry not in linked.entries:
            return self._continue_unchanged(request_id)
        if self._idle:
            slot = self._idle.pop()
        elif len(self._slots) < spec.max_concurrency:
            slot = _Slot(self, len(self._slots))
            self._slots.append(slot)
        else:
            self._throttles += 1
            raise FunctionThrottled(spec.name, THROTTLE_REASON)
        self._invocations += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InvocationResult] = loop.create_future()
        slot.submit(
            (InvocationRequest(event, entry, request_id, deadline, budget_seconds), future, loop)
        )
        # The slot is released by _complete() when the guest is done, not here: a cancelled
        # caller does not stop the guest, and its slot stays busy until the guest ends.
        return await future

    def _complete(
        self,
        slot: _Slot,
        future: asyncio.Future[InvocationResult],
        outcome: InvocationResult | BaseException,
    ) -> None:
        """On the loop: release the slot, count, log, and answer the caller."""
        slot.future = None
        if self._closed:
            slot.stop()
        else:
            self._idle.append(slot)
        if isinstance(outcome, InvocationResult):
            self._emit(outcome.log)
            if not future.done():
                future.set_result(outcome)
            return
        if isinstance(outcome, FunctionError):
            self._errors += 1
            if isinstance(outcome, FunctionTimeout):
                self._timeouts += 1
            elif isinstance(outcome, FunctionMemoryExceeded):
                self._memory_exceeded += 1
            elif outcome.error_type == FUEL_ERROR:
                self._out_of_fuel += 1
            self._emit(outcome.log)
        if not future.done():
            future.set_exception(outcome)

    def _continue_unchanged(self, request_id: str) -> InvocationResult:
        version = self.spec.version
        log = (
            log_lines.start_line(request_id, version)
            + log_lines.end_line(request_id)
            + log_lines.report_line(
                request_id,
                duration_ms=0.0,
                memory_size_mb=self.spec.memory_mb,
                max_memory_used_mb=0,
            )
        )
        return InvocationResult(
            payload=abi.CONTINUE,
            log=log,
            request_id=request_id,
            duration_ms=0.0,
            billed_duration_ms=0,
            max_memory_used_mb=0,
            init_duration_ms=None,
            executed_version=version,
        )

    def _emit(self, log: str) -> None:
        if self._log_sink is None:
            return
        try:
            self._log_sink(log)
        except Exception as exc:  # noqa: BLE001 - a broken sink must not fail invocations
            asyncio.get_running_loop().call_exception_handler(
                {"message": "log sink raised", "exception": exc}
            )

    def stats(self) -> WasmStats:
        """Counters and gauges for a metrics layer."""
        slots = self._slots
        return WasmStats(
            invocations=self._invocations,
            throttles=self._throttles,
            function_errors=self._errors,
            timeouts=self._timeouts,
            memory_exceeded=self._memory_exceeded,
            out_of_fuel=self._out_of_fuel,
            compiled=self._compiled,
            cache_hits=self._cache_hits,
            instances=sum(slot.state.instances for slot in slots),
            reuses=sum(slot.state.reuses for slot in slots),
            slots=len(slots),
            busy=len(slots) - len(self._idle),
            idle=len(self._idle),
        )


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join()
