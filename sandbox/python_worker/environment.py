"""One execution environment, host side: a forked process that serves one invocation at a time.

`ExecutionEnvironment.launch()` asks the zygote for a process; `invoke()` sends an event over
the framed socket and waits for the answer until the deadline, with the event loop's native
socket transport (uvloop or asyncio). Every way an invocation ends becomes either an
`InvocationResult` or one `FunctionError` subclass, each with the invocation's complete log text
in Lambda's format. A timeout kills the process at the deadline without waiting for it; an
environment that timed out, crashed or ran out of memory is dead and must be discarded.

Nothing an environment sends is trusted: it decodes under `framing.environment_limits` (the
result limit, the log limit, a small meta document), so a frame announcing more is refused
from its header; only the tail of its log is kept; a frame that cannot be parsed, or that comes
when no answer is awaited, is a protocol violation. A violation kills the environment and fails
the invocation as the function's own failure (Function.ResponseSizeTooLarge for a result over
the limit, Runtime.ExitError otherwise), so the edge never holds more than one legitimate answer.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import termios
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sandbox.python_worker.framing import (
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
from sandbox.python_worker.launcher import SpawnedProcess, Zygote
from sandbox.python_worker.spec import (
    INITIALIZATION_ON_DEMAND,
    INITIALIZATION_PROVISIONED,
    FunctionSpec,
    lambda_environment,
    log_stream_name,
)
from sandbox.runtime import log_lines
from sandbox.runtime.errors import (
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionTimeout,
    PoolClosed,
)
from sandbox.runtime.limits import MIB
from sandbox.runtime.protocol import Invocation
from sandbox.runtime.result import InvocationResult

_LOST = "lost"
_EXPIRED = "expired"
_VIOLATED = "violated"
_CRASH_STATUS_WAIT_SECONDS = 2.0


def _output_text(frame: Frame) -> str:
    """The output a frame carries, as text, after a marker when the decoder cut its head."""
    text = frame.log.decode("utf-8", "replace")
    if frame.log_dropped:
        return log_lines.dropped_marker(frame.log_dropped) + text
    return text


@dataclass(frozen=True, slots=True)
class _InitReport:
    init_ms: float
    start_ms: float
    max_memory_mb: int
    output: str
    error: dict[str, Any] | None


@dataclass(slots=True)
class _Call:
    """One invocation in an environment: what its result or failure needs, its answer (or why
    none came) and the timer that ends it at its deadline."""

    request_id: str
    deadline: float
    budget_seconds: float
    started: float
    first: bool
    future: asyncio.Future[Frame | str]
    timer: asyncio.TimerHandle | None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def _expire(call: _Call) -> None:
    if not call.future.done():
        call.future.set_result(_EXPIRED)


class _Connection(asyncio.Protocol):
    """Feeds frames from the environment's socket to its `ExecutionEnvironment`."""

    def __init__(self, environment: ExecutionEnvironment) -> None:
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
            return  # killed: whatever is still in flight is not read
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            environment._on_violation(exc)
            return
        for frame in frames:
            environment._on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._environment._on_lost()


class ExecutionEnvironment:
    """A Lambda execution environment backed by one process. Create with `launch()`."""

    def __init__(
        self,
        spec: FunctionSpec,
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
        # Called (synchronously, from the socket's callback) when an invocation answered and the
        # environment can take the next one: the owner's chance to `dispatch` without a turn of
        # the event loop in between.
        self.on_answer: Callable[[ExecutionEnvironment], None] | None = None

    @property
    def pid(self) -> int:
        """The environment's process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True while the environment can take an invocation."""
        return not (self._lost or self._killed) and (self._init is None or not self._init.error)

    @property
    def ready(self) -> bool:
        """True once Init finished (successfully or not)."""
        return self._init is not None

    @property
    def start_ms(self) -> float | None:
        """Milliseconds from fork to the handler's module imported, as the child measured."""
        return None if self._init is None else self._init.start_ms

    def waits_on_io(self) -> bool:
        """True when the process is asleep in the invocation it was given and has not answered
        (a handler waiting on the network, a sleep...): another process would not take CPU
        from it. False when it runs or waits for a CPU, or its answer waits to be read here."""
        try:
            with open(f"/proc/{self.process.pid}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split(maxsplit=1)[0]
            pending = array.array("i", [0])
            fcntl.ioctl(self.process.sock.fileno(), termios.FIONREAD, pending)
        except (OSError, IndexError):
            return False
        return state in (b"S", b"D") and pending[0] == 0

    @classmethod
    async def launch(
        cls, zygote: Zygote, spec: FunctionSpec, *, provisioned: bool = False
    ) -> ExecutionEnvironment:
        """Fork a new environment; Init (the handler's import) proceeds in the background."""
        loop = asyncio.get_running_loop()
        stream = log_stream_name(spec.version, uuid.uuid4().hex, time.time())
        code_dir = str(spec.code_dir.resolve())
        config = {
            "code_dir": code_dir,
            "handler": spec.handler,
            "environ": lambda_environment(
                spec,
                stream_name=stream,
                initialization_type=(
                    INITIALIZATION_PROVISIONED if provisioned else INITIALIZATION_ON_DEMAND
                ),
            ),
            "memory_mb": spec.memory_mb,
            "tmp_bytes": spec.ephemeral_storage_mb * MIB,
            "max_file_bytes": spec.ephemeral_storage_mb * MIB,
            "max_result_bytes": spec.max_result_bytes,
            "max_log_bytes": spec.max_log_bytes,
        }
        process = await zygote.spawn(config)
        environment = cls(spec, process, provisioned=provisioned, loop=loop)
        try:
            transport, _ = await loop.create_unix_connection(
                lambda: _Connection(environment), sock=process.sock
            )
        except BaseException:
            process.kill()
            process.sock.close()
            raise
        environment._transport = transport
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
                    start_ms=float(meta["s"]),
                    max_memory_mb=int(meta["m"]),
                    output=_output_text(frame),
                    error=error,
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self._on_violation(FrameError("an Init report that cannot be read", kind=KIND_INIT))
                return
        elif not awaited:
            # An environment speaks only to answer: a frame nobody awaits (a second answer, or
            # one between invocations) comes from code writing to the runtime's socket.
            self._on_violation(FrameError("a frame nobody asked for", kind=frame.kind))
            return
        if waiter is not None and awaited:
            waiter.set_result(frame)
            if frame.kind == KIND_RESULT and not frame.log_dropped and self.on_answer is not None:
                self.on_answer(self)  # free now: the pool may send the next invocation at once

    def _on_violation(self, exc: FrameError) -> None:
        """The environment broke the protocol: it is killed, and the invocation fails."""
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
        """What comes next: a frame, or why none will (`_LOST`, `_EXPIRED`, `_VIOLATED`)."""
        if waiter is None:
            waiter = self._loop.create_future()
        if waiter.done():
            return waiter.result()
        if self._lost:
            return _LOST
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    # -- lifecycle ------------------------------------------------------------------------

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait for Init to finish; True if the environment can serve (used for pre-warming)."""
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
        """What Init wrote (for a pre-warmed environment, whose invocations do not show it)."""
        return "" if self._init is None else self._init.output

    def kill(self, *, closing: bool = False) -> None:
        """Kill the process now. `closing`: the owner is shutting down (callers get PoolClosed)."""
        self._closed_by_owner = self._closed_by_owner or closing
        if not self._killed:
            self._killed = True
            self.process.kill()
        if self._transport is not None:
            self._transport.close()
        else:
            self.process.sock.close()

    async def wait_exited(self) -> None:
        """Wait until the process is gone and its temporary directory removed."""
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
            raise self._init_failure(init, call.request_id, call.started)
        self._send(call, invocation)
        return await self.finish(call)

    def dispatch(self, invocation: Invocation) -> _Call:
        """Send `invocation` now to this ready, idle environment (no await: the pool calls it
        the moment the previous answer arrived); `finish()` the handle for its result."""
        call = self._begin(invocation)
        self._send(call, invocation)
        return call

    async def finish(self, call: _Call) -> InvocationResult:
        """The result of an invocation sent by `dispatch()` (or `invoke()`)."""
        future = call.future  # the environment's waiter since `_send`
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
            # Nobody will read this invocation's answer: the environment cannot be trusted.
            self.kill()
            raise
        finally:
            call.cancel_timer()
            if self._waiter is future:
                self._waiter = None
        return self._complete(outcome, call.request_id, call.first, call.started)

    def _begin(self, invocation: Invocation) -> _Call:
        started = time.monotonic()
        first = self.invocations == 0
        self.invocations += 1
        call = _Call(
            invocation.request_id,
            invocation.deadline,
            invocation.budget_seconds,
            started,
            first,
            self._loop.create_future(),
            None,
        )
        # call_later, not call_at: uvloop's call_at costs twice as much.
        call.timer = self._loop.call_later(max(0.0, invocation.deadline - started), _expire, call)
        return call

    def _send(self, call: _Call, invocation: Invocation) -> None:
        meta: dict[str, Any] = {
            "id": call.request_id,
            "arn": invocation.invoked_arn or self.spec.function_arn,
            "dl": int((time.time() + (call.deadline - time.monotonic())) * 1000),
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

    def _prefix(self, first: bool) -> str:
        """Init's output opens the first invocation's log (not for pre-warmed environments)."""
        if first and not self.provisioned and self._init is not None:
            return self._init.output
        return ""

    def _init_duration(self, first: bool) -> float | None:
        if first and not self.provisioned and self._init is not None:
            return self._init.init_ms
        return None

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
        init_duration = self._init_duration(first)
        spec = self.spec
        output = _output_text(frame)
        if frame.log_dropped:
            # The runtime never sends more than the limit: this answer was written by other code
            # (the handler's own frame), and the runtime behind it may still be busy. The answer
            # stands, with the tail of its log, and the environment is not used again.
            self.kill()
        if frame.kind == KIND_RESULT:
            return InvocationResult(
                payload=frame.blob,
                log=self._log(request_id, first, output, duration_ms, memory_mb),
                request_id=request_id,
                duration_ms=duration_ms,
                billed_duration_ms=log_lines.billed_duration_ms(duration_ms),
                max_memory_used_mb=memory_mb,
                init_duration_ms=init_duration,
                executed_version=spec.version,
            )
        if meta.get("k") == "memory":
            self.kill()
            message = f"RequestId: {request_id} Error: Runtime exited with error: out of memory"
            payload = {"errorType": "Runtime.OutOfMemory", "errorMessage": message}
            tail = f"{message}\nRuntime.OutOfMemory\n"
            log = self._log(
                request_id,
                first,
                output + tail,
                duration_ms,
                spec.memory_mb,
                status="error",
                error_type="Runtime.OutOfMemory",
            )
            raise FunctionMemoryExceeded(
                payload, log=log, request_id=request_id, duration_ms=duration_ms
            )
        log = self._log(request_id, first, output, duration_ms, memory_mb)
        raise FunctionError(error_payload, log=log, request_id=request_id, duration_ms=duration_ms)

    def _violation_failure(self, request_id: str, started: float, first: bool) -> FunctionError:
        """The error for an invocation whose environment broke the protocol (now killed).

        A result announced over the limit is what Lambda answers for a runtime that posts one:
        Function.ResponseSizeTooLarge; anything else is the environment's crash.
        """
        violation = self._violation
        assert violation is not None
        self.kill()
        spec = self.spec
        duration_ms = (time.monotonic() - started) * 1000.0
        cls: type[FunctionError]
        if violation.kind == KIND_RESULT and violation.section == "blob":
            cls, error_type = FunctionError, "Function.ResponseSizeTooLarge"
            message = (
                f"Response payload size ({violation.size_bytes} bytes) exceeded maximum "
                f"allowed payload size ({spec.max_result_bytes} bytes)."
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
    ) -> FunctionError:
        """The error of an invocation whose environment is gone: what it wrote, then Lambda's
        `RequestId: ... Error: Runtime exited ...` line and the error type, in its log."""
        spec = self.spec
        output = self.process.read_output(spec.max_log_bytes)
        log = self._log(
            request_id,
            first and self._init is not None,  # Init never finished: no Init Duration
            f"{output}{message}\n{error_type}\n",
            duration_ms,
            spec.memory_mb,
            status="error",
            error_type=error_type,
        )
        payload = {"errorType": error_type, "errorMessage": message}
        return cls(payload, log=log, request_id=request_id, duration_ms=duration_ms)

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
        report = log_lines.report_line(
            request_id,
            duration_ms=duration_ms,
            memory_size_mb=self.spec.memory_mb,
            max_memory_used_mb=memory_mb,
            init_duration_ms=self._init_duration(first),
            status=status,
            error_type=error_type,
        )
        return log_lines.invocation_log(
            request_id, self.spec.version, output, report, self._prefix(first)
        )

    def _init_failure(self, init: _InitReport, request_id: str, started: float) -> FunctionError:
        assert init.error is not None
        duration_ms = (time.monotonic() - started) * 1000.0
        error_type = str(init.error.get("errorType", ""))
        report = log_lines.report_line(
            request_id,
            duration_ms=duration_ms,
            memory_size_mb=self.spec.memory_mb,
            max_memory_used_mb=init.max_memory_mb,
            init_duration_ms=init.init_ms,
            status="error",
            error_type=error_type,
        )
        log = log_lines.invocation_log(request_id, self.spec.version, "", report, init.output)
        self.kill()
        return FunctionError(init.error, log=log, request_id=request_id, duration_ms=duration_ms)

    async def _failure(self, outcome: str, call: _Call) -> FunctionError | PoolClosed:
        """The error for an invocation whose process timed out, died or broke the protocol."""
        request_id, started, deadline, first = (
            call.request_id,
            call.started,
            call.deadline,
            call.first,
        )
        spec = self.spec
        if self._closed_by_owner:
            return PoolClosed("the pool was closed during the invocation")
        if outcome == _VIOLATED or (self._violation is not None and outcome == _LOST):
            return self._violation_failure(request_id, started, first)
        if outcome == _EXPIRED:
            memory_mb = self.process.peak_memory_mb()
            self.kill()
            now_epoch = time.time()
            duration_ms = (time.monotonic() - started) * 1000.0
            budget_seconds = call.budget_seconds
            output = self.process.read_output(spec.max_log_bytes)
            if self._init is None:
                first = False  # Init never finished: nothing to report as an Init Duration
            log = self._log(
                request_id,
                first,
                output + log_lines.timeout_log_line(request_id, budget_seconds, now_epoch),
                duration_ms,
                memory_mb if memory_mb is not None else spec.memory_mb,
                status="timeout",
            )
            payload = {
                "errorMessage": log_lines.timeout_message(request_id, budget_seconds),
                "errorType": "Sandbox.Timedout",
            }
            return FunctionTimeout(payload, log=log, request_id=request_id, duration_ms=duration_ms)
        # The process died: its wait status (from the zygote) names how.
        self.kill()
        status: int | None = None
        wait_seconds = min(_CRASH_STATUS_WAIT_SECONDS, max(0.05, deadline - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            status = await asyncio.wait_for(asyncio.shield(self.process.exited), wait_seconds)
        duration_ms = (time.monotonic() - started) * 1000.0
        message = (
            f"RequestId: {request_id} Error: Runtime exited with error: "
            f"{log_lines.exit_reason(status)}"
        )
        return self._exit_failure(
            FunctionCrashed, "Runtime.ExitError", message, request_id, first, duration_ms
        )
