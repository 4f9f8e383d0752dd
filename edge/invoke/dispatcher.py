"""The asynchronous poller: runs queued events, retries them, and records how each ended.

Lambda's rules (spec §9): a function error is retried up to `maximum_retry_attempts` times
after the configured delays; a throttle puts the event back with a growing backoff and never
drops it before its maximum age; an event older than that ends as `EventAgeExceeded`; reserved
concurrency 0 sends new events straight to on-failure / the dead-letter queue. The dispatcher
takes an event only when its function has room under the concurrency limiter (it is woken when
room frees), holding the lease from the claim, so async work never starves sync callers of a
slot it cannot use. The outcome and the event's removal are one transaction (see `queue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass

import orjson

from edge.config import FunctionConfig, InvokeConfig
from edge.invoke import records
from edge.invoke.concurrency import ConcurrencyLimiter
from edge.invoke.names import LATEST, function_arn
from edge.invoke.queue import EventQueue, NewEvent, QueuedEvent
from edge.invoke.records import Outcome
from edge.invoke.retry import RetryPolicy
from sandbox import (
    FunctionError,
    FunctionThrottled,
    InvocationResult,
    PoolClosed,
    SandboxError,
    new_request_id,
)

logger = logging.getLogger("edge.invoke")

# Runs one function once: (name, payload, request_id) -> result; raises sandbox errors.
# (function, payload, request id[, qualifier]): the qualifier is passed when not $LATEST.
InvokeFunction = Callable[..., Awaitable[InvocationResult]]

# The longest wait between looks at the queue when nothing wakes the dispatcher.
_POLL_SECONDS = 5.0


@dataclass(slots=True)
class DispatchCounts:
    """Totals since start, for metrics."""

    succeeded: int = 0
    retried: int = 0
    throttled: int = 0
    failed: int = 0
    expired: int = 0
    recovered: int = 0


def _throttle_outcome(reason: str) -> Outcome:
    body = {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."}
    return Outcome(429, orjson.dumps({**body, "Reason": reason}))


class Dispatcher:
    """Feeds queued events to `invoke` until `stop()`."""

    def __init__(
        self,
        queue: EventQueue,
        limiter: ConcurrencyLimiter,
        invoke: InvokeFunction,
        functions: Mapping[str, FunctionConfig],
        settings: InvokeConfig,
        *,
        on_finished: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._limiter = limiter
        self._invoke = invoke
        self._functions = functions
        self._policies = {
            name: RetryPolicy.for_function(function, settings)
            for name, function in functions.items()
        }
        self._on_finished = on_finished
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts = DispatchCounts()
        limiter.add_release_listener(self._wake.set)

    def use_functions(
        self, functions: Mapping[str, FunctionConfig], settings: InvokeConfig
    ) -> None:
        """Dispatch with a reloaded configuration's functions and their retry settings."""
        self._functions = functions
        self._policies = {
            name: RetryPolicy.for_function(function, settings)
            for name, function in functions.items()
        }
        self._wake.set()

    def wake(self) -> None:
        """Look at the queue again (an event was added)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self) -> None:
        """Claim and run events until `stop()`; returns when the runs in flight are done."""
        async with asyncio.TaskGroup() as group:
            while not self._stopping:
                self._wake.clear()
                now = self._clock()
                claimed = await self._queue.claim(self._room(), self._expired_before(now), now)
                for event in claimed:
                    # The lease is taken now, before the next look at the room.
                    task = group.create_task(self._start(event, self._lease(event, now)))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if claimed or self._stopping:
                    continue
                next_due = await self._queue.next_due(now)
                wait = _POLL_SECONDS
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - self._clock()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Claim nothing more; let runs in flight finish for `drain_seconds`, then cancel them
        (a cancelled event stays `running` in the file and is run again after a restart)."""
        self._stopping = True
        self._wake.set()
        pending = set(self._tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=drain_seconds)
            for task in late:
                task.cancel()

    def _room(self) -> dict[str, int]:
        room: dict[str, int] = {}
        for name, function in self._functions.items():
            if self._limiter.limit_of(name) == 0:
                room[name] = 256  # reserved concurrency 0: claimed only to be failed
                continue
            pool_room = function.max_concurrency - self._limiter.in_flight(name)
            room[name] = max(0, min(self._limiter.available(name), pool_room))
        return room

    def _expired_before(self, now: float) -> dict[str, float]:
        return {
            name: now - policy.maximum_event_age_seconds for name, policy in self._policies.items()
        }

    def _lease(self, event: QueuedEvent, now: float) -> ExitStack | FunctionThrottled | None:
        """A concurrency lease for a claimed event; None when it will not run at all."""
        policy = self._policies.get(event.function)
        if policy is None or policy.is_expired(event.enqueued_at, now):
            return None
        if self._limiter.limit_of(event.function) == 0:
            return None
        lease = ExitStack()
        try:
            lease.enter_context(self._limiter.acquire(event.function))
        except FunctionThrottled as throttled:
            return throttled
        return lease

    async def _start(self, event: QueuedEvent, lease: ExitStack | FunctionThrottled | None) -> None:
        try:
            policy = self._policies.get(event.function)
            if policy is None:
                logger.error("async event %s: no function %r", event.request_id, event.function)
                await self._finish(event, records.RETRIES_EXHAUSTED, event.last_outcome, 0)
            elif isinstance(lease, FunctionThrottled):
                await self._throttled(event, policy, lease)
            elif lease is not None:
                await self._attempt(event, policy, lease)
            elif policy.is_expired(event.enqueued_at, self._clock()):
                self.counts.expired += 1
                await self._finish(
                    event, records.EVENT_AGE_EXCEEDED, event.last_outcome, event.invocations
                )
            else:
                # Spec §9: reserved concurrency 0 -> straight to on-failure / DLQ, no retries.
                reason = "ReservedFunctionConcurrentInvocationLimitExceeded"
                self._limiter.note_throttle(event.function, reason)
                self.counts.failed += 1
                await self._finish(
                    event, records.RETRIES_EXHAUSTED, _throttle_outcome(reason), event.invocations
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or a queue failure: the event stays `running` and runs again after a restart.
            logger.exception("async event %s: dispatch failed", event.request_id)

    async def _attempt(self, event: QueuedEvent, policy: RetryPolicy, lease: ExitStack) -> None:
        with lease:
            try:
                if event.qualifier == LATEST:
                    result = await self._invoke(event.function, event.payload, event.request_id)
                else:  # a version or an alias, resolved now (an alias may have moved)
                    result = await self._invoke(
                        event.function, event.payload, event.request_id, event.qualifier
                    )
            except FunctionThrottled as throttled:
                outcome_error: SandboxError | None = throttled
            except FunctionError as error:
                outcome_error = error
            except PoolClosed:
                # Shutting down: not an attempt; run it again after the restart.
                await self._queue.retry(event, due_at=self._clock(), invoked=False)
                return
            except SandboxError as error:
                outcome_error = error
            else:
                outcome_error = None
        now = self._clock()
        if outcome_error is None:
            outcome = Outcome(200, result.payload, None, result.executed_version)
            self.counts.succeeded += 1
            await self._finish(event, records.SUCCESS, outcome, event.invocations + 1)
        elif isinstance(outcome_error, FunctionThrottled):
            await self._throttled(event, policy, outcome_error)
        elif isinstance(outcome_error, FunctionError):
            outcome = Outcome(200, outcome_error.payload_bytes, "Unhandled")
            errors = event.errors + 1
            due = policy.after_function_error(errors, event.enqueued_at, now)
            if due is None:
                self.counts.failed += 1
                await self._finish(event, records.RETRIES_EXHAUSTED, outcome, event.invocations + 1)
            else:
                self.counts.retried += 1
                await self._queue.retry(
                    event, due_at=due, invoked=True, function_error=True, outcome=outcome
                )
        else:
            # A platform failure (5xx in Lambda's terms): back on the queue like a throttle.
            logger.warning("async event %s: %s", event.request_id, outcome_error)
            due = policy.after_throttle(event.throttles + 1, event.enqueued_at, now)
            body = orjson.dumps(
                {"errorType": "ServiceException", "errorMessage": str(outcome_error)}
            )
            await self._queue.retry(
                event, due_at=due, invoked=False, throttled=True, outcome=Outcome(500, body)
            )

    async def _throttled(
        self, event: QueuedEvent, policy: RetryPolicy, throttled: FunctionThrottled
    ) -> None:
        self.counts.throttled += 1
        due = policy.after_throttle(event.throttles + 1, event.enqueued_at, self._clock())
        await self._queue.retry(
            event,
            due_at=due,
            invoked=False,
            throttled=True,
            outcome=event.last_outcome or _throttle_outcome(throttled.reason),
        )

    async def _finish(
        self, event: QueuedEvent, condition: str, outcome: Outcome | None, invoke_count: int
    ) -> None:
        """Remove the event and record where its outcome goes, in one transaction."""
        function = self._functions.get(event.function)
        deliveries: list[tuple[str, bytes]] = []
        chained: list[NewEvent] = []

        def send(target: str | None, body: bytes) -> None:
            if target is None:
                return
            if target.startswith("function:"):
                name = target.removeprefix("function:")
                if name not in self._functions:
                    logger.error("destination %s: no such function; record dropped", target)
                    return
                chained.append(NewEvent(new_request_id(), name, LATEST, body))
            else:
                deliveries.append((target, body))

        now = self._clock()
        if function is not None:
            record = records.invocation_record(
                request_id=event.request_id,
                function_arn=function_arn(event.function, event.qualifier),
                condition=condition,
                invoke_count=invoke_count,
                request_payload=event.payload,
                outcome=outcome,
                now=now,
            )
            success = condition == records.SUCCESS
            send(function.on_success if success else function.on_failure, record)
            if not success:
                if function.on_failure is None and function.dead_letter is None:
                    logger.warning(
                        "async event %s of %s discarded (%s): no on_failure or dead_letter",
                        event.request_id,
                        event.function,
                        condition,
                    )
                message = records.dead_letter_message(
                    request_id=event.request_id, request_payload=event.payload, outcome=outcome
                )
                send(function.dead_letter, message)
        await self._queue.finish(event, deliveries=deliveries, new_events=chained, now=now)
        if chained:
            self._wake.set()
        if deliveries and self._on_finished is not None:
            self._on_finished()
