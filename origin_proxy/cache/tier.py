"""The seam for a second cache level shared by several caches (`SharedTier`).

The local store (memory, disk) stays the first level: a hit there never reaches the second.
A miss asks the second level before the origin; what the local store keeps is offered to it
as well. The second level is shared by several nodes, so it also collapses their misses: the
first asker of a key gets a `Claim` and fetches; the others wait (bounded) for the object to
appear there. An implementation never raises: when it cannot answer it answers "not found",
so the cache behaves as if it had no second level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from origin_proxy.cache.policy import CacheKey
from origin_proxy.cache.store import Entry
from origin_proxy.message import Headers

__all__ = ["Claim", "Found", "SharedTier"]


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to fetch `key` for every node: given back by `publish` or `release`."""

    key: CacheKey
    token: str


@dataclass(frozen=True, slots=True)
class Found:
    """A lookup's result: the stored `entry` (its body in memory), or a `claim` to fetch."""

    entry: Entry | None = None
    claim: Claim | None = None


class SharedTier(Protocol):
    """A second cache level several caches share (see the module docstring)."""

    async def find(self, key: CacheKey, request_headers: Headers, *, lead: bool) -> Found:
        """The stored response for `key` that the request's Vary'd fields select. With `lead`,
        on a miss: a claim when nobody else is fetching the key, else wait (bounded) for the
        one who is, then answer what is stored by then (no claim: fetch without one)."""
        ...

    def publish(self, entry: Entry, claim: Claim | None) -> None:
        """Offer a stored response (in the background), then give `claim` back."""
        ...

    def release(self, claim: Claim) -> None:
        """Give a claim back without publishing (the answer was not stored)."""
        ...

    def remove_path(self, path: bytes) -> None:
        """Drop every response stored for `path` (in the background)."""
        ...

    async def invalidate(self, patterns: Sequence[str | bytes]) -> int:
        """Drop what a CloudFront invalidation batch names; the number of paths dropped."""
        ...
