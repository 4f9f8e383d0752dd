"""Delivering records from the outbox to their destinations: JSON-lines files and HTTP(S).

`file:PATH.jsonl` appends one line per record and fsyncs; an http(s) URL receives each record
as a JSON POST through one pooled client with a bounded timeout. (`function:NAME` never gets
here: the dispatcher queues such a record as an asynchronous event.) Delivery is at-least-once:
a record is removed from the outbox after its destination took it; failures are retried with a
backoff from 1 s to 5 min for up to 6 hours, then dropped with an error in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from edge.invoke.queue import Delivery, EventQueue

logger = logging.getLogger("edge.invoke")

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
GIVE_UP_AFTER_SECONDS = 21_600.0
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_POLL_SECONDS = 5.0


class DestinationFailed(Exception):
    """A destination did not take a record."""


def resolve_file(target: str, base_dir: Path) -> Path:
    """The path of a `file:PATH` destination (relative to the config file's directory)."""
    path = Path(target.removeprefix("file:"))
    return path if path.is_absolute() else base_dir / path


def append_lines(path: Path, bodies: Sequence[bytes]) -> None:
    """Append one line per body and fsync, so a delivered record survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(body.replace(b"\n", b" ") + b"\n" for body in bodies)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class DeliveryCounts:
    delivered: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    by_target_kind: dict[str, int] = field(default_factory=dict)


class Outbox:
    """Drains the queue's outbox until stopped; `wake()` when records were added."""

    def __init__(
        self,
        queue: EventQueue,
        *,
        base_dir: Path,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._base_dir = base_dir
        self._client = client or httpx.AsyncClient(
            timeout=HTTP_TIMEOUT, limits=httpx.Limits(max_connections=64), trust_env=False
        )
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self.counts = DeliveryCounts()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver due records, wait for more; returns after `stop()` and a last drain."""
        while True:
            self._wake.clear()
            await self.drain_once()
            if self._stopping:
                return
            next_due = await self._queue.next_delivery_due()
            wait = _POLL_SECONDS
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def drain_once(self) -> None:
        """Send every record that is due now, one destination's records in order."""
        due = await self._queue.due_deliveries(self._clock())
        if not due:
            return
        groups: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in due:
            groups[delivery.target].append(delivery)
        async with asyncio.TaskGroup() as tasks:
            for target, deliveries in groups.items():
                tasks.create_task(self._deliver_group(target, deliveries))

    async def _deliver_group(self, target: str, deliveries: list[Delivery]) -> None:
        done: list[int] = []
        try:
            if target.startswith("file:"):
                path = resolve_file(target, self._base_dir)
                await asyncio.to_thread(append_lines, path, [d.body for d in deliveries])
                done = [d.seq for d in deliveries]
            else:
                for delivery in deliveries:
                    await self._post(target, delivery.body)
                    done.append(delivery.seq)
        except (OSError, httpx.HTTPError, DestinationFailed) as exc:
            await self._failed(target, [d for d in deliveries if d.seq not in done], exc)
        if done:
            await self._queue.delivered(done)
            self.counts.delivered += len(done)
            kind = target.partition(":")[0]
            self.counts.by_target_kind[kind] = self.counts.by_target_kind.get(kind, 0) + len(done)

    async def _post(self, url: str, body: bytes) -> None:
        response = await self._client.post(
            url, content=body, headers={"content-type": "application/json"}
        )
        await response.aclose()
        if response.status_code >= 300:
            raise DestinationFailed(f"{url} answered {response.status_code}")

    async def _failed(self, target: str, deliveries: list[Delivery], exc: BaseException) -> None:
        now = self._clock()
        dropped: list[int] = []
        for delivery in deliveries:
            self.counts.failed_attempts += 1
            if now - delivery.created_at >= GIVE_UP_AFTER_SECONDS:
                logger.error("destination %s: giving up on a record after 6 h: %s", target, exc)
                dropped.append(delivery.seq)
                continue
            delay = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0**delivery.attempts)
            await self._queue.delivery_failed(delivery.seq, now + delay)
        if deliveries:
            logger.warning(
                "destination %s: %d record(s) not delivered, will retry: %s",
                target,
                len(deliveries) - len(dropped),
                exc,
            )
        if dropped:
            self.counts.dropped += len(dropped)
            await self._queue.delivered(dropped)
