"""The execution environments of one function version: concurrency, warm reuse, idle reaping.

`EnvironmentPool` is the `Runtime` of every runtime whose environments are processes (Python
workers now, Node.js next): it is generic over how an environment is launched
(`EnvironmentLauncher`) and what one is (`Environment`), and knows nothing of either's inside.

Two counts, kept apart. Concurrency is Lambda's (spec §10): each invocation in flight counts
from its admission to its end, up to `max_concurrency`; beyond it an invocation is throttled,
or waits at most `max_wait_seconds` if the spec allows. Processes are the machine's: each
environment serves one invocation at a time, and at most `max_environments` of them run (a
number near the core count: more processes than cores only take turns on them). An admitted
invocation takes a free warm environment (the most recently used first, so the others age
out), else starts one while under `max_environments`, else waits for the next one released
(first come, first served). It still counts toward concurrency while it waits, and it is
reported as what it then is: a warm start in an environment that already ran (no Init, no
`Init Duration`), counted in `RuntimeStats.queued` (Lambda would have cold-started it).

Waiting is for fast handlers. When an invocation has waited `environment_wait_seconds` and every
busy environment has been in its invocation at least that long, asleep (slow, I/O-bound
handlers: `Environment.waits_on_io`), one more environment starts for it above the cap, as
Lambda would; processes that are merely short of CPU never scale out. A spec whose wait is at
least its timeout makes the cap hard. A wait is not the function's time: an invocation that
waited gets its full timeout from the moment it starts (within the caller's own deadline, e.g.
a trigger's), as Lambda times a function from its start. One whose deadline passes while it
waits never ran: it is throttled (`ConcurrentInvocationLimitExceeded`, the node's capacity).

An environment that answers is handed to the first waiting invocation at once, from its socket's
callback (`Environment.on_answer`, `dispatch`): on a busy event loop, waiting for the finished
invocation's caller to run first would leave the process idle for a turn of the loop. Idle
environments are reaped after `idle_seconds`; dead ones (timeout, crash, out of memory) are
replaced by the next cold start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from sandbox.runtime.errors import (
    CAPACITY_THROTTLE_REASON,
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
    @property
    def max_environments(self) -> int:
        """The most environments kept at once; 0: as many as the cores."""
        ...

    @property
    def environment_wait_seconds(self) -> float: ...


class Environment(Protocol):
    """One execution environment: a process that serves one invocation at a time.

    `provisioned`: started in advance (never reaped, replaced when it dies). `last_used` is
    the pool's to write (its clock), and `on_answer`: the environment calls it, synchronously,
    when an invocation answered and it can take the next one at once. Every failure of an
    invocation is a `FunctionError` with the invocation's log, or `PoolClosed` once
    `kill(closing=True)` was called.
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
    def ready(self) -> bool:
        """True once Init finished (successfully or not)."""
        ...

    def waits_on_io(self) -> bool:
        """True when the invocation in progress sleeps on something else than the CPU."""
        ...

    @property
    def init_output(self) -> str:
        """What Init wrote (a pre-warmed environment's invocations do not show it)."""
        ...

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait for Init; True if the environment can serve."""
        ...

    on_answer: Callable[[Any], None] | None

    async def invoke(self, invocation: Invocation) -> InvocationResult:
        """Run one invocation; a `FunctionError` (with its log) when the function failed."""
        ...

    def dispatch(self, invocation: Invocation) -> Any:
        """Send `invocation` now to this initialised, free environment; returns the handle
        `finish` takes."""
        ...

    async def finish(self, handle: Any) -> InvocationResult:
        """The result of a dispatched invocation (failures as in `invoke`)."""
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
        self._busy: dict[E, float] = {}  # -> when its invocation started (time.monotonic())
        self._environments = 0  # processes: starting, busy or idle
        self._launching = 0  # of those, asked of the launcher and not yet returned
        self._cap = max(spec.max_environments or available_cores(), spec.provisioned, 1)
        self._in_flight = 0  # Lambda's concurrency: invocations admitted and not yet ended
        self._dying: set[E] = set()
        # Invocations waiting for room under max_concurrency (max_wait_seconds)...
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # ...and admitted ones waiting for an environment: one is handed over (the result: it,
        # and the invocation's handle if already sent), or None (the timer, or room to start).
        self._environment_waiters: collections.deque[_Waiter[E]] = collections.deque()
        self._owners: dict[E, Invocation] = {}  # busy environment -> the invocation it serves
        self._scaler: asyncio.TimerHandle | None = None
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
        if self._scaler is not None:
            self._scaler.cancel()
        for task in list(self._tasks):
            task.cancel()
        futures: list[asyncio.Future[Any]] = [*self._waiters]
        futures += [waiter.future for waiter in self._environment_waiters]
        for waiter in futures:
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
        """One invocation: admitted under `max_concurrency` (or throttled), then run in a free
        environment (warm first, else a new one under `max_environments`, else the next one
        that answers)."""
        deadline = invocation.deadline
        if self._in_flight >= self._spec.max_concurrency:
            await self._wait_for_room(deadline)
        self._in_flight += 1
        try:
            environment, sent, waited = await self._acquire(invocation)
            self._counts.invocations += 1
            try:
                if sent is not None:
                    result = await environment.finish(sent)
                elif waited:
                    result = await environment.invoke(self._timed_from_now(invocation))
                else:
                    result = await environment.invoke(invocation)
            except FunctionError as error:
                self._counts.count_error(error)
                deliver_log(self._log_sink, error.log)
                raise
            finally:
                self._release(environment, invocation)
        finally:
            self._in_flight -= 1
            self._wake(self._waiters, None)
        deliver_log(self._log_sink, result.log)
        return result

    async def _wait_for_room(self, deadline: float) -> None:
        """Wait (at most `max_wait_seconds`, once) until fewer than `max_concurrency`
        invocations are in flight; else the invocation is throttled."""
        waited = False
        while self._in_flight >= self._spec.max_concurrency:
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

    async def _acquire(self, invocation: Invocation) -> tuple[E, Any, bool]:
        """An environment for `invocation`, the handle of the invocation if it was already
        sent to it (`Environment.dispatch`) or None, and whether it waited for one."""
        environment = self._take_idle(invocation)
        if environment is not None:
            return environment, None, False
        if self._environments < self._cap:
            return await self._launch(invocation), None, False
        environment, sent = await self._wait_for_environment(invocation)
        return environment, sent, True

    def _timed_from_now(self, invocation: Invocation) -> Invocation:
        """An invocation that waited for an environment, as it starts: Lambda times the
        function from its start (a wait is not the function's time), within the caller's own
        deadline."""
        deadline = time.monotonic() + self._spec.timeout_seconds
        budget_seconds = self._spec.timeout_seconds
        caller = invocation.caller_deadline
        if caller is not None and caller < deadline:
            deadline, budget_seconds = caller, invocation.budget_seconds
        if deadline <= invocation.deadline:
            return invocation
        return dataclasses.replace(invocation, deadline=deadline, budget_seconds=budget_seconds)

    def _take_idle(self, invocation: Invocation) -> E | None:
        while self._idle:
            environment = self._idle.pop()
            if environment.alive:
                self._hold(environment, invocation)
                self._counts.warm_starts += 1
                return environment
            self._discard(environment)
        return None

    def _hold(self, environment: E, invocation: Invocation) -> None:
        self._busy[environment] = time.monotonic()
        self._owners[environment] = invocation

    async def _launch(self, invocation: Invocation) -> E:
        """A new environment for `invocation` (a cold start)."""
        self._environments += 1
        self._launching += 1
        try:
            environment = await self._launcher.launch(provisioned=False)
        except BaseException:
            self._environments -= 1
            self._nudge()
            raise
        finally:
            self._launching -= 1
        if self.closed:  # closed while it was launched: aclose() never saw it
            environment.kill(closing=True)
            await environment.wait_exited()
            raise PoolClosed("the pool was closed")
        environment.on_answer = self._on_answer
        self._hold(environment, invocation)
        self._counts.cold_starts += 1
        return environment

    async def _wait_for_environment(self, invocation: Invocation) -> tuple[E, Any]:
        """Every environment is busy and there are `max_environments`: wait, in arrival order,
        for the next one that answers (it gets this invocation at once), for room to start
        one, or for the pool to scale out for it (`_scale_out`). Throttled when the deadline
        passes first."""
        self._counts.queued += 1
        deadline = invocation.deadline
        loop = asyncio.get_running_loop()
        waiter: _Waiter[E] = _Waiter(invocation, loop.create_future())
        waiters = self._environment_waiters
        waiters.append(waiter)
        self._arm_scaler()
        timer = loop.call_later(max(0.0, deadline - time.monotonic()), _expire, waiter)
        try:
            while True:
                try:
                    given = await waiter.future
                except asyncio.CancelledError:
                    future = waiter.future
                    if future.done() and not future.cancelled() and future.exception() is None:
                        given = future.result()
                        if isinstance(given, tuple):  # handed over as we were cancelled
                            environment, sent = given
                            if sent is not None:
                                environment.kill()  # it runs an invocation nobody will read
                            self._release(environment, invocation)
                    raise
                if isinstance(given, tuple):
                    self._counts.warm_starts += 1
                    return given
                if given is _SCALE_OUT:
                    return await self._launch(invocation), None
                if self.closed:
                    raise PoolClosed("the pool was closed")
                environment = self._take_idle(invocation)  # released while nobody waited
                if environment is not None:
                    return environment, None
                if self._environments < self._cap:
                    return await self._launch(invocation), None
                if waiter.expired:
                    self._counts.throttles += 1
                    raise FunctionThrottled(self._spec.name, CAPACITY_THROTTLE_REASON)
                waiter.future = loop.create_future()  # and keep the place in the queue
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)

    def _arm_scaler(self) -> None:
        if self._scaler is None and not self.closed:
            self._scaler = asyncio.get_running_loop().call_later(
                self._spec.environment_wait_seconds, self._scale_out
            )

    def _scale_out(self) -> None:
        """While invocations wait for an environment: one more starts, for the first of them,
        when none is starting and every busy one has slept in its invocation for at least
        `environment_wait_seconds` (slow, I/O-bound handlers scale out as Lambda's would;
        processes short of CPU, or a queue behind a slow start, do not)."""
        self._scaler = None
        waiting = [w for w in self._environment_waiters if not w.future.done()]
        if not waiting or self.closed:
            return
        patience = self._spec.environment_wait_seconds
        now = time.monotonic()
        busy = self._busy
        youngest = max(busy.values(), default=now)
        delay = patience
        if self._launching or not all(e.ready for e in busy):
            pass
        elif now - youngest < patience:
            delay = youngest + patience - now
        elif all(e.waits_on_io() for e in busy):
            first = waiting[0]
            self._environment_waiters.remove(first)
            first.future.set_result(_SCALE_OUT)
            if len(waiting) == 1:
                return
        self._scaler = asyncio.get_running_loop().call_later(max(delay, 0.001), self._scale_out)

    def _on_answer(self, environment: E) -> None:
        """`environment` answered and can serve again: the first waiting invocation is sent
        to it now, from the socket's callback, without waiting for its previous invocation's
        caller to run (a turn of a busy event loop can take milliseconds)."""
        if self.closed or not environment.alive:
            return
        waiter = self._next_waiter()
        if waiter is not None:
            sent = environment.dispatch(self._timed_from_now(waiter.invocation))
            environment.last_used = self._clock()
            self._hold(environment, waiter.invocation)
            waiter.future.set_result((environment, sent))

    def _next_waiter(self) -> _Waiter[E] | None:
        """The first invocation waiting for an environment that can take one now (out of the
        queue); one looking again (its future done) keeps its place."""
        waiters = self._environment_waiters
        for waiter in waiters:
            if not waiter.future.done():
                waiters.remove(waiter)
                return waiter
        return None

    def _release(self, environment: E, invocation: Invocation) -> None:
        """`invocation` is done with `environment` (unless it was handed on already)."""
        if self._owners.get(environment) is not invocation:
            return  # already serving the next invocation
        del self._owners[environment]
        self._busy.pop(environment, None)
        if environment.alive and not self.closed:
            environment.last_used = self._clock()
            waiter = self._next_waiter()
            if waiter is not None:
                self._hold(environment, waiter.invocation)
                waiter.future.set_result((environment, None))
                return
            self._idle.append(environment)
        else:
            self._discard(environment)

    def _discard(self, environment: E) -> None:
        """Kill an environment and free its place; the process is buried in the background."""
        environment.kill(closing=self.closed)
        self._environments -= 1
        self._dying.add(environment)
        if self.closed:
            return  # aclose() waits for everything in _dying
        self._spawn_task(self._bury(environment))
        self._nudge()
        if environment.provisioned:
            self._spawn_task(self._replace_provisioned())

    async def _bury(self, environment: E) -> None:
        await environment.wait_exited()
        self._dying.discard(environment)

    def _nudge(self) -> None:
        """Tell the first invocation waiting for an environment to look again (one may start)."""
        for waiter in self._environment_waiters:
            if not waiter.future.done():
                waiter.future.set_result(None)
                return

    @staticmethod
    def _wake(waiters: collections.deque[asyncio.Future[Any]], value: Any) -> None:
        """Resolve the first waiter still waiting with `value`."""
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return

    # -- provisioned environments and idle reaping ----------------------------------------

    async def _provision(self) -> None:
        if self._environments >= self._cap or self.closed:
            return
        self._environments += 1
        try:
            environment = await self._launcher.launch(provisioned=True)
        except BaseException:
            self._environments -= 1
            raise
        ready = await environment.wait_ready(self._spec.init_timeout_seconds)
        if environment.init_output:
            deliver_log(self._log_sink, environment.init_output)
        if not ready or self.closed:
            # An init failure is not retried in a loop: the next invocation cold-starts.
            environment.kill(closing=self.closed)
            self._environments -= 1
            self._dying.add(environment)
            await self._bury(environment)
            self._nudge()
            return
        environment.last_used = self._clock()
        environment.on_answer = self._on_answer
        self._idle.insert(0, environment)  # least recently used end: taken after warm ones
        self._nudge()

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
            environments=self._environments,
            busy=len(self._busy),
            idle=len(self._idle),
            in_flight=self._in_flight,
            waiting=len(self._environment_waiters),
            max_environments=self._cap,
        )

    def environment_pids(self) -> list[int]:
        """Pids of the live environments (for tests and diagnostics)."""
        return [e.pid for e in [*self._idle, *self._busy]]


# What a waiting invocation is told: an environment (and the handle of the invocation if it was
# already sent), None (look again: room to start one, or the deadline), or this: start one.
_SCALE_OUT = object()


def available_cores() -> int:
    """The cores this process may run on: `max_environments` when a spec says 0."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Waiter(Generic[E]):
    """An admitted invocation waiting for an environment."""

    __slots__ = ("expired", "future", "invocation")

    def __init__(self, invocation: Invocation, future: asyncio.Future[Any]) -> None:
        self.invocation = invocation
        self.future = future
        self.expired = False  # its deadline passed


def _expire(waiter: _Waiter[Any]) -> None:
    waiter.expired = True
    if not waiter.future.done():
        waiter.future.set_result(None)
