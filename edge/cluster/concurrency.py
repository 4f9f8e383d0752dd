"""Lambda's concurrency across every worker of every node: leases in Redis.

Each counted limit is a sorted set in Redis: one per function with reserved concurrency
(`{prefix}concurrency:function:NAME`), one for the share every other function uses
(`{prefix}concurrency:account`, whose limit is `[invoke] node_concurrency` minus all
reservations: with `[cluster]` on, `node_concurrency` is the cluster's account limit). A
member is one invocation's lease, scored by when it expires on Redis's own clock.

Admission is one Lua script (one round trip): drop the expired leases, compare the count with
the limit, add the lease. Release is one ZREM, sent without waiting for its answer. A lease
lives `lease_seconds`; a task renews the leases of the invocations still running every third
of that (one script call for all of them), so only long invocations cost renewals, and a node
that dies mid-invocation gives its capacity back when its leases expire.

While Redis cannot be reached the node falls back to its local limiter (its own workers
counting as one), and says so once in its log (`edge.cluster.connection`). Invocations
admitted through Redis are also counted locally, so the fallback knows what runs here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

from edge.cluster.connection import UNAVAILABLE_ERRORS, Cluster
from edge.config import EdgeConfig
from edge.invoke.concurrency import NODE_LIMIT, RESERVED_LIMIT, ConcurrencyLimiter
from edge.invoke.shared_counts import SharedCounts

logger = logging.getLogger("edge.cluster")

# KEYS[1]: the limit's sorted set. ARGV: limit, lease seconds, member. 1: admitted, 0: full.
_ACQUIRE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[3])
return 1
"""

# KEYS: sorted sets; ARGV[1]: lease seconds, ARGV[i + 1]: the member in KEYS[i]. Extends only
# the leases still present (XX); the number extended.
_RENEW = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000 + tonumber(ARGV[1])
local n = 0
for i = 1, #KEYS do
  n = n + redis.call('ZADD', KEYS[i], 'XX', 'CH', t, ARGV[i + 1])
end
return n
"""


class ClusterLimiter(ConcurrencyLimiter):
    """A ConcurrencyLimiter whose `lease` counts in Redis while the cluster is available.

    Made before any fork (it carries the machine-wide table); each process then `attach`es
    its own `Cluster`. The synchronous `acquire` (the async queue's dispatcher) stays local.
    """

    def __init__(
        self,
        node_limit: int,
        reserved: Mapping[str, int] | None = None,
        *,
        shared: SharedCounts | None = None,
        lease_seconds: float = 10.0,
    ) -> None:
        super().__init__(node_limit, reserved, shared=shared)
        self.lease_seconds = lease_seconds
        self.cluster: Cluster | None = None
        # This process's leases in Redis: member -> (key, when last renewed).
        self._held: dict[str, tuple[str, float]] = {}
        self._sequence = itertools.count()
        self._renewer: asyncio.Task[None] | None = None
        self._renewer_pid = 0
        self._scripts: dict[int, tuple[Any, Any]] = {}
        self._keys: dict[str, str] = {}
        self._admitted_remotely = 0
        self._releasing: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: EdgeConfig, *, shared_dir: Any = None) -> ClusterLimiter:
        from edge.invoke.concurrency import shared_counts

        reserved = cls.reserved_of(config)
        return cls(
            config.invoke.node_concurrency,
            reserved,
            shared=shared_counts(shared_dir, reserved, config.server.workers),
            lease_seconds=config.cluster.lease_seconds,
        )

    def attach(self, cluster: Cluster) -> None:
        """Count through `cluster` in this process (after any fork)."""
        self.cluster = cluster
        self._held.clear()
        self._keys.clear()
        self._scripts.clear()

    def lease(self, name: str) -> AbstractAsyncContextManager[None]:
        return _ClusterLease(self, name)

    @property
    def held_in_redis(self) -> int:
        """Leases this process holds in Redis now."""
        return len(self._held)

    def _key(self, name: str) -> str:
        key = self._keys.get(name)
        if key is None:
            assert self.cluster is not None
            if name in self.reserved:
                key = self.cluster.key("concurrency", "function", name)
            else:
                key = self.cluster.key("concurrency", "account")
            self._keys[name] = key
        return key

    def _script_pair(self, client: Any) -> tuple[Any, Any]:
        found = self._scripts.get(id(client))
        if found is None:
            found = (client.register_script(_ACQUIRE), client.register_script(_RENEW))
            self._scripts = {id(client): found}
        return found

    async def _enter(self, name: str) -> str | None:
        """Admit one invocation of `name`: its lease's member in Redis, or None when it was
        admitted locally (Redis unavailable). FunctionThrottled when full."""
        cluster = self.cluster
        client = cluster.client() if cluster is not None else None
        if client is None or cluster is None:
            self.admit(name)
            return None
        limit = self.limit_of(name)
        if limit == 0:
            self.admit(name)  # reserved concurrency 0: throttled without asking anyone
            return None
        member = f"{cluster.node_id}:{os.getpid()}:{next(self._sequence)}"
        key = self._key(name)
        acquire, _ = self._script_pair(client)
        try:
            admitted = await acquire(keys=[key], args=[limit, self.lease_seconds, member])
        except UNAVAILABLE_ERRORS as error:
            cluster.report_failure(error)
            self.admit(name)
            return None
        if not admitted:
            self._throttle(name, RESERVED_LIMIT if name in self.reserved else NODE_LIMIT)
        # Counted here too (unchecked): metrics, and a fallback that knows what runs here.
        self.admit(name, check=False)
        self._held[member] = (key, time.monotonic())
        self._admitted_remotely += 1
        self._ensure_renewer()
        return member

    async def _exit(self, name: str, member: str | None) -> None:
        self.release(name)
        if member is None:
            return
        held = self._held.pop(member, None)
        cluster = self.cluster
        client = cluster.client() if cluster is not None else None
        if held is None or client is None or cluster is None:
            return  # Redis went away: the lease expires by itself
        # Sent, not awaited: the invocation's caller does not wait a round trip for it (an
        # owned task; the lease expires by itself if the process ends first).
        task = asyncio.get_running_loop().create_task(
            self._remove(cluster, client, held[0], member)
        )
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    @staticmethod
    async def _remove(cluster: Cluster, client: Any, key: str, member: str) -> None:
        try:
            await client.zrem(key, member)
        except UNAVAILABLE_ERRORS as error:
            cluster.report_failure(error)

    def _ensure_renewer(self) -> None:
        pid = os.getpid()
        if self._renewer is not None and self._renewer_pid == pid and not self._renewer.done():
            return
        self._renewer_pid = pid
        # An owned task, one per process: it runs as long as the process's event loop.
        self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        every = self.lease_seconds / 3
        while True:
            await asyncio.sleep(every / 2)
            await self.renew(older_than=every)

    async def renew(self, *, older_than: float = 0.0) -> int:
        """Extend the leases of this process's invocations last renewed `older_than` seconds
        ago or more; the number extended."""
        cluster = self.cluster
        client = cluster.client() if cluster is not None else None
        if client is None or cluster is None or not self._held:
            return 0
        now = time.monotonic()
        due = [(m, key) for m, (key, at) in self._held.items() if now - at >= older_than]
        if not due:
            return 0
        _, renew_script = self._script_pair(client)
        try:
            renewed = await renew_script(
                keys=[key for _, key in due],
                args=[self.lease_seconds, *(member for member, _ in due)],
            )
        except UNAVAILABLE_ERRORS as error:
            cluster.report_failure(error)
            return 0
        for member, key in due:
            if member in self._held:
                self._held[member] = (key, now)
        return int(renewed)


class _ClusterLease:
    __slots__ = ("_limiter", "_member", "_name")

    def __init__(self, limiter: ClusterLimiter, name: str) -> None:
        self._limiter = limiter
        self._name = name
        self._member: str | None = None

    async def __aenter__(self) -> None:
        self._member = await self._limiter._enter(self._name)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._limiter._exit(self._name, self._member)
