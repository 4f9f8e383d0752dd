"""One invocation of a WASM function, start to finish, on one thread at a time.

An invocation arms the limits (epoch deadline, memory, fuel), runs the guest under its ABI,
and turns every way it can end into an `InvocationResult` or one `FunctionError` with the
invocation's complete log text in Lambda's format (START, the guest's lines, END, REPORT).

`begin_invocation` gives a `Running` invocation, whose `run_slice()` runs it until it ends or
its guest is suspended at the end of a slice (a sliced module: raw calls, core ABI; see
`guest`). The caller runs the first slice on the event loop and, when the guest outlives it,
hands the `Running` invocation to a thread, whose `run_to_end()` resumes the suspended guest
call there (the same call, not a new one: nothing runs twice) and drops it at the deadline.
Other modules never suspend: their deadline traps, and they run on a thread from the start.
No asyncio here: the caller hands the outcome back to the event loop.
"""

from __future__ import annotations

import math
import time

from sandbox.runtime import log_lines
from sandbox.runtime.errors import (
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionThrottled,
    FunctionTimeout,
)
from sandbox.runtime.limits import MIB
from sandbox.runtime.protocol import Invocation
from sandbox.runtime.result import InvocationResult
from sandbox.wasm import abi
from sandbox.wasm.capture import OutputCapture
from sandbox.wasm.engine import WasmEngine
from sandbox.wasm.guest import (
    INTERRUPT,
    GuestAbiViolation,
    GuestExit,
    GuestTrap,
    InstancesExhausted,
    LiveInstance,
    Slices,
    WasiSetup,
    set_capture,
)
from sandbox.wasm.instance import LinkedModule
from sandbox.wasm.spec import WasmFunctionSpec

TRAP_ERROR = "Runtime.Trap"
FUEL_ERROR = "Runtime.OutOfFuel"
ABI_ERROR = "Runtime.AbiViolation"
MEMORY_ERROR = "Runtime.OutOfMemory"
EXIT_ERROR = "Runtime.ExitError"
SIZE_ERROR = "Function.ResponseSizeTooLarge"
POOL_THROTTLE_REASON = "ConcurrentInvocationLimitExceeded"  # Lambda's account-level limit


class SlotState:
    """What a slot keeps between invocations; touched only by the slot's thread."""

    __slots__ = ("instances", "retired", "reuses", "warm")

    def __init__(self) -> None:
        self.warm: LiveInstance | None = None
        # The last fresh instance, dropped by the slot after the answer is on its way:
        # freeing a store (unmapping its memory) costs ~15-20 µs nobody should wait for.
        self.retired: LiveInstance | None = None
        self.instances = 0
        self.reuses = 0


def _megabytes(memory_bytes: int) -> int:
    return math.ceil(memory_bytes / MIB)


class _Run:
    """The state of one invocation while it runs (kept off the hot path's locals)."""

    __slots__ = ("capture", "init_ms", "instance", "memory_bytes", "request", "spec", "started")

    def __init__(self, spec: WasmFunctionSpec, request: Invocation) -> None:
        self.spec = spec
        self.request = request
        self.started = time.monotonic()
        self.instance: LiveInstance | None = None
        self.init_ms: float | None = None
        self.memory_bytes = 0
        request_id = request.request_id
        self.capture = OutputCapture(
            max_log_bytes=spec.max_log_bytes,
            max_stdout_bytes=spec.max_result_bytes,
            format_log_line=lambda message: abi.log_line(
                log_lines.utc_timestamp(time.time()), request_id, message
            ),
        )

    def memory_mb(self) -> int:
        if self.instance is not None:
            return _megabytes(self.instance.memory_bytes())
        return _megabytes(self.memory_bytes)

    def duration_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000.0 - (self.init_ms or 0.0)

    def log(
        self,
        output: str,
        duration_ms: float,
        *,
        status: str | None = None,
        error_type: str | None = None,
    ) -> str:
        request_id = self.request.request_id
        report = log_lines.report_line(
            request_id,
            duration_ms=duration_ms,
            memory_size_mb=self.spec.memory_size_mb,
            max_memory_used_mb=self.memory_mb(),
            init_duration_ms=self.init_ms,
            status=status,
            error_type=error_type,
        )
        return log_lines.invocation_log(request_id, self.spec.version, output, report)

    def error(
        self,
        cls: type[FunctionError],
        error_type: str,
        message: str,
        *,
        stack_trace: list[str] | None = None,
        status: str = "error",
        extra_log: str | None = None,
    ) -> FunctionError:
        request_id = self.request.request_id
        payload: dict[str, object] = {"errorMessage": message, "errorType": error_type}
        if stack_trace is not None:
            payload["stackTrace"] = stack_trace
        payload["requestId"] = request_id
        tail = extra_log if extra_log is not None else log_lines.format_error_log(payload)
        duration_ms = self.duration_ms()
        log = self.log(
            self.capture.text() + tail,
            duration_ms,
            status=status,
            error_type=None if status == "timeout" else error_type,
        )
        return cls(payload, log=log, request_id=request_id, duration_ms=duration_ms)

    def timeout(self) -> FunctionError:
        request = self.request
        budget = request.budget_seconds
        return self.error(
            FunctionTimeout,
            "Sandbox.Timedout",
            log_lines.timeout_message(request.request_id, budget),
            status="timeout",
            extra_log=log_lines.timeout_log_line(request.request_id, budget, time.time()),
        )

    def out_of_memory(self) -> FunctionError:
        message = (
            f"RequestId: {self.request.request_id} Error: the function's memory reached its "
            f"limit ({abi.describe_memory_limit(self.spec.memory_limit_bytes)})"
        )
        return self.error(
            FunctionMemoryExceeded, MEMORY_ERROR, message, extra_log=f"{message}\n{MEMORY_ERROR}\n"
        )

    def result(self, payload: bytes) -> InvocationResult:
        duration_ms = self.duration_ms()
        return InvocationResult(
            payload=payload,
            log=self.log(self.capture.text(), duration_ms),
            request_id=self.request.request_id,
            duration_ms=duration_ms,
            billed_duration_ms=log_lines.billed_duration_ms(duration_ms),
            max_memory_used_mb=self.memory_mb(),
            init_duration_ms=self.init_ms,
            executed_version=self.spec.version,
        )


def begin_invocation(
    linked: LinkedModule,
    spec: WasmFunctionSpec,
    engine: WasmEngine,
    slot: SlotState,
    request: Invocation,
) -> Running:
    """`request`'s invocation, not yet started: `run_slice` runs it."""
    run = _Run(spec, request)
    return Running(run, _invocation_steps(linked, spec, engine, slot, run))


class Running:
    """An invocation under way: its state and its steps (a generator that yields each time the
    guest is suspended at the end of a slice). Driven by one thread at a time."""

    __slots__ = ("run", "steps")

    def __init__(self, run: _Run, steps: Slices[InvocationResult]) -> None:
        self.run = run
        self.steps = steps

    def run_slice(self) -> InvocationResult | None:
        """Run the invocation on this thread until it ends or its guest is suspended at the end
        of a slice: its result, None when suspended with time left, or raises `FunctionError`.
        A guest suspended at or past the invocation's deadline is dropped: a timeout."""
        run = self.run
        set_capture(run.capture)
        try:
            self.steps.send(None)
        except StopIteration as done:
            result: InvocationResult = done.value
            return result
        finally:
            set_capture(None)
        if time.monotonic() < run.request.deadline:
            return None
        set_capture(run.capture)
        try:
            # The timeout comes out of the steps (the guest's call is dropped on the way).
            self.steps.throw(GuestTrap(INTERRUPT, "the invocation reached its deadline", []))
        finally:
            set_capture(None)
        raise AssertionError("an interrupted invocation went on")  # pragma: no cover

    def run_to_end(self) -> InvocationResult:
        """Run the invocation on this thread until it ends (a thread may block: the guest
        runs a tick at a time until its deadline)."""
        while True:
            result = self.run_slice()
            if result is not None:
                return result


def run_invocation(
    linked: LinkedModule,
    spec: WasmFunctionSpec,
    engine: WasmEngine,
    slot: SlotState,
    request: Invocation,
) -> InvocationResult:
    """Run `request` to its end on this thread; raises `FunctionError` (or a subclass) when the
    guest failed."""
    return begin_invocation(linked, spec, engine, slot, request).run_to_end()


def _invocation_steps(
    linked: LinkedModule,
    spec: WasmFunctionSpec,
    engine: WasmEngine,
    slot: SlotState,
    run: _Run,
) -> Slices[InvocationResult]:
    request = run.request
    seconds_left = request.deadline - run.started
    if seconds_left <= 0:
        raise run.timeout()
    engine.invocation_started()
    failure: FunctionError | None = None
    throttled: FunctionThrottled | None = None
    payload = abi.CONTINUE
    try:
        if spec.abi == "core":
            payload = yield from _core_steps(linked, spec, engine, slot, run, seconds_left)
        else:
            payload = _run_wasi(linked, spec, engine, slot, run, seconds_left)
    except GuestTrap as trap:
        slot.warm = None  # a trapped instance's state is unknown: never reuse it
        failure = _trap_error(run, trap)
    except GuestExit as exit_:
        slot.warm = None
        message = (
            f"RequestId: {request.request_id} Error: Runtime exited with error: "
            f"exit status {exit_.code}"
        )
        failure = run.error(
            FunctionCrashed, EXIT_ERROR, message, extra_log=f"{message}\n{EXIT_ERROR}\n"
        )
    except GuestAbiViolation as violation:
        slot.warm = None
        failure = run.error(FunctionError, ABI_ERROR, str(violation))
    except FunctionError as error:
        slot.warm = None
        failure = error.with_traceback(None)  # its frames hold the instance
    except InstancesExhausted:
        # Every instance slot of the process is taken: throttled, as Lambda throttles at the
        # account's concurrency limit.
        throttled = FunctionThrottled(spec.name, POOL_THROTTLE_REASON)
    finally:
        engine.invocation_finished()
        if run.instance is not None:
            run.memory_bytes = run.instance.memory_bytes()
        # Freed by the slot after the answer is on its way, not whenever an exception's
        # frames die: a WASI store's output streams call back into Python from wasmtime's own
        # threads.
        if run.instance is not slot.warm:
            slot.retired = run.instance
        run.instance = None
    if throttled is not None:
        raise throttled
    if failure is not None:
        # Raised outside the except blocks: no __context__ that would keep the guest's frames.
        raise failure
    if len(payload) > spec.max_result_bytes:
        raise run.error(FunctionError, SIZE_ERROR, _size_message(len(payload), spec))
    return run.result(payload)


def _size_message(size: int, spec: WasmFunctionSpec) -> str:
    return (
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({spec.max_result_bytes} bytes)."
    )


def _trap_error(run: _Run, trap: GuestTrap) -> FunctionError:
    if trap.code == INTERRUPT:
        return run.timeout()
    if trap.code == "OUT_OF_FUEL":
        message = (
            f"RequestId: {run.request.request_id} Error: the invocation used all of its fuel "
            f"({run.spec.fuel} units)"
        )
        return run.error(FunctionError, FUEL_ERROR, message)
    if run.instance is not None and abi.memory_exceeded(
        run.instance.memory_bytes(), run.spec.memory_limit_bytes
    ):
        return run.out_of_memory()
    trace = "".join(f"  {frame}\n" for frame in trap.frames)
    return run.error(
        FunctionError,
        TRAP_ERROR,
        trap.message,
        stack_trace=trap.frames,
        extra_log=f"[ERROR] {TRAP_ERROR}: {trap.message}\n"
        + (f"wasm backtrace:\n{trace}" if trace else ""),
    )


def _core_steps(
    linked: LinkedModule,
    spec: WasmFunctionSpec,
    engine: WasmEngine,
    slot: SlotState,
    run: _Run,
    seconds_left: float,
) -> Slices[bytes]:
    request = run.request
    # A sliced guest is suspended after one slice (then every tick, until the deadline);
    # elsewhere the deadline traps.
    if linked.sliced:
        seconds_left = min(seconds_left, engine.slice_seconds)
    ticks = engine.deadline_ticks(seconds_left)
    instance = slot.warm
    if instance is None:
        begun = time.monotonic()
        instance = yield from linked.instantiate_sliced(
            memory_limit_bytes=spec.memory_limit_bytes, deadline_ticks=ticks, fuel=spec.fuel
        )
        slot.instances += 1
        if spec.reuse_instance:
            # A warm instance's first invocation reports its instantiation as Init, as Lambda
            # reports a cold start's init.
            run.init_ms = (time.monotonic() - begun) * 1000.0
            slot.warm = instance
    else:
        slot.reuses += 1
        instance.set_limits(deadline_ticks=ticks, fuel=spec.fuel)
        if linked.has_reset:
            suspended = instance.start_void(abi.RESET_EXPORT)
            if suspended is not None:
                yield from instance.resume(suspended)
    run.instance = instance
    event = request.event
    size = len(event)
    # `start_*` runs a call without a generator; `resume` only when it was suspended.
    suspended = instance.start_alloc(size)
    if suspended is not None:
        yield from instance.resume(suspended)
    ptr = instance.answer
    if ptr == 0:
        slot.warm = None
        if abi.memory_exceeded(instance.memory_bytes(), spec.memory_limit_bytes, size):
            raise run.out_of_memory()
        raise GuestAbiViolation(f"edge_alloc({size}) returned 0")
    instance.write(ptr, event)
    suspended = instance.start_entry(request.entry, ptr, size)
    if suspended is not None:
        yield from instance.resume(suspended)
    packed = instance.answer
    if packed == 0:
        return abi.CONTINUE
    result_ptr, length = abi.unpack_result(packed)
    if length > spec.max_result_bytes:
        slot.warm = None
        raise run.error(FunctionError, SIZE_ERROR, _size_message(length, spec))
    return instance.read(result_ptr, length)


def _run_wasi(
    linked: LinkedModule,
    spec: WasmFunctionSpec,
    engine: WasmEngine,
    slot: SlotState,
    run: _Run,
    seconds_left: float,
) -> bytes:
    capture = run.capture
    instance = linked.instantiate(
        memory_limit_bytes=spec.memory_limit_bytes,
        deadline_ticks=engine.deadline_ticks(seconds_left),
        fuel=spec.fuel,
        wasi=WasiSetup(
            argv=[spec.name],
            environment=sorted(spec.wasi_environment().items()),
            stdin=run.request.event,
            capture=capture,
        ),
    )
    slot.instances += 1
    run.instance = instance
    instance.run_start()
    if capture.stdout_overflow:
        raise run.error(FunctionError, SIZE_ERROR, _size_message(capture.stdout_bytes, spec))
    return bytes(capture.stdout)
