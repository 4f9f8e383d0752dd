"""The async invocation queue on Redis Streams, shared by the nodes of a cluster.

The same interface as `queue.EventQueue` (the dispatcher, the retry rules, destinations and the
dead-letter queue work unchanged); the events live in Redis instead of the node's SQLite file:

- `invoke:stream:<function>`: a stream per function, read through the consumer group `edge`
  by every node (consumer = node id). An event is claimed with XREADGROUP (or, when the node
  that claimed it has been silent past the visibility timeout, taken over with XAUTOCLAIM),
  and acknowledged and deleted when its outcome is recorded: an event accepted by a node that
  dies before (or while) running it runs on another node.
- `invoke:delayed:<function>`: a sorted set of events waiting for a retry, by due time; a
  script moves the due ones back into the stream.

The visibility timeout of a function is `visibility_seconds`, and never less than the
function's own timeout plus 2 s: a run still in progress is never taken over.

What stays local, in the node's SQLite file (`queue.EventQueue`, which this class extends):
- the outbox of destination records (the node that ran an event delivers its records);
- events accepted while Redis cannot be reached: the 202 is given once the event is in the
  local file (fsync'd), and they are forwarded to the stream when Redis answers again. An
  accepted event is never lost, and the caller is never refused because of Redis.
- `function:` destinations' events go through the local file and are forwarded the same way.

Delivery is at-least-once, as Lambda's: a node that dies after running an event but before
recording it lets another node run it again.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from edge.invoke.queue import EventQueue, NewEvent, QueuedEvent, QueueStats
from edge.invoke.records import Outcome

__all__ = ["StreamQueue"]

logger = logging.getLogger("edge.invoke")

GROUP: Final = "edge"
# How often an idle dispatcher looks at the streams (other nodes' events do not wake it).
POLL_SECONDS: Final = 0.2
# How often the pending entries of silent nodes are looked at.
RECLAIM_SECONDS: Final = 1.0
_CLAIM_MAX: Final = 256
_FORWARD_MAX: Final = 256
# Move due retries back into the stream: KEYS = delayed set, stream; ARGV = now.
_MOVE_DUE: Final = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 256)
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'e', member)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""


class RedisUnavailable(RuntimeError):
    """Redis cannot be reached now (the event stays where it is)."""


class StreamQueue(EventQueue):
    """Async events on Redis Streams; the outbox and the fallback in the SQLite file at `path`.
    `source` gives the Redis client (None while Redis is down) and the key names."""

    def __init__(
        self,
        path: Path,
        source: Any,
        *,
        functions: Mapping[str, float],
        consumer: str,
        visibility_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(path)
        self._source = source
        self._functions = dict(functions)  # name -> its timeout in seconds
        self._consumer = consumer
        self._visibility_ms = {
            name: int(max(visibility_seconds, timeout + 2.0) * 1000)
            for name, timeout in functions.items()
        }
        self._clock = clock
        self._seqs = itertools.count(1)
        self._claimed: dict[int, tuple[str, bytes]] = {}  # seq -> (stream, entry id)
        self._groups_ready = False
        self._local_waiting = True  # look at the local file once at start
        self._last_reclaim = 0.0
        # Outcomes recorded while Redis was away, applied when it answers again (lost with
        # the node: then the event runs again, at least once).
        self._unsent: list[tuple[str, str, bytes, bytes | None, float]] = []
        self.forwarded = 0
        self.fallbacks = 0

    def _stream(self, function: str) -> str:
        return str(self._source.key("invoke", "stream", function))

    def _delayed(self, function: str) -> str:
        return str(self._source.key("invoke", "delayed", function))

    def _client(self) -> Redis:
        client: Redis | None = self._source.client()
        if client is None:
            raise RedisUnavailable("redis is not connected")
        return client

    async def _ensure_groups(self, client: Redis) -> None:
        if self._groups_ready:
            return
        for function in self._functions:
            try:
                await client.xgroup_create(self._stream(function), GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    # -- accepting ---------------------------------------------------------------------------

    async def put(self, event: NewEvent, now: float) -> None:
        """Add the event to its stream; when Redis cannot take it, to the local file (fsync'd)
        to be forwarded later. Either way it is stored when this returns."""
        try:
            client = self._client()
            await client.xadd(self._stream(event.function), {"e": _encode_new(event, now)})
        except (RedisError, OSError, RedisUnavailable) as exc:
            self._report(exc)
            self.fallbacks += 1
            if self.fallbacks == 1 or self.fallbacks % 100 == 0:
                logger.warning("async queue: redis unavailable (%r); kept locally", exc)
            await super().put(event, now)
            self._local_waiting = True

    # -- claiming ----------------------------------------------------------------------------

    async def claim(
        self, room: Mapping[str, int], expired_before: Mapping[str, float], now: float
    ) -> list[QueuedEvent]:
        try:
            client = self._client()
            await self._ensure_groups(client)
            if self._unsent:
                await self._send_outcomes(client)
            if self._local_waiting:
                await self._forward(client, now)
            return await self._claim(client, room, now)
        except (RedisError, OSError, RedisUnavailable) as exc:
            if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                self._groups_ready = False  # Redis lost its data (restarted empty)
            self._report(exc)
            logger.debug("async queue: claim failed: %r", exc)
            return []

    async def _claim(self, client: Redis, room: Mapping[str, int], now: float) -> list[QueuedEvent]:
        claimed: list[QueuedEvent] = []
        reclaim = time.monotonic() - self._last_reclaim >= RECLAIM_SECONDS
        if reclaim:
            self._last_reclaim = time.monotonic()
        for function, wanted in room.items():
            if function not in self._functions:
                continue
            stream, delayed = self._stream(function), self._delayed(function)
            await client.eval(_MOVE_DUE, 2, delayed, stream, repr(now))  # type: ignore[misc]
            limit = min(wanted, _CLAIM_MAX)
            if limit <= 0:
                continue
            entries: list[tuple[bytes, dict[bytes, bytes] | None]] = []
            if reclaim:
                answer: Any = await client.xautoclaim(
                    stream, GROUP, self._consumer, self._visibility_ms[function],
                    start_id="0-0", count=limit,
                )  # fmt: skip
                entries.extend(answer[1])
            if len(entries) < limit:
                read: Any = await client.xreadgroup(
                    GROUP, self._consumer, {stream: ">"}, count=limit - len(entries)
                )
                for _, items in read or ():
                    entries.extend(items)
            for entry_id, fields in entries:
                if not fields or b"e" not in fields:
                    await client.xack(stream, GROUP, entry_id)
                    continue
                seq = -next(self._seqs)  # never a row of the local file
                self._claimed[seq] = (stream, entry_id)
                claimed.append(_decode(seq, fields[b"e"]))
        return claimed

    async def _forward(self, client: Redis, now: float) -> None:
        """Move events accepted locally while Redis was away into their streams."""
        everything = dict.fromkeys(self._functions, _FORWARD_MAX)
        local = await super().claim(everything, {}, float("inf"))
        for index, event in enumerate(local):
            try:
                await client.xadd(self._stream(event.function), {"e": _encode(event)})
            except BaseException:
                for left in local[index:]:  # queued again, for the next attempt
                    await super().retry(left, due_at=now, invoked=False)
                raise
            await super().finish(event, now=now)
            self.forwarded += 1
        self._local_waiting = len(local) >= _FORWARD_MAX

    # -- outcomes ----------------------------------------------------------------------------

    async def retry(
        self,
        event: QueuedEvent,
        *,
        due_at: float,
        invoked: bool,
        function_error: bool = False,
        throttled: bool = False,
        outcome: Outcome | None = None,
    ) -> None:
        again = replace(
            event,
            invocations=event.invocations + int(invoked),
            errors=event.errors + int(function_error),
            throttles=event.throttles + int(throttled),
            last_outcome=outcome or event.last_outcome,
        )
        stream, entry_id = self._claimed.pop(event.seq)
        await self._outcome(stream, self._delayed(event.function), entry_id, _encode(again), due_at)

    async def finish(
        self,
        event: QueuedEvent,
        *,
        deliveries: Sequence[tuple[str, bytes]] = (),
        new_events: Sequence[NewEvent] = (),
        now: float,
    ) -> None:
        # The records first, in the local file (the event's seq is no row there): a crash
        # before the acknowledgement runs the event again, at least once.
        if deliveries or new_events:
            await super().finish(event, deliveries=deliveries, new_events=new_events, now=now)
            if new_events:
                self._local_waiting = True
        stream, entry_id = self._claimed.pop(event.seq)
        await self._outcome(stream, "", entry_id, None, 0.0)

    async def _outcome(
        self, stream: str, delayed: str, entry_id: bytes, again: bytes | None, due_at: float
    ) -> None:
        """Acknowledge and delete a claimed entry (with `again`: back for a retry at
        `due_at`). Redis away: kept in memory and sent when it answers again."""
        outcome = (stream, delayed, entry_id, again, due_at)
        try:
            await self._send(self._client(), [outcome])
        except (RedisError, OSError, RedisUnavailable) as exc:
            self._report(exc)
            logger.warning("async queue: outcome kept until redis is back: %r", exc)
            self._unsent.append(outcome)

    def _report(self, exc: BaseException) -> None:
        """A connection failure: the connection manager falls back at once (not at its next
        health check)."""
        if not isinstance(exc, ResponseError | RedisUnavailable):
            self._source.report_failure(exc)

    async def _send_outcomes(self, client: Redis) -> None:
        unsent, self._unsent = self._unsent, []
        try:
            await self._send(client, unsent)
        except BaseException:
            self._unsent[:0] = unsent
            raise

    @staticmethod
    async def _send(
        client: Redis, outcomes: Sequence[tuple[str, str, bytes, bytes | None, float]]
    ) -> None:
        async with client.pipeline(transaction=True) as pipe:
            for stream, delayed, entry_id, again, due_at in outcomes:
                if again is not None:
                    pipe.zadd(delayed, {again: due_at})
                pipe.xack(stream, GROUP, entry_id)
                pipe.xdel(stream, entry_id)
            await pipe.execute()

    async def next_due(self, after: float) -> float | None:
        # Other nodes' events wake nobody here: look again soon.
        return after + POLL_SECONDS

    async def stats(self) -> QueueStats:
        local = await super().stats()
        depth = local.depth
        try:
            client = self._client()
            async with client.pipeline(transaction=False) as pipe:
                for function in self._functions:
                    pipe.xlen(self._stream(function))
                    pipe.zcard(self._delayed(function))
                counts = await pipe.execute()
            depth += sum(int(count) for count in counts)
        except (RedisError, OSError, RedisUnavailable):
            pass
        return QueueStats(depth, local.oldest_enqueued_at, local.outbox)


def _encode_new(event: NewEvent, now: float) -> bytes:
    return orjson.dumps(
        {
            "id": event.request_id,
            "f": event.function,
            "q": event.qualifier,
            "p": event.payload.decode("latin-1"),
            "t": now,
            "n": [0, 0, 0],
            "o": None,
        }
    )


def _encode(event: QueuedEvent) -> bytes:
    last = event.last_outcome
    return orjson.dumps(
        {
            "id": event.request_id,
            "f": event.function,
            "q": event.qualifier,
            "p": event.payload.decode("latin-1"),
            "t": event.enqueued_at,
            "n": [event.invocations, event.errors, event.throttles],
            "o": None if last is None else last.to_json(),
        }
    )


def _decode(seq: int, data: bytes) -> QueuedEvent:
    doc: dict[str, Any] = orjson.loads(data)
    invocations, errors, throttles = doc["n"]
    return QueuedEvent(
        seq,
        str(doc["id"]),
        str(doc["f"]),
        str(doc["q"]),
        str(doc["p"]).encode("latin-1"),
        float(doc["t"]),
        int(invocations),
        int(errors),
        int(throttles),
        None if doc["o"] is None else Outcome.from_json(doc["o"]),
    )
