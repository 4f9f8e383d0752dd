"""The execution environments of one function version: concurrency cap, warm reuse, idle reaping.

`EnvironmentPool` is the `Runtime` of every runtime whose environments are processes (Python
workers now, Node.js next): it is generic over how an environment is launched
(`EnvironmentLauncher`) and what one is (`Environment`), and knows nothing of either's inside.
It behaves like Lambda's scaling of one version (spec §10): environments scale from zero (or
from the provisioned count) up to `max_concurrency`, each serving one invocation at a time; a
free warm environment is always preferred (the most recently used first, so the others age
out); beyond the cap an invocation is throttled, or waits at most `max_wait_seconds` if the spec
allows. Idle environments are reaped after `idle_seconds`; dead ones (timeout, crash, out of
memory) are replaced by the next cold start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from sandbox.runtime.errors import (
    THROTTLE_REASON,
    FunctionError,
    FunctionThrottled,
    PoolClosed,
)
from sandbox.runtime.protocol import Invocation, Runtime, VersionSpec
from sandbox.runtime.result import InvocationResult
from sandbox.runtime.sink import LogSink, deliver_log
from sandbox.runtime.stats import Counters, RuntimeStats

_EXIT_WAIT_SECONDS = 5.0


class PoolSpec(VersionSpec, Protocol):
    """What the pool reads of a function version (a runtime's spec has more)."""

    @property
    def max_concurrency(self) -> int: ...
    @property
    def max_wait_seconds(self) -> float: ...
    @property
    def provisioned(self) -> int: ...
    @property
    def idle_seconds(self) -> float: ...
    @property
    def init_timeout_seconds(self) -> float: ...


class Environment(Protocol):
    """One execution environment: a process that serves one invocation at a time.

    `provisioned`: started in advance (never reaped, replaced when it dies). `last_used` is
    the pool's to write (its clock). Every failure of an invocation is a `FunctionError` with
    the invocation's log, or `PoolClosed` once `kill(closing=True)` was called.
    """

    provisioned: bool
    last_used: float

    @property
    def alive(self) -> bool:
        """True while the environment can take an invocation."""
        ...

    @property
    def pid(self) -> int: ...

    @property
    def init_output(self) -> str:
        """What Init wrote (a pre-warmed environment's invocations do not show it)."""
        ...

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait for Init; True if the environment can serve."""
        ...

    async def invoke(self, invocation: Invocation) -> InvocationResult:
        """Run one invocation; a `FunctionError` (with its log) when the function failed."""
        ...

    def kill(self, *, closing: bool = False) -> None:
        """Kill the process now; `closing`: the owner is shutting down."""
        ...

    async def wait_exited(self) -> None:
        """Wait until the process is gone and its resources released."""
        ...


E = TypeVar("E", bound=Environment)
E_co = TypeVar("E_co", bound=Environment, covariant=True)


class EnvironmentLauncher(Protocol[E_co]):
    """How a runtime makes its environments (for Python: forks from a zygote)."""

    async def start(self) -> None:
        """Get ready to launch (start a zygote...); raises `SandboxError` if it cannot."""
        ...

    async def launch(self, *, provisioned: bool) -> E_co:
        """A new environment, whose Init proceeds in the background."""
        ...

    async def aclose(self) -> None:
        """Stop what `start()` started."""
        ...


class EnvironmentPool(Runtime, Generic[E]):
    """The execution environments of one function version, made by `launcher`.

    `log_sink` receives each invocation's complete log text (START..REPORT, also for failed
    invocations, and the Init output of pre-warmed environments). `clock` is only used for idle
    reaping (deadlines are always on `time.monotonic()`).

    Use as `async with pool:` or call `aclose()`.
    """

    def __init__(
        self,
        spec: PoolSpec,
        launcher: EnvironmentLauncher[E],
        *,
        log_sink: LogSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(spec)
        self._spec = spec
        self._launcher = launcher
        self._log_sink = log_sink
        self._clock = clock
        self._idle: list[E] = []  # most recently used last
        self._busy: set[E] = set()
        self._slots = 0  # environments holding a concurrency slot: starting, busy or idle
        self._dying: set[E] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counts = Counters()

    def has_entry(self, entry: str) -> bool:
        """Always True: one handler serves every entry (the event says which trigger)."""
        return True

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the launcher, the provisioned environments and the idle reaper.

        Optional: the first `invoke()` does it. Returns once provisioned environments are
        initialised.
        """
        if self.closed:
            raise PoolClosed("the pool is closed")
        if self.started:
            return
        self.started = True
        await self._launcher.start()
        self._spawn_task(self._reap_periodically())
        await asyncio.gather(
            *(self._provision() for _ in range(self._spec.provisioned)),
            return_exceptions=True,
        )

    async def aclose(self) -> None:
        """Stop everything: in-flight invocations get PoolClosed, every process is gone and
        every temporary directory removed when this returns."""
        if self.closed:
            return
        self.closed = True
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
        await self._launcher.aclose()

    # -- invoking -------------------------------------------------------------------------

    async def _invoke(self, invocation: Invocation) -> InvocationResult:
        """One invocation in a free environment (warm first, else a new one under
        `max_concurrency`, else after waiting up to `max_wait_seconds`, else throttled)."""
        environment = await self._acquire(invocation.deadline)
        self._counts.invocations += 1
        try:
            result = await environment.invoke(invocation)
        except FunctionError as error:
            self._counts.count_error(error)
            deliver_log(self._log_sink, error.log)
            raise
        finally:
            self._release(environment)
        deliver_log(self._log_sink, result.log)
        return result

    async def _acquire(self, deadline: float) -> E:
        waited = False
        while True:
            while self._idle:
                environment = self._idle.pop()
                if environment.alive:
                    self._busy.add(environment)
                    self._counts.warm_starts += 1
                    return environment
                self._discard(environment)
            if self._slots < self._spec.max_concurrency:
                self._slots += 1
                try:
                    environment = await self._launcher.launch(provisioned=False)
                except BaseException:
                    self._slots -= 1
                    self._wake_one()
                    raise
                if self.closed:  # closed while it was launched: aclose() never saw it
                    environment.kill(closing=True)
                    await environment.wait_exited()
                    raise PoolClosed("the pool was closed")
                self._busy.add(environment)
                self._counts.cold_starts += 1
                return environment
            wait_seconds = min(self._spec.max_wait_seconds, deadline - time.monotonic())
            if waited or wait_seconds <= 0:
                self._counts.throttles += 1
                raise FunctionThrottled(self._spec.name, THROTTLE_REASON)
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

    def _release(self, environment: E) -> None:
        self._busy.discard(environment)
        if environment.alive and not self.closed:
            environment.last_used = self._clock()
            self._idle.append(environment)
            self._wake_one()
        else:
            self._discard(environment)

    def _discard(self, environment: E) -> None:
        """Kill an environment and free its slot; the process is buried in the background."""
        environment.kill(closing=self.closed)
        self._slots -= 1
        self._dying.add(environment)
        if self.closed:
            return  # aclose() waits for everything in _dying
        self._spawn_task(self._bury(environment))
        self._wake_one()
        if environment.provisioned:
            self._spawn_task(self._replace_provisioned())

    async def _bury(self, environment: E) -> None:
        await environment.wait_exited()
        self._dying.discard(environment)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- provisioned environments and idle reaping ----------------------------------------

    async def _provision(self) -> None:
        if self._slots >= self._spec.max_concurrency or self.closed:
            return
        self._slots += 1
        try:
            environment = await self._launcher.launch(provisioned=True)
        except BaseException:
            self._slots -= 1
            raise
        ready = await environment.wait_ready(self._spec.init_timeout_seconds)
        if environment.init_output:
            deliver_log(self._log_sink, environment.init_output)
        if not ready or self.closed:
            # An init failure is not retried in a loop: the next invocation cold-starts.
            environment.kill(closing=self.closed)
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
        if provisioned < self._spec.provisioned:
            await self._provision()

    async def reap_idle(self) -> int:
        """Stop the on-demand environments idle for `idle_seconds` or more (by the pool's
        clock); returns how many, once their processes are gone."""
        now = self._clock()
        limit = self._spec.idle_seconds
        expired = [e for e in self._idle if not e.provisioned and now - e.last_used >= limit]
        for environment in expired:
            self._idle.remove(environment)
            self._discard(environment)
        for environment in expired:
            await environment.wait_exited()
        return len(expired)

    async def _reap_periodically(self) -> None:
        interval = min(max(self._spec.idle_seconds / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            await self.reap_idle()

    # -- plumbing -------------------------------------------------------------------------

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

    def stats(self) -> RuntimeStats:
        """Counters and gauges for a metrics layer."""
        return self._counts.snapshot(
            environments=self._slots, busy=len(self._busy), idle=len(self._idle)
        )

    def environment_pids(self) -> list[int]:
        """Pids of the live environments (for tests and diagnostics)."""
        return [e.pid for e in [*self._idle, *self._busy]]
