"""One Redis connection manager per process: connect, watch, reconnect, never raise.

A `Cluster` is made after any fork (a Redis connection must not cross one). `start` returns at
once; a background task connects, pings every `health_interval` seconds and, when Redis stops
answering, marks the cluster unavailable and reconnects with a doubling backoff (0.1 s up to
`max_backoff`). Callers ask `client()` on every use: None means "use your local fallback now".
A caller whose command failed with a connection error says so (`report_failure`), so the
whole process falls back at once instead of at the next ping.

Availability changes are logged once each way (`cluster: redis unavailable (...)`,
`cluster: redis back`) and passed to listeners (metrics, the status page).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger("edge.cluster")

# Listener of availability changes: (available, reason). Called on the event loop; must not
# block or raise.
ClusterListener = Callable[[bool, str], None]

# Errors that mean "Redis cannot be used now" (OSError: a refused or reset socket that the
# client did not wrap; TimeoutError: asyncio's own timeout).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

_FIRST_BACKOFF_SECONDS = 0.1


class Cluster:
    """One Redis connection manager per process (create it after fork)."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        key_prefix: str = "edge:",
        timeout: float = 0.5,
        health_interval: float = 1.0,
        max_backoff: float = 5.0,
        label: str = "cluster",
    ) -> None:
        self.url = url
        # How its log lines start: "cluster", or "cache tier" for a node's own redis-server.
        self.label = label
        self.node_id = node_id
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.health_interval = health_interval
        self.max_backoff = max_backoff
        self._client: aioredis.Redis | None = None
        self._available = False
        self._listeners: list[ClusterListener] = []
        self._task: asyncio.Task[None] | None = None
        self._failed = asyncio.Event()
        # Status: when availability last changed, and why Redis is down (if it is).
        self.since = time.time()
        self.reason = "not connected yet"
        self.reconnects = 0
        self._warned = False
        self._users = 0

    # -- what callers use ---------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Connected and healthy now."""
        return self._available

    def client(self) -> aioredis.Redis | None:
        """The client while Redis is available; None while it is not (fall back to local)."""
        return self._client if self._available else None

    def key(self, *parts: str) -> str:
        """A key under this cluster's prefix: `key("conc", "f")` -> `edge:conc:f`."""
        return self.key_prefix + ":".join(parts)

    def add_listener(self, listener: ClusterListener) -> None:
        """Call `listener(available, reason)` on every change of availability."""
        self._listeners.append(listener)

    on_change = add_listener

    def report_failure(self, error: BaseException) -> None:
        """A command failed for want of Redis: fall back now, and reconnect in the background."""
        if self._available:
            self._set(False, _describe(error))
            self._failed.set()

    def status(self) -> dict[str, Any]:
        """The `cluster` section of the status document."""
        return {
            "redis": _redacted(self.url),
            "node_id": self.node_id,
            "available": self._available,
            "since": self.since,
            "reason": None if self._available else self.reason,
            "reconnects": self.reconnects,
        }

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background; never raises if Redis is down. Waits up to `timeout` for
        the first connection, so a node with a reachable Redis starts clustered.

        Several parts of one process may start it: each `start` is paired with an `aclose`,
        and the last one closes."""
        self._users += 1
        if self._task is not None:
            return
        self._client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            # The supervisor reconnects; a command is tried once (the caller falls back).
            retry_on_timeout=False,
            retry=None,
            decode_responses=False,
        )
        connected = asyncio.Event()
        self.add_listener(lambda up, _reason: connected.set() if up else None)
        # An owned task: cancelled and awaited by `aclose`.
        self._task = asyncio.get_running_loop().create_task(self._supervise())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), self.timeout)

    async def aclose(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        self._available = False
        if client is not None:
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await client.aclose()

    async def _supervise(self) -> None:
        backoff = _FIRST_BACKOFF_SECONDS
        client = self._client
        assert client is not None
        while True:
            try:
                await asyncio.wait_for(client.ping(), self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure means "not now"
                if self._available:
                    self._set(False, _describe(error))
                elif not self._warned:
                    self._set(False, _describe(error), force=True)
                self.reason = _describe(error)
                # A fresh pool after a failure: sockets of the old one may be half-dead.
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await client.connection_pool.disconnect()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = _FIRST_BACKOFF_SECONDS
            if not self._available:
                if self._warned:
                    self.reconnects += 1
                self._set(True, "")
            self._failed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._failed.wait(), self.health_interval)

    def _set(self, available: bool, reason: str, *, force: bool = False) -> None:
        if available == self._available and not force:
            return
        self._available = available
        self.since = time.time()
        self.reason = reason
        if available:
            if self._warned:
                logger.warning("%s: redis back (%s)", self.label, _redacted(self.url))
            else:
                logger.info("%s: connected to redis (%s)", self.label, _redacted(self.url))
            self._warned = False
        else:
            logger.warning(
                "%s: redis unavailable (%s: %s); serving with local limits and caches "
                "until it is back",
                self.label,
                _redacted(self.url),
                reason,
            )
            self._warned = True
        for listener in list(self._listeners):
            try:
                listener(available, reason)
            except Exception:  # a listener must not stop the supervisor
                logger.exception("cluster: an availability listener failed")


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _redacted(url: str) -> str:
    """The URL without its password (a status page or log line must not show it)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user + ':***@' if user else '***@'}{host}"


class ClusterCollector:
    """`edge_cluster_redis_up` (1 while this node reaches Redis) and the reconnections, read
    at scrape time from the admin listener's process."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        cluster = self._cluster
        yield GaugeMetricFamily(
            "edge_cluster_redis_up",
            "1 while this node reaches the cluster's Redis, 0 while it serves with local limits",
            value=1 if cluster.available else 0,
        )
        yield CounterMetricFamily(
            "edge_cluster_redis_reconnections",
            "Times the connection to Redis came back after being lost",
            value=cluster.reconnects,
        )
