"""Invalidations to every node: a Redis stream that each node's workers read as it grows.

The admin listener of any node appends an invalidation to the stream
`{prefix}invalidations` (XADD, trimmed to about `[cluster] invalidation_history` entries).
Every viewer process of every node reads it with a blocking XREAD from the last entry it
applied: Redis answers the moment an entry is added (so an invalidation reaches every node
within milliseconds, the stream doing what a pub/sub channel would), and the same read from
the same id after a lost connection replays whatever was added meanwhile (what a channel
alone would lose). A process that starts reads from the stream's end: its cache is new.

While Redis cannot be reached the admin listener applies an invalidation to its own node at
once and keeps it: when Redis is back it is published for the other nodes (this node applies
it a second time, which removes at most what was stored since). The followers wait for the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from edge.cluster.connection import UNAVAILABLE_ERRORS, Cluster

logger = logging.getLogger("edge.cluster")

Apply = Callable[[Sequence[str]], Awaitable[int]]

# How long one XREAD waits for a new entry before asking again (its connection's timeout is
# longer, so an idle wait is never mistaken for a dead Redis).
_BLOCK_MILLISECONDS = 2000
# Invalidations kept for the other nodes while Redis is unavailable (CloudFront keeps at most
# 3,000 paths in progress; this is the number of requests).
_MAX_PENDING = 1000


class ClusterInvalidations:
    """The invalidation stream of `cluster` (see the module's docstring)."""

    def __init__(self, cluster: Cluster, *, history: int = 10_000) -> None:
        self.cluster = cluster
        self.history = history
        self.stream = cluster.key("invalidations")
        # The id of the last entry this process applied (kept across reconnections).
        self.last_id: bytes | None = None
        # Invalidations made while Redis was unavailable, published when it is back.
        self.pending: list[tuple[str, list[str]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._listening = False

    def keep_for_later(self, entry_id: str, paths: Sequence[str]) -> None:
        """Publish this invalidation when Redis is available again (see the docstring)."""
        if not self._listening:
            self.cluster.add_listener(self._on_change)
            self._listening = True
        if len(self.pending) >= _MAX_PENDING:
            dropped, _ = self.pending.pop(0)
            logger.error("cluster: invalidation %s will not reach the other nodes", dropped)
        self.pending.append((entry_id, list(paths)))

    def _on_change(self, available: bool, _reason: str) -> None:
        if not available or not self.pending:
            return
        if self._flushing is None or self._flushing.done():
            # An owned task: one at a time, it ends when the pending list is empty.
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            entry_id, paths = self.pending[0]
            if not await self.publish(entry_id, paths):
                return  # unavailable again: the next change of availability tries again
            self.pending.pop(0)
            logger.info("cluster: invalidation %s published after redis came back", entry_id)

    async def publish(self, entry_id: str, paths: Sequence[str]) -> bool:
        """Append an invalidation for every node; False when Redis cannot take it now."""
        client = self.cluster.client()
        if client is None:
            return False
        fields: dict[Any, Any] = {
            "id": entry_id,
            "paths": orjson.dumps(list(paths)),
            "node": self.cluster.node_id,
            "time": repr(time.time()),
        }
        try:
            await client.xadd(self.stream, fields, maxlen=self.history, approximate=True)
        except UNAVAILABLE_ERRORS as error:
            self.cluster.report_failure(error)
            return False
        return True

    async def follow(self, apply: Apply) -> None:
        """Apply every invalidation any node publishes, in order (runs until cancelled)."""
        reader: aioredis.Redis | None = None
        try:
            while True:
                if not self.cluster.available:
                    await asyncio.sleep(0.05)
                    continue
                if reader is None:
                    reader = aioredis.Redis.from_url(
                        self.cluster.url,
                        socket_timeout=_BLOCK_MILLISECONDS / 1000 + 5,
                        socket_connect_timeout=self.cluster.timeout,
                        retry=None,
                    )
                try:
                    await self._read(reader, apply)
                except UNAVAILABLE_ERRORS as error:
                    self.cluster.report_failure(error)
                    with contextlib.suppress(*UNAVAILABLE_ERRORS):
                        await reader.connection_pool.disconnect()
                    await asyncio.sleep(0.1)
        finally:
            if reader is not None:
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await reader.aclose()

    async def _read(self, reader: aioredis.Redis, apply: Apply) -> None:
        if self.last_id is None:
            newest = await reader.xrevrange(self.stream, count=1)
            self.last_id = newest[0][0] if newest else b"0-0"
        while True:
            found = await reader.xread({self.stream: self.last_id}, block=_BLOCK_MILLISECONDS)
            for _stream, entries in found or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    await self._apply(fields, apply)

    @staticmethod
    async def _apply(fields: dict[bytes, bytes], apply: Apply) -> None:
        try:
            paths = orjson.loads(fields[b"paths"])
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise TypeError("paths is not a list of strings")
        except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
            logger.error("cluster: an invalidation entry skipped: %s", exc)
            return
        removed = await apply(paths)
        logger.info(
            "invalidation %s from %s (%s): %d stored responses removed in worker %d",
            fields.get(b"id", b"?").decode(errors="replace"),
            fields.get(b"node", b"?").decode(errors="replace"),
            ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else ""),
            removed,
            os.getpid(),
        )
