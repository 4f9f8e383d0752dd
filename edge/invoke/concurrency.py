"""Admission control: Lambda's reserved concurrency per function and the node-wide limit.

Concurrency is the number of invocations in flight (spec §10). A function with reserved
concurrency R runs at most R at once, and those R are carved out of the node's limit; every
other function shares what is left (`node_concurrency` minus all reservations). Reserved
concurrency 0 throttles every invocation. Sync invokes, async dispatch and edge triggers all
take a lease here before they invoke, so one limit covers them all.

Within one process the counts are plain integers. A node with several worker processes shares
them through `SharedCounts` (a table in a file every process maps), so its workers and its
admin listener count as one node; several nodes share them through Redis
(`edge.cluster.concurrency.ClusterLimiter`, a subclass).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from types import TracebackType

from edge.config import EdgeConfig
from edge.invoke.shared_counts import SharedCounts
from sandbox import FunctionThrottled

# BOTO ThrottleReason values (spec §8.3).
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
NODE_LIMIT = "ConcurrentInvocationLimitExceeded"


class ConcurrencyLimiter:
    """Counts invocations in flight; `acquire(name)` admits one or raises FunctionThrottled.

    Not thread-safe: use it from one event loop. `on_release` listeners run after each
    release (the async dispatcher uses this to wake up when room frees).
    """

    def __init__(
        self,
        node_limit: int,
        reserved: Mapping[str, int] | None = None,
        *,
        shared: SharedCounts | None = None,
    ) -> None:
        self.node_limit = node_limit
        self.reserved = dict(reserved or {})
        # Several processes: the machine-wide counts (a column per reserved function, then
        # the unreserved share's).
        self._shared = shared
        self._columns = {name: index for index, name in enumerate(sorted(self.reserved))}
        self._unreserved_column = len(self._columns)
        # The configuration keeps at least 100 of it (edge.config, as Lambda does).
        self.unreserved_limit = max(0, node_limit - sum(self.reserved.values()))
        self._in_flight: dict[str, int] = {}
        self._unreserved_in_flight = 0
        self._listeners: list[Callable[[], None]] = []
        # (function, reason) -> throttles since start, counted here and by `note_throttle`.
        self.throttles: dict[tuple[str, str], int] = {}

    @staticmethod
    def reserved_of(config: EdgeConfig) -> dict[str, int]:
        return {
            name: function.reserved_concurrency
            for name, function in config.functions.items()
            if function.reserved_concurrency is not None
        }

    @classmethod
    def from_config(
        cls, config: EdgeConfig, *, shared_dir: Path | None = None
    ) -> ConcurrencyLimiter:
        """The limiter of `config`; with `shared_dir` (several processes), counting through a
        table there that every process forked after this shares."""
        reserved = cls.reserved_of(config)
        return cls(
            config.invoke.node_concurrency,
            reserved,
            shared=shared_counts(shared_dir, reserved, config.server.workers),
        )

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
        """How many more invocations of `name` would be admitted now (on this node)."""
        reserved = self.reserved.get(name)
        shared = self._shared
        if reserved is not None:
            busy = shared.total(self._columns[name]) if shared else self.in_flight(name)
            return max(0, reserved - busy)
        busy = shared.total(self._unreserved_column) if shared else self._unreserved_in_flight
        return max(0, self.unreserved_limit - busy)

    def check(self, name: str) -> None:
        """Raise FunctionThrottled if `name` cannot be admitted now (counts the throttle)."""
        if self.available(name) <= 0:
            self._throttle(name, RESERVED_LIMIT if name in self.reserved else NODE_LIMIT)

    def admit(self, name: str, *, check: bool = True) -> None:
        """Count one more invocation of `name`, or raise FunctionThrottled when it would pass
        a limit (`check=False`: count it whatever the limits, for one admitted elsewhere).
        Every `admit` is paired with one `release`."""
        reserved = self.reserved.get(name)
        shared = self._shared
        if shared is not None:
            column = self._columns[name] if reserved is not None else self._unreserved_column
            limit = reserved if reserved is not None else self.unreserved_limit
            if not shared.try_add(column, limit if check else _UNLIMITED):
                self._throttle(name, RESERVED_LIMIT if reserved is not None else NODE_LIMIT)
        elif check:
            if reserved is not None:
                if self._in_flight.get(name, 0) >= reserved:
                    self._throttle(name, RESERVED_LIMIT)
            elif self._unreserved_in_flight >= self.unreserved_limit:
                self._throttle(name, NODE_LIMIT)
        self._in_flight[name] = self._in_flight.get(name, 0) + 1
        if reserved is None:
            self._unreserved_in_flight += 1

    def release(self, name: str) -> None:
        """Give back what one `admit` of `name` counted, and tell the release listeners."""
        self._in_flight[name] -= 1
        reserved = name in self.reserved
        if not reserved:
            self._unreserved_in_flight -= 1
        if self._shared is not None:
            self._shared.remove(self._columns[name] if reserved else self._unreserved_column)
        for listener in self._listeners:
            listener()

    @contextmanager
    def acquire(self, name: str) -> Iterator[None]:
        """Hold one unit of `name`'s concurrency for the `with` block; FunctionThrottled if full."""
        self.admit(name)
        try:
            yield
        finally:
            self.release(name)

    def lease(self, name: str) -> AbstractAsyncContextManager[None]:
        """`acquire` for `async with`: the form every invocation path uses, so a limiter that
        counts elsewhere (Redis) can wait for its answer."""
        return _Lease(self, name)

    def note_throttle(self, name: str, reason: str) -> None:
        """Count a throttle raised elsewhere (an environment pool at its cap)."""
        key = (name, reason)
        self.throttles[key] = self.throttles.get(key, 0) + 1

    def add_release_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _throttle(self, name: str, reason: str) -> None:
        self.note_throttle(name, reason)
        raise FunctionThrottled(name, reason)


_UNLIMITED = 1 << 62


class _Lease:
    """One admission held for an `async with` block (no generator: this is the hot path)."""

    __slots__ = ("_limiter", "_name")

    def __init__(self, limiter: ConcurrencyLimiter, name: str) -> None:
        self._limiter = limiter
        self._name = name

    async def __aenter__(self) -> None:
        self._limiter.admit(self._name)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._limiter.release(self._name)


def shared_counts(
    directory: Path | None, reserved: Mapping[str, int], workers: int
) -> SharedCounts | None:
    """The machine-wide table for a node of several processes (None: one process)."""
    if directory is None:
        return None
    # A row per worker, the admin listener's process, and room to spare.
    return SharedCounts(directory / "concurrency.bin", len(reserved) + 1, rows=max(16, workers + 8))
