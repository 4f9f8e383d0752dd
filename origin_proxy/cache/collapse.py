"""Request collapsing: many concurrent misses for one cache key make one origin fetch.

The first request for a key *leads*: it gets a `Flight` and goes to the origin. Requests for
the same key that arrive meanwhile wait (at most `wait_seconds`) until the leader's answer is
stored or known not to be storable, then look the cache up again: a hit if it was stored;
otherwise they go to the origin themselves, all at once, without collapsing again (RFC 9111 §4
allows collapsing only while the answer can be shared).

A leader that never reports (a bug, a cancelled task) holds nobody for long: its followers stop
waiting after `wait_seconds`, and a flight older than that is replaced by a new leader.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable

__all__ = ["Collapser", "Flight"]


class Flight:
    """The leader's handle on one fetch. `release(stored)` exactly once (later calls are
    ignored): True when the answer is now in the cache."""

    __slots__ = ("_collapser", "_event", "key", "started", "stored")

    def __init__(self, collapser: Collapser, key: Hashable, started: float) -> None:
        self._collapser = collapser
        self._event = asyncio.Event()
        self.key = key
        self.started = started
        self.stored: bool | None = None

    @property
    def released(self) -> bool:
        return self._event.is_set()

    def release(self, stored: bool = False) -> None:
        if self._event.is_set():
            return
        self.stored = stored
        self._event.set()
        self._collapser._landed(self)

    async def wait(self, timeout_seconds: float) -> bool:
        """True when the leader released in time."""
        if self._event.is_set():
            return True
        try:
            await asyncio.wait_for(self._event.wait(), timeout_seconds)
        except TimeoutError:
            return False
        return True


class Collapser:
    """Tracks which keys are being fetched. `clock` is monotonic seconds (injected for tests)."""

    def __init__(
        self, *, wait_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if wait_seconds < 0:
            raise ValueError("wait_seconds must be >= 0")
        self.wait_seconds = wait_seconds
        self._clock = clock
        self._flights: dict[Hashable, Flight] = {}
        self.collapsed = 0

    def __len__(self) -> int:
        return len(self._flights)

    def lead(self, key: Hashable) -> Flight | None:
        """A new flight when nobody is fetching `key` (the caller leads), else None."""
        current = self._flights.get(key)
        now = self._clock()
        if current is not None and now - current.started < self.wait_seconds:
            return None
        if current is not None:
            current.release(False)  # abandoned: let its followers go
        flight = Flight(self, key, now)
        self._flights[key] = flight
        return flight

    def current(self, key: Hashable) -> Flight | None:
        return self._flights.get(key)

    async def join(self, key: Hashable) -> Flight | None:
        """Lead (returns the flight), or wait for the current leader (returns None; then look
        the cache up again, and on a miss fetch without leading)."""
        flight = self.lead(key)
        if flight is not None:
            return flight
        current = self._flights[key]
        self.collapsed += 1
        remaining = self.wait_seconds - (self._clock() - current.started)
        await current.wait(max(0.0, remaining))
        return None

    def _landed(self, flight: Flight) -> None:
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
