"""One process execution environment, host side: a runtime process (`node`, a custom runtime's
agent) serving one invocation at a time over a framed socket.

`FramedEnvironment.configure()` turns a started process into an environment (its variables, its
handler: Init begins); `invoke()` sends an event and waits for the answer until the deadline.
Every way an invocation ends becomes an `InvocationResult` or one `FunctionError` subclass with
the invocation's complete log in Lambda's format, as for Python functions: a timeout kills the
process at the deadline (`Sandbox.Timedout`), a process that died is `Runtime.ExitError`, one
that ran out of memory (its runtime's last words, `out_of_memory_marks`, or an answer marked
so) is `Runtime.OutOfMemory` (and is replaced). Nothing the process sends is trusted:
frames are decoded under the result and log limits, and a frame over them, unreadable or
unasked for kills the environment (Function.ResponseSizeTooLarge for a result over the limit).

The process side speaks `sandbox.runtime.framing`: a CONFIGURE frame in, an INIT frame out
(meta `{"i": init ms, "m": MB}`, the error document as blob when Init failed), then INVOKE in,
RESULT or ERROR out (meta `{"d": duration ms, "m": MB}`), the output since the last frame as
each answer's log section. Each runtime subclasses `FramedEnvironment` for what is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self

import orjson

from sandbox.runtime import log_lines
from sandbox.runtime.errors import (
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionTimeout,
    PoolClosed,
)
from sandbox.runtime.framing import (
    KIND_CONFIGURE,
    KIND_ERROR,
    KIND_INIT,
    KIND_INVOKE,
    KIND_RESULT,
    Frame,
    FrameDecoder,
    FrameError,
    encode_frame,
    environment_limits,
)
from sandbox.runtime.process import SpawnedProcess
from sandbox.runtime.protocol import Invocation
from sandbox.runtime.result import InvocationResult

_LOST = "lost"
_EXPIRED = "expired"
_VIOLATED = "violated"
_EXIT_STATUS_WAIT_SECONDS = 2.0
_OWN_EXIT_WAIT_SECONDS = 0.5


class FramedSpec(Protocol):
    """What an environment reads of its function version's spec."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def max_result_bytes(self) -> int: ...
    @property
    def max_log_bytes(self) -> int: ...
    @property
    def function_arn(self) -> str: ...


def _output_text(frame: Frame) -> str:
    text = frame.log.decode("utf-8", "replace")
    if frame.log_dropped:
        return log_lines.dropped_marker(frame.log_dropped) + text
    return text


@dataclass(frozen=True, slots=True)
class _InitReport:
    init_ms: float
    max_memory_mb: int
    output: str
    error: dict[str, Any] | None


@dataclass(slots=True)
class _Call:
    """One invocation in an environment: what its result or failure needs, its answer (or why
    none came) and the timer that ends it at its deadline."""

    invocation: Invocation
    started: float
    first: bool
    future: asyncio.Future[Frame | str]
    timer: asyncio.TimerHandle | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def _expire(call: _Call) -> None:
    if not call.future.done():
        call.future.set_result(_EXPIRED)


class _Connection(asyncio.Protocol):
    def __init__(self, environment: FramedEnvironment) -> None:
        self._environment = environment
        spec = environment.spec
        self._decoder = FrameDecoder(
            environment_limits(
                max_result_bytes=spec.max_result_bytes, max_log_bytes=spec.max_log_bytes
            )
        )

    def data_received(self, data: bytes) -> None:
        environment = self._environment
        if environment._violation is not None:
            return
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            environment._on_violation(exc)
            return
        for frame in frames:
            environment._on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._environment._on_lost()


class FramedEnvironment:
    """A Lambda execution environment backed by one runtime process. Create with `configure()`.

    `out_of_memory_marks`: what the runtime prints when it ends for want of memory (a process
    that died with one of them in its output is `Runtime.OutOfMemory`).
    """

    out_of_memory_marks: tuple[str, ...] = ()

    def __init__(
        self,
        spec: FramedSpec,
        process: SpawnedProcess,
        *,
        provisioned: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.spec = spec
        self.process = process
        self.provisioned = provisioned
        self.last_used = 0.0
        self.invocations = 0
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._init: _InitReport | None = None
        self._waiter: asyncio.Future[Frame | str] | None = None
        self._lost = False
        self._killed = False
        self._closed_by_owner = False
        self._released = False
        self._violation: FrameError | None = None
        self.on_answer: Callable[[FramedEnvironment], None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ready(self) -> bool:
        """True once Init finished (successfully or not)."""
        return self._init is not None

    def waits_on_io(self) -> bool:
        """True when the runtime is asleep in the invocation it was given and has not answered (a
        handler awaiting the network, a timer...): another process would not take CPU from it."""
        return self.process.sleeps() and not self.process.answer_pending()

    @property
    def alive(self) -> bool:
        """True while the environment can take an invocation."""
        return not (self._lost or self._killed) and (self._init is None or not self._init.error)

    @classmethod
    async def configure(
        cls,
        process: SpawnedProcess,
        spec: FramedSpec,
        settings: dict[str, Any],
        *,
        provisioned: bool,
    ) -> Self:
        """Make `process` an environment with `settings` (its variables, handler and limits);
        Init proceeds in the background."""
        loop = asyncio.get_running_loop()
        environment = cls(spec, process, provisioned=provisioned, loop=loop)
        try:
            transport, _ = await loop.create_unix_connection(
                lambda: _Connection(environment), sock=process.sock
            )
        except BaseException:
            process.kill()
            raise
        environment._transport = transport
        transport.write(encode_frame(KIND_CONFIGURE, orjson.dumps(settings)))
        return environment

    # -- events from the connection -------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        waiter = self._waiter
        awaited = waiter is not None and not waiter.done()
        if frame.kind == KIND_INIT and self._init is None:
            try:
                meta = orjson.loads(frame.meta)
                error = orjson.loads(frame.blob) if frame.blob else None
                if not (error is None or isinstance(error, dict)):
                    raise TypeError("an init error is a JSON object")
                self._init = _InitReport(
                    init_ms=float(meta["i"]),
                    max_memory_mb=int(meta["m"]),
                    output=_output_text(frame),
                    error=error,
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self._on_violation(FrameError("an Init report that cannot be read", kind=KIND_INIT))
                return
        elif not awaited:
            self._on_violation(FrameError("a frame nobody asked for", kind=frame.kind))
            return
        if waiter is not None and awaited:
            waiter.set_result(frame)
            if frame.kind == KIND_RESULT and not frame.log_dropped and self.on_answer is not None:
                self.on_answer(self)  # free now: the pool may send the next invocation at once

    def _on_violation(self, exc: FrameError) -> None:
        if self._violation is None:
            self._violation = exc
        self.kill()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(_VIOLATED)

    def _on_lost(self) -> None:
        self._lost = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(_LOST)

    def _on_deadline(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(_EXPIRED)

    async def _next_event(self, waiter: asyncio.Future[Frame | str] | None = None) -> Frame | str:
        if self._lost:
            return _LOST
        if waiter is None:
            waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    # -- lifecycle ------------------------------------------------------------------------

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait for Init to finish; True if the environment can serve."""
        if self._init is None and not self._lost:
            timer = self._loop.call_later(timeout_seconds, self._on_deadline)
            try:
                await self._next_event()
            finally:
                timer.cancel()
        if self._init is None:
            self.kill()
        return self.alive

    @property
    def init_output(self) -> str:
        return "" if self._init is None else self._init.output

    def kill(self, *, closing: bool = False) -> None:
        """Kill the process now. `closing`: the owner is shutting down (callers get PoolClosed)."""
        self._closed_by_owner = self._closed_by_owner or closing
        if not self._killed:
            self._killed = True
            self.process.kill()
        if self._transport is not None:
            self._transport.close()

    async def wait_exited(self) -> None:
        """Wait until the process is gone and its resources released."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.process.exited)
        if not self._released:
            self._released = True
            self.process.release()

    # -- invoking -------------------------------------------------------------------------

    async def invoke(self, invocation: Invocation) -> InvocationResult:
        """Run one invocation until its deadline (waiting for Init first). Raises a
        `FunctionError` subclass for every failure of the function, with its log."""
        call = self._begin(invocation)
        if self._init is None:
            try:
                outcome = await self._next_event(call.future)
            except asyncio.CancelledError:
                self.kill()
                call.cancel_timer()
                raise
            if isinstance(outcome, str):
                call.cancel_timer()
                raise await self._failure(outcome, call)
            call.future = self._loop.create_future()
        init = self._init
        assert init is not None
        if init.error is not None:
            call.cancel_timer()
            raise self._init_failure(init, invocation.request_id, call.started)
        self._send(call)
        return await self.finish(call)

    def dispatch(self, invocation: Invocation) -> _Call:
        """Send `invocation` now to this ready, idle environment (no await: the pool calls it
        the moment the previous answer arrived); `finish()` the handle for its result."""
        call = self._begin(invocation)
        self._send(call)
        return call

    async def finish(self, call: _Call) -> InvocationResult:
        """The result of an invocation sent by `dispatch()` (or `invoke()`)."""
        future = call.future
        try:
            if future.done():
                outcome = future.result()
            elif self._lost:
                outcome = _LOST
            else:
                outcome = await future
            if isinstance(outcome, str):
                raise await self._failure(outcome, call)
        except asyncio.CancelledError:
            self.kill()  # nobody will read this invocation's answer
            raise
        finally:
            call.cancel_timer()
            if self._waiter is future:
                self._waiter = None
        return self._complete(outcome, call.invocation.request_id, call.first, call.started)

    def _begin(self, invocation: Invocation) -> _Call:
        started = time.monotonic()
        first = self.invocations == 0
        self.invocations += 1
        call = _Call(invocation, started, first, self._loop.create_future())
        call.timer = self._loop.call_later(max(0.0, invocation.deadline - started), _expire, call)
        return call

    def _send(self, call: _Call) -> None:
        invocation = call.invocation
        meta: dict[str, Any] = {
            "id": invocation.request_id,
            "arn": invocation.invoked_arn or self.spec.function_arn,
            "dl": int((time.time() + (invocation.deadline - time.monotonic())) * 1000),
        }
        if invocation.client_context is not None:
            meta["cc"] = invocation.client_context
        if invocation.cognito_identity is not None:
            meta["ci"] = invocation.cognito_identity
        if invocation.trace_id is not None:
            meta["tr"] = invocation.trace_id
        transport = self._transport
        assert transport is not None
        self._waiter = call.future
        transport.write(encode_frame(KIND_INVOKE, orjson.dumps(meta), invocation.event))

    def _first_of_on_demand(self, first: bool) -> bool:
        return first and not self.provisioned and self._init is not None

    def _log(
        self,
        request_id: str,
        first: bool,
        output: str,
        duration_ms: float,
        memory_mb: int,
        *,
        status: str | None = None,
        error_type: str | None = None,
    ) -> str:
        cold = self._first_of_on_demand(first)
        assert self._init is not None or not cold
        report = log_lines.report_line(
            request_id,
            duration_ms=duration_ms,
            memory_size_mb=self.spec.memory_mb,
            max_memory_used_mb=memory_mb,
            init_duration_ms=self._init.init_ms if cold and self._init else None,
            status=status,
            error_type=error_type,
        )
        prefix = self._init.output if cold and self._init else ""
        return log_lines.invocation_log(request_id, self.spec.version, output, report, prefix)

    def _complete(
        self, frame: Frame, request_id: str, first: bool, started: float
    ) -> InvocationResult:
        try:
            meta = orjson.loads(frame.meta)
            duration_ms = float(meta["d"])
            memory_mb = int(meta["m"])
            error_payload = orjson.loads(frame.blob) if frame.kind == KIND_ERROR else {}
            if frame.kind not in (KIND_RESULT, KIND_ERROR) or not isinstance(error_payload, dict):
                raise TypeError("not an answer")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self._on_violation(FrameError("an answer that cannot be read", kind=frame.kind))
            raise self._violation_failure(request_id, started, first) from None
        output = _output_text(frame)
        if frame.log_dropped:
            self.kill()  # the runtime never sends more than the limit: other code wrote this
        if frame.kind == KIND_ERROR and meta.get("k") == "memory":
            self.kill()
            message = f"RequestId: {request_id} Error: Runtime exited with error: out of memory"
            raise self._exit_failure(
                FunctionMemoryExceeded,
                "Runtime.OutOfMemory",
                message,
                request_id,
                first,
                duration_ms,
                output,
            )
        log = self._log(request_id, first, output, duration_ms, memory_mb)
        if frame.kind == KIND_RESULT:
            return InvocationResult(
                payload=frame.blob,
                log=log,
                request_id=request_id,
                duration_ms=duration_ms,
                billed_duration_ms=log_lines.billed_duration_ms(duration_ms),
                max_memory_used_mb=memory_mb,
                init_duration_ms=self._init.init_ms
                if self._first_of_on_demand(first) and self._init
                else None,
                executed_version=self.spec.version,
            )
        raise FunctionError(error_payload, log=log, request_id=request_id, duration_ms=duration_ms)

    def _violation_failure(self, request_id: str, started: float, first: bool) -> FunctionError:
        violation = self._violation
        assert violation is not None
        self.kill()
        duration_ms = (time.monotonic() - started) * 1000.0
        cls: type[FunctionError]
        if violation.kind == KIND_RESULT and violation.section == "blob":
            cls, error_type = FunctionError, "Function.ResponseSizeTooLarge"
            message = (
                f"Response payload size ({violation.size_bytes} bytes) exceeded maximum "
                f"allowed payload size ({self.spec.max_result_bytes} bytes)."
            )
        else:
            cls, error_type = FunctionCrashed, "Runtime.ExitError"
            message = (
                f"RequestId: {request_id} Error: Runtime exited with error: the environment "
                f"broke the runtime protocol ({violation}) and was stopped"
            )
        return self._exit_failure(cls, error_type, message, request_id, first, duration_ms)

    def _exit_failure(
        self,
        cls: type[FunctionError],
        error_type: str,
        message: str,
        request_id: str,
        first: bool,
        duration_ms: float,
        output: str | None = None,
    ) -> FunctionError:
        spec = self.spec
        if output is None:
            output = self.process.read_output(spec.max_log_bytes)
        log = self._log(
            request_id,
            first,
            f"{output}{message}\n{error_type}\n",
            duration_ms,
            spec.memory_mb,
            status="error",
            error_type=error_type,
        )
        payload = {"errorType": error_type, "errorMessage": message}
        return cls(payload, log=log, request_id=request_id, duration_ms=duration_ms)

    def _init_failure(self, init: _InitReport, request_id: str, started: float) -> FunctionError:
        assert init.error is not None
        duration_ms = (time.monotonic() - started) * 1000.0
        payload, output = self.init_error(init.error, request_id)
        error_type = str(payload.get("errorType", ""))
        report = log_lines.report_line(
            request_id,
            duration_ms=duration_ms,
            memory_size_mb=self.spec.memory_mb,
            max_memory_used_mb=init.max_memory_mb,
            init_duration_ms=init.init_ms,
            status="error",
            error_type=error_type,
        )
        log = log_lines.invocation_log(request_id, self.spec.version, output, report, init.output)
        self.kill()
        return FunctionError(payload, log=log, request_id=request_id, duration_ms=duration_ms)

    def init_error(self, error: dict[str, Any], request_id: str) -> tuple[dict[str, Any], str]:
        """The error document of an invocation whose environment's Init failed with `error`
        (what the runtime reported), and what the invocation's log shows of it (the runtime
        logged its own error: nothing more)."""
        return error, ""

    def exit_message(self, wait_status: int | None) -> str:
        """How Lambda words the end of a runtime process that exited with `wait_status`."""
        return f"Runtime exited with error: {log_lines.exit_reason(wait_status)}"

    async def _failure(self, outcome: str, call: _Call) -> FunctionError | PoolClosed:
        """The error for an invocation whose process timed out, died or broke the protocol."""
        spec = self.spec
        invocation, started, first = call.invocation, call.started, call.first
        request_id = invocation.request_id
        if self._closed_by_owner:
            return PoolClosed("the pool was closed during the invocation")
        if outcome == _VIOLATED or (self._violation is not None and outcome == _LOST):
            return self._violation_failure(request_id, started, first)
        if outcome == _EXPIRED:
            memory_mb = self.process.peak_memory_mb()
            self.kill()
            now_epoch = time.time()
            duration_ms = (time.monotonic() - started) * 1000.0
            budget = invocation.budget_seconds
            output = self.process.read_output(spec.max_log_bytes)
            log = self._log(
                request_id,
                first,
                output + log_lines.timeout_log_line(request_id, budget, now_epoch),
                duration_ms,
                memory_mb if memory_mb is not None else spec.memory_mb,
                status="timeout",
            )
            payload = {
                "errorMessage": log_lines.timeout_message(request_id, budget),
                "errorType": "Sandbox.Timedout",
            }
            return FunctionTimeout(payload, log=log, request_id=request_id, duration_ms=duration_ms)
        # The process died: its wait status names how, and its last words whether memory ran out.
        # Its socket closes as it exits: a moment for its own status before the kill's (a
        # sandbox reports its child's exit just after).
        status: int | None = None
        remaining = max(0.05, invocation.deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            status = await asyncio.wait_for(
                asyncio.shield(self.process.exited), min(_OWN_EXIT_WAIT_SECONDS, remaining)
            )
        self.kill()
        if status is None:
            with contextlib.suppress(TimeoutError):
                status = await asyncio.wait_for(
                    asyncio.shield(self.process.exited),
                    min(_EXIT_STATUS_WAIT_SECONDS, remaining),
                )
        duration_ms = (time.monotonic() - started) * 1000.0
        output = self.process.read_output(spec.max_log_bytes)
        if any(mark in output for mark in self.out_of_memory_marks):
            message = f"RequestId: {request_id} Error: Runtime exited with error: out of memory"
            return self._exit_failure(
                FunctionMemoryExceeded,
                "Runtime.OutOfMemory",
                message,
                request_id,
                first,
                duration_ms,
                output,
            )
        message = f"RequestId: {request_id} Error: {self.exit_message(status)}"
        return self._exit_failure(
            FunctionCrashed, "Runtime.ExitError", message, request_id, first, duration_ms, output
        )
