"""Execution environments of one function version: concurrency cap, warm reuse, idle reaping.

`PythonFunctionPool` is the sandbox interface for Python functions: `invoke(event) -> result`,
raising one of `sandbox.errors`. It behaves like Lambda's scaling of one version (spec §10):
environments scale from zero (or from the provisioned count) up to `max_concurrency`, each
serving one invocation at a time; a free warm environment is always preferred (the most
recently used first, so the others age out); beyond the cap an invocation is throttled, or waits
at most `max_wait_seconds` if the spec allows. Idle environments are reaped after
`idle_seconds`; dead ones (timeout, crash, out of memory) are replaced by the next cold start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from sandbox.errors import (
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionThrottled,
    FunctionTimeout,
    PayloadTooLarge,
    PoolClosed,
)
from sandbox.python_worker.environment import ExecutionEnvironment, InvocationResult
from sandbox.python_worker.isolation import SandboxPolicy
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.spec import FunctionSpec

LogSink = Callable[[str], None]

# §8.3 ThrottleReason for a function-level cap.
THROTTLE_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"

_EXIT_WAIT_SECONDS = 5.0


@dataclass(slots=True)
class _Counters:
    invocations: int = 0
    cold_starts: int = 0
    warm_starts: int = 0
    throttles: int = 0
    function_errors: int = 0
    timeouts: int = 0
    crashes: int = 0
    memory_exceeded: int = 0


def new_request_id() -> str:
    """A random (version 4) UUID string, as Lambda's request ids; ~2x cheaper than uuid4()."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a pool's counters (totals since start) and gauges (now)."""

    invocations: int
    cold_starts: int
    warm_starts: int
    throttles: int
    function_errors: int
    timeouts: int
    crashes: int
    memory_exceeded: int
    environments: int
    busy: int
    idle: int


class PythonFunctionPool:
    """The execution environments of one Python function version.

    `log_sink` receives each invocation's complete log text (START..REPORT, also for failed
    invocations, and the Init output of pre-warmed environments); it is called on the event
    loop and must be quick and must not raise. By default the pool starts a zygote of its own,
    confined by `sandbox` (default: the best isolation available) to this function's code and
    network, relaunches it when it died, and stops it in `aclose()`. `zygote`: use that one
    instead (the caller owns it, and launched it with this function's code directory).
    `clock` is only used for idle reaping (deadlines are always on `time.monotonic()`).

    Use as `async with PythonFunctionPool(spec) as pool:` or call `aclose()`.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        log_sink: LogSink | None = None,
        zygote: Zygote | None = None,
        sandbox: SandboxPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._sandbox = sandbox
        self._log_sink = log_sink
        self._zygote = zygote
        self._owns_zygote = zygote is None
        self._zygote_lock = asyncio.Lock()
        self._clock = clock
        self._idle: list[ExecutionEnvironment] = []  # most recently used last
        self._busy: set[ExecutionEnvironment] = set()
        self._slots = 0  # environments holding a concurrency slot: starting, busy or idle
        self._dying: set[ExecutionEnvironment] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._closed = False
        self._counts = _Counters()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the zygote, the provisioned environments and the idle reaper.

        Optional: the first `invoke()` does it. Returns once provisioned environments are
        initialised.
        """
        if self._closed:
            raise PoolClosed("the pool is closed")
        if self._started:
            return
        self._started = True
        zygote = await self._get_zygote()
        self._spawn_task(self._reap_periodically())
        await asyncio.gather(
            *(self._provision(zygote) for _ in range(self.spec.provisioned)),
            return_exceptions=True,
        )

    async def __aenter__(self) -> PythonFunctionPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop everything: in-flight invocations get PoolClosed, every process is gone and
        every temporary directory removed when this returns."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(PoolClosed("the pool was closed"))
                waiter.exception()
        for environment in [*self._idle, *self._busy]:
            environment.kill(closing=True)
            self._dying.add(environment)
        self._idle.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._dying:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(e.wait_exited() for e in list(self._dying))),
                    _EXIT_WAIT_SECONDS,
                )
        if self._owns_zygote and self._zygote is not None:
            await self._zygote.aclose()

    # -- invoking -------------------------------------------------------------------------

    async def invoke(
        self,
        event: bytes,
        *,
        request_id: str | None = None,
        deadline: float | None = None,
        invoked_arn: str | None = None,
        client_context: dict[str, Any] | None = None,
        cognito_identity: dict[str, Any] | None = None,
        timeout_seconds: float | None = None,
    ) -> InvocationResult:
        """Invoke the function once with `event` (JSON bytes).

        `timeout_seconds` names the caller's limit in a timeout message when the caller's
        `deadline` is the one that ends the invocation (default: the time that was left).

        `deadline` (absolute, `time.monotonic()` clock) can only shorten the function's
        timeout. Returns the result with its log; raises `FunctionError` (or its subclasses
        `FunctionTimeout`, `FunctionCrashed`, `FunctionMemoryExceeded`) when the function
        failed, `FunctionThrottled` when all `max_concurrency` environments are busy,
        `PayloadTooLarge` for an event over the limit, `PoolClosed` after `aclose()`.
        """
        if self._closed:
            raise PoolClosed("the pool is closed")
        spec = self.spec
        if len(event) > spec.max_event_bytes:
            raise PayloadTooLarge(len(event), spec.max_event_bytes)
        if not self._started:
            await self.start()
        now = time.monotonic()
        budget = now + spec.timeout_seconds
        if deadline is None or deadline >= budget:
            effective_deadline, budget_seconds = budget, spec.timeout_seconds
        else:
            effective_deadline = deadline
            budget_seconds = (
                timeout_seconds if timeout_seconds is not None else max(0.0, deadline - now)
            )
        request_id = request_id or new_request_id()
        environment = await self._acquire(effective_deadline)
        self._counts.invocations += 1
        try:
            result = await environment.invoke(
                event,
                request_id=request_id,
                deadline=effective_deadline,
                invoked_arn=invoked_arn or spec.function_arn,
                client_context=client_context,
                cognito_identity=cognito_identity,
                timeout_seconds=budget_seconds,
            )
        except FunctionError as error:
            self._count_error(error)
            self._emit(error.log)
            raise
        finally:
            self._release(environment)
        self._emit(result.log)
        return result

    def _count_error(self, error: FunctionError) -> None:
        self._counts.function_errors += 1
        if isinstance(error, FunctionTimeout):
            self._counts.timeouts += 1
        elif isinstance(error, FunctionMemoryExceeded):
            self._counts.memory_exceeded += 1
        elif isinstance(error, FunctionCrashed):
            self._counts.crashes += 1

    def _emit(self, log: str) -> None:
        if self._log_sink is None:
            return
        try:
            self._log_sink(log)
        except Exception as exc:  # noqa: BLE001 - a broken sink must not fail invocations
            asyncio.get_running_loop().call_exception_handler(
                {"message": "log sink raised", "exception": exc}
            )

    async def _acquire(self, deadline: float) -> ExecutionEnvironment:
        waited = False
        while True:
            while self._idle:
                environment = self._idle.pop()
                if environment.alive:
                    self._busy.add(environment)
                    self._counts.warm_starts += 1
                    return environment
                self._discard(environment)
            if self._slots < self.spec.max_concurrency:
                self._slots += 1
                try:
                    zygote = await self._get_zygote()
                    environment = await ExecutionEnvironment.launch(zygote, self.spec)
                except BaseException:
                    self._slots -= 1
                    self._wake_one()
                    raise
                self._busy.add(environment)
                self._counts.cold_starts += 1
                return environment
            wait_seconds = min(self.spec.max_wait_seconds, deadline - time.monotonic())
            if waited or wait_seconds <= 0:
                self._counts.throttles += 1
                raise FunctionThrottled(self.spec.name, THROTTLE_REASON)
            waited = True
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, wait_seconds)
            except TimeoutError:
                pass
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def _release(self, environment: ExecutionEnvironment) -> None:
        self._busy.discard(environment)
        if environment.alive and not self._closed:
            environment.last_used = self._clock()
            self._idle.append(environment)
            self._wake_one()
        else:
            self._discard(environment)

    def _discard(self, environment: ExecutionEnvironment) -> None:
        """Kill an environment and free its slot; the process is buried in the background."""
        environment.kill(closing=self._closed)
        self._slots -= 1
        self._dying.add(environment)
        if self._closed:
            return  # aclose() waits for everything in _dying
        self._spawn_task(self._bury(environment))
        self._wake_one()
        if environment.provisioned:
            self._spawn_task(self._replace_provisioned())

    async def _bury(self, environment: ExecutionEnvironment) -> None:
        await environment.wait_exited()
        self._dying.discard(environment)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- provisioned environments and idle reaping ----------------------------------------

    async def _provision(self, zygote: Zygote) -> None:
        if self._slots >= self.spec.max_concurrency or self._closed:
            return
        self._slots += 1
        try:
            environment = await ExecutionEnvironment.launch(zygote, self.spec, provisioned=True)
        except BaseException:
            self._slots -= 1
            raise
        ready = await environment.wait_ready(self.spec.init_timeout_seconds)
        if environment.init_output:
            self._emit(environment.init_output)
        if not ready or self._closed:
            # An init failure is not retried in a loop: the next invocation cold-starts.
            environment.kill(closing=self._closed)
            self._slots -= 1
            self._dying.add(environment)
            await self._bury(environment)
            self._wake_one()
            return
        environment.last_used = self._clock()
        self._idle.insert(0, environment)  # least recently used end: taken after warm ones
        self._wake_one()

    async def _replace_provisioned(self) -> None:
        provisioned = sum(e.provisioned for e in [*self._idle, *self._busy])
        if provisioned < self.spec.provisioned:
            await self._provision(await self._get_zygote())

    async def reap_idle(self) -> int:
        """Stop the on-demand environments idle for `idle_seconds` or more (by the pool's
        clock); returns how many, once their processes are gone."""
        now = self._clock()
        limit = self.spec.idle_seconds
        expired = [e for e in self._idle if not e.provisioned and now - e.last_used >= limit]
        for environment in expired:
            self._idle.remove(environment)
            self._discard(environment)
        for environment in expired:
            await environment.wait_exited()
        return len(expired)

    async def _reap_periodically(self) -> None:
        interval = min(max(self.spec.idle_seconds / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            await self.reap_idle()

    # -- plumbing -------------------------------------------------------------------------

    async def _get_zygote(self) -> Zygote:
        async with self._zygote_lock:
            if self._closed:
                raise PoolClosed("the pool is closed")
            if self._zygote is None or (self._owns_zygote and not self._zygote.alive):
                if self._zygote is not None:
                    await self._zygote.aclose()
                self._zygote = await Zygote.launch(
                    sandbox=self._sandbox,
                    code_dirs=[self.spec.code_dir],
                    writable_dirs=self.spec.writable_paths,
                    network=self.spec.network,
                    identity=self.spec.name,
                )
            return self._zygote

    def _spawn_task(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            asyncio.get_running_loop().call_exception_handler(
                {"message": "pool background task failed", "exception": task.exception()}
            )

    def stats(self) -> PoolStats:
        """Counters and gauges for a metrics layer."""
        counts = self._counts
        return PoolStats(
            invocations=counts.invocations,
            cold_starts=counts.cold_starts,
            warm_starts=counts.warm_starts,
            throttles=counts.throttles,
            function_errors=counts.function_errors,
            timeouts=counts.timeouts,
            crashes=counts.crashes,
            memory_exceeded=counts.memory_exceeded,
            environments=self._slots,
            busy=len(self._busy),
            idle=len(self._idle),
        )

    def environment_pids(self) -> list[int]:
        """Pids of the live environments (for tests and diagnostics)."""
        return [e.pid for e in [*self._idle, *self._busy]]
