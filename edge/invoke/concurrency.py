"""Admission control: Lambda's reserved concurrency per function and the node-wide limit.

Concurrency is the number of invocations in flight (spec §10). A function with reserved
concurrency R runs at most R at once, and those R are carved out of the node's limit; every
other function shares what is left (`node_concurrency` minus all reservations). Reserved
concurrency 0 throttles every invocation. Sync invokes, async dispatch and edge triggers all
take a lease here before they invoke, so one limit covers them all (within one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from edge.config import EdgeConfig
from sandbox import FunctionThrottled

# BOTO ThrottleReason values (spec §8.3).
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
NODE_LIMIT = "ConcurrentInvocationLimitExceeded"


class ConcurrencyLimiter:
    """Counts invocations in flight; `acquire(name)` admits one or raises FunctionThrottled.

    Not thread-safe: use it from one event loop. `on_release` listeners run after each
    release (the async dispatcher uses this to wake up when room frees).
    """

    def __init__(self, node_limit: int, reserved: Mapping[str, int] | None = None) -> None:
        self.node_limit = node_limit
        self.reserved = dict(reserved or {})
        # The configuration keeps at least 100 of it (edge.config, as Lambda does).
        self.unreserved_limit = max(0, node_limit - sum(self.reserved.values()))
        self._in_flight: dict[str, int] = {}
        self._unreserved_in_flight = 0
        self._listeners: list[Callable[[], None]] = []
        # (function, reason) -> throttles since start, counted here and by `note_throttle`.
        self.throttles: dict[tuple[str, str], int] = {}

    @classmethod
    def from_config(cls, config: EdgeConfig) -> ConcurrencyLimiter:
        return cls(config.invoke.node_concurrency, cls.reservations(config))

    def set_reserved(self, reserved: Mapping[str, int]) -> None:
        """Take new reservations (a reloaded configuration, PutFunctionConcurrency). An
        invocation in flight is released as it was admitted."""
        self.reserved = dict(reserved)
        self.unreserved_limit = max(0, self.node_limit - sum(self.reserved.values()))
        for listener in self._listeners:
            listener()

    @staticmethod
    def reservations(config: EdgeConfig) -> dict[str, int]:
        return {
            name: function.reserved_concurrency
            for name, function in config.functions.items()
            if function.reserved_concurrency is not None
        }

    def in_flight(self, name: str) -> int:
        """Invocations of `name` running now."""
        return self._in_flight.get(name, 0)

    def in_flight_by_function(self) -> dict[str, int]:
        """Invocations running now, by function (functions seen so far)."""
        return dict(self._in_flight)

    @property
    def total_in_flight(self) -> int:
        return sum(self._in_flight.values())

    def limit_of(self, name: str) -> int:
        """The most invocations of `name` that may ever run at once."""
        reserved = self.reserved.get(name)
        return reserved if reserved is not None else self.unreserved_limit

    def available(self, name: str) -> int:
        """How many more invocations of `name` would be admitted now."""
        reserved = self.reserved.get(name)
        if reserved is not None:
            return max(0, reserved - self.in_flight(name))
        return max(0, self.unreserved_limit - self._unreserved_in_flight)

    def check(self, name: str) -> None:
        """Raise FunctionThrottled if `name` cannot be admitted now (counts the throttle)."""
        reserved = self.reserved.get(name)
        if reserved is not None:
            if self.in_flight(name) >= reserved:
                self._throttle(name, RESERVED_LIMIT)
        elif self._unreserved_in_flight >= self.unreserved_limit:
            self._throttle(name, NODE_LIMIT)

    @contextmanager
    def acquire(self, name: str) -> Iterator[None]:
        """Hold one unit of `name`'s concurrency for the `with` block; FunctionThrottled if full."""
        self.check(name)
        reserved = name in self.reserved
        self._in_flight[name] = self._in_flight.get(name, 0) + 1
        if not reserved:
            self._unreserved_in_flight += 1
        try:
            yield
        finally:
            self._in_flight[name] -= 1
            if not reserved:
                self._unreserved_in_flight -= 1
            for listener in self._listeners:
                listener()

    def note_throttle(self, name: str, reason: str) -> None:
        """Count a throttle raised elsewhere (an environment pool at its cap)."""
        key = (name, reason)
        self.throttles[key] = self.throttles.get(key, 0) + 1

    def add_release_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _throttle(self, name: str, reason: str) -> None:
        self.note_throttle(name, reason)
        raise FunctionThrottled(name, reason)
