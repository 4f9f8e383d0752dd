"""When an asynchronous event runs again, or gives up: Lambda's retry rules as pure functions.

Spec §9: after a function error, up to `maximum_retry_attempts` more attempts, waiting the
configured delays (Lambda: ~1 and ~2 minutes); after a throttle, back on the queue with a
backoff growing from 1 s to 5 min, never dropped before the event's maximum age. Times are
epoch seconds passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.config import FunctionConfig, InvokeConfig

THROTTLE_FIRST_DELAY_SECONDS = 1.0
THROTTLE_MAX_DELAY_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """One function's event invoke config, plus the node's retry delays."""

    maximum_retry_attempts: int = 2
    maximum_event_age_seconds: float = 21_600.0
    retry_delays_seconds: Sequence[float] = (60.0, 120.0)

    @classmethod
    def for_function(cls, function: FunctionConfig, invoke: InvokeConfig) -> RetryPolicy:
        return cls(
            function.maximum_retry_attempts,
            float(function.maximum_event_age),
            tuple(invoke.retry_delays),
        )

    def expires_at(self, enqueued_at: float) -> float:
        """When the event becomes too old to run."""
        return enqueued_at + self.maximum_event_age_seconds

    def is_expired(self, enqueued_at: float, now: float) -> bool:
        return now >= self.expires_at(enqueued_at)

    def after_function_error(self, errors: int, enqueued_at: float, now: float) -> float | None:
        """When to try again after the `errors`-th function error; None: retries exhausted.

        A retry that would fall after the event's maximum age is scheduled at that age, where
        it ends as `EventAgeExceeded`.
        """
        if errors > self.maximum_retry_attempts:
            return None
        delays = self.retry_delays_seconds
        delay = delays[min(errors, len(delays)) - 1] if delays else 0.0
        return min(now + delay, self.expires_at(enqueued_at))

    def after_throttle(self, throttles: int, enqueued_at: float, now: float) -> float:
        """When to try again after the `throttles`-th throttle: 1 s, 2 s, 4 s ... 5 min."""
        delay = min(
            THROTTLE_MAX_DELAY_SECONDS,
            THROTTLE_FIRST_DELAY_SECONDS * 2.0 ** max(0, throttles - 1),
        )
        return min(now + delay, self.expires_at(enqueued_at))
