"""The cache's shared second tier on Redis: every node's local misses look here first.

CloudFront's regional edge cache in miniature. Each worker keeps its own memory and disk
tiers; what one stores is also written here, so another node's miss becomes a hit without the
origin. Objects above `max_object_bytes` (and bodies kept on disk) stay local.

Layout (every name under the cluster's key prefix):
- `cache:obj:<digest of the key>`: a hash, one field per Vary variant, each value a stored
  response (status, reason, headers, the RFC 9111 freshness data, what it varies on, body).
  Its TTL is what is left of the freshness lifetime plus the stale-while-revalidate /
  stale-if-error windows: Redis forgets it when no cache could use it any more.
- `cache:lock:<digest>`: the claim of the node fetching the key (`SET NX PX`); the other nodes
  poll for the object while the claim lives, at most `wait_seconds`, then fetch themselves.
- `cache:paths`: a sorted set of the stored paths (all score 0, so ordered by bytes): an
  invalidation's `/images/*` is one `ZRANGEBYLEX` over it, not a SCAN of the keyspace.
  `cache:path:<digest of the path>`: the object keys stored for that path.

Nothing here raises: Redis down or slow (over `operation_seconds`) reads as a miss and a
write that did not happen, and the request goes on with the local tiers and the origin.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from origin_proxy import Headers
from origin_proxy.cache import (
    CacheKey,
    Claim,
    Entry,
    Found,
    Freshness,
    selecting_values,
)

__all__ = ["RedisSource", "RedisTier", "decode_entry", "encode_entry"]

logger = logging.getLogger("edge.cluster")

_NOT_FOUND: Final = Found()
# Compare-and-delete: a claim is given back only by the node that holds it.
_UNLOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_PATH_BATCH: Final = 256
_LENGTH: Final = struct.Struct(">I")
_Stored = dict[bytes, bytes]


class RedisSource(Protocol):
    """Where the Redis connection comes from (the cluster's connection manager)."""

    def client(self) -> Redis | None: ...

    def key(self, *parts: str) -> str: ...

    def report_failure(self, error: BaseException) -> None: ...


def _digest(*parts: bytes) -> str:
    return hashlib.blake2b(b"\0".join(parts), digest_size=16).hexdigest()


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def encode_entry(entry: Entry) -> bytes:
    """A stored response as bytes: a length-prefixed JSON head, then the body."""
    assert entry.body is not None
    fresh = entry.freshness
    head = orjson.dumps(
        {
            "p": _text(entry.key.path),
            "x": _text(entry.key.extra),
            "s": entry.status,
            "r": _text(entry.reason),
            "h": [[_text(name), _text(value)] for name, value in entry.headers],
            "f": [
                fresh.lifetime,
                fresh.initial_age,
                fresh.response_time,
                fresh.always_revalidate,
                fresh.never_stale,
                fresh.stale_while_revalidate,
                fresh.stale_if_error,
            ],
            "v": [_text(name) for name in entry.vary],
            "vv": [None if value is None else _text(value) for value in entry.vary_values],
        }
    )
    return _LENGTH.pack(len(head)) + head + entry.body


def decode_entry(data: bytes) -> Entry:
    (length,) = _LENGTH.unpack_from(data)
    head: dict[str, Any] = orjson.loads(data[4 : 4 + length])
    body = data[4 + length :]
    lifetime, initial_age, response_time, always, never, swr, sie = head["f"]
    return Entry(
        key=CacheKey(head["p"].encode("latin-1"), head["x"].encode("latin-1")),
        status=int(head["s"]),
        reason=head["r"].encode("latin-1"),
        headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in head["h"]],
        freshness=Freshness(
            float(lifetime),
            float(initial_age),
            float(response_time),
            bool(always),
            bool(never),
            float(swr),
            float(sie),
        ),
        vary=tuple(name.encode("latin-1") for name in head["v"]),
        vary_values=tuple(None if v is None else v.encode("latin-1") for v in head["vv"]),
        body=body,
        body_path=None,
        body_bytes=len(body),
    )


def keep_seconds(freshness: Freshness, now: float) -> float:
    """How long a shared copy stays useful: the rest of its lifetime and its stale windows."""
    left = freshness.lifetime - freshness.age(now)
    return left + max(freshness.stale_while_revalidate, freshness.stale_if_error)


class RedisTier:
    """`origin_proxy.cache.SharedTier` on Redis (see the module docstring)."""

    def __init__(
        self,
        source: RedisSource,
        *,
        max_object_bytes: int = 1024 * 1024,
        wait_seconds: float = 5.0,
        operation_seconds: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.max_object_bytes = max_object_bytes
        self.wait_seconds = wait_seconds
        self.operation_seconds = operation_seconds
        self.clock = clock
        self._paths = source.key("cache", "paths")
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures = 0

    def _object_key(self, key: CacheKey) -> str:
        return self.source.key("cache", "obj", _digest(key.path, key.extra))

    def _path_key(self, path: bytes) -> str:
        return self.source.key("cache", "path", _digest(path))

    def _lock_key(self, key: CacheKey) -> str:
        return self.source.key("cache", "lock", _digest(key.path, key.extra))

    # -- reading -----------------------------------------------------------------------------

    async def find(self, key: CacheKey, request_headers: Headers, *, lead: bool) -> Found:
        client = self.source.client()
        if client is None:
            return _NOT_FOUND
        try:
            return await self._find(client, key, request_headers, lead)
        except (RedisError, OSError, TimeoutError, ValueError) as exc:
            self._failed("find", exc)
            return _NOT_FOUND

    async def _find(
        self, client: Redis, key: CacheKey, request_headers: Headers, lead: bool
    ) -> Found:
        name = self._object_key(key)
        async with asyncio.timeout(self.operation_seconds):
            stored: Any = await client.hgetall(name)  # type: ignore[misc]
            entry = _select(cast(_Stored, stored), request_headers)
        if entry is not None or not lead:
            return Found(entry) if entry is not None else _NOT_FOUND
        lock = self._lock_key(key)
        token = secrets.token_hex(8)
        wait_ms = max(1, int(self.wait_seconds * 1000))
        async with asyncio.timeout(self.operation_seconds):
            if await client.set(lock, token, nx=True, px=wait_ms):
                # The copy may have landed (and its fetcher's claim gone) between the read above
                # and this claim: read again before fetching a second time.
                stored = await client.hgetall(name)  # type: ignore[misc]
                entry = _select(cast(_Stored, stored), request_headers)
                if entry is None:
                    return Found(claim=Claim(key, token))
                await client.eval(_UNLOCK, 1, lock, token)  # type: ignore[misc]
                return Found(entry)
        # Another node fetches this key: wait for its copy while its claim lives.
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
            async with asyncio.timeout(self.operation_seconds):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.hgetall(name)
                    pipe.exists(lock)
                    stored, held = await pipe.execute()
            entry = _select(cast(_Stored, stored), request_headers)
            if entry is not None:
                return Found(entry)
            if not held:
                break
        return _NOT_FOUND

    # -- writing -----------------------------------------------------------------------------

    def publish(self, entry: Entry, claim: Claim | None) -> None:
        body = entry.body
        keep = keep_seconds(entry.freshness, self.clock())
        if body is None or len(body) > self.max_object_bytes or keep < 1:
            if claim is not None:
                self.release(claim)
            return
        self._spawn(self._publish(entry, int(keep * 1000), claim))

    async def _publish(self, entry: Entry, keep_ms: int, claim: Claim | None) -> None:
        client = self.source.client()
        if client is None:
            return
        name = self._object_key(entry.key)
        field = _digest(*entry.vary, *(b"\1" if v is None else v for v in entry.vary_values))
        path_key = self._path_key(entry.key.path)
        try:
            async with asyncio.timeout(self.operation_seconds * 4):
                async with client.pipeline(transaction=True) as pipe:
                    pipe.hset(name, field, encode_entry(entry))  # type: ignore[arg-type]
                    pipe.pexpire(name, keep_ms, nx=True)
                    pipe.pexpire(name, keep_ms, gt=True)
                    pipe.zadd(self._paths, {entry.key.path: 0})
                    pipe.sadd(path_key, name)
                    pipe.pexpire(path_key, keep_ms, nx=True)
                    pipe.pexpire(path_key, keep_ms, gt=True)
                    if claim is not None:
                        pipe.eval(_UNLOCK, 1, self._lock_key(claim.key), claim.token)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("store", exc)

    def release(self, claim: Claim) -> None:
        self._spawn(self._release(claim))

    async def _release(self, claim: Claim) -> None:
        client = self.source.client()
        if client is None:
            return
        try:
            async with asyncio.timeout(self.operation_seconds):
                await client.eval(_UNLOCK, 1, self._lock_key(claim.key), claim.token)  # type: ignore[misc]
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("release", exc)

    # -- invalidation ------------------------------------------------------------------------

    def remove_path(self, path: bytes) -> None:
        self._spawn(self._drop_paths([path]))

    async def invalidate(self, patterns: Sequence[str | bytes]) -> int:
        client = self.source.client()
        if client is None:
            return 0
        paths: set[bytes] = set()
        try:
            async with asyncio.timeout(self.operation_seconds * 10):
                for pattern in patterns:
                    raw = pattern.encode() if isinstance(pattern, str) else pattern
                    raw = raw.partition(b"?")[0]
                    if raw.endswith(b"*"):
                        prefix = raw[:-1]
                        found = await client.zrangebylex(
                            self._paths, b"[" + prefix, b"[" + prefix + b"\xff"
                        )
                        paths.update(cast(list[bytes], found))
                    else:
                        paths.add(raw)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("invalidate", exc)
            return 0
        await self._drop_paths(sorted(paths))
        return len(paths)

    async def _drop_paths(self, paths: Sequence[bytes]) -> None:
        client = self.source.client()
        if client is None:
            return
        try:
            for start in range(0, len(paths), _PATH_BATCH):
                batch = paths[start : start + _PATH_BATCH]
                async with asyncio.timeout(self.operation_seconds * 4):
                    async with client.pipeline(transaction=False) as pipe:
                        for path in batch:
                            pipe.smembers(self._path_key(path))
                        members = await pipe.execute()
                    async with client.pipeline(transaction=True) as pipe:
                        for path, names in zip(batch, members, strict=True):
                            if names:
                                pipe.delete(*names)
                            pipe.delete(self._path_key(path))
                        pipe.zrem(self._paths, *batch)
                        await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("invalidate", exc)

    # -- background work ---------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:
            work.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Let the writes in flight finish."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.operation_seconds * 4)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        if not isinstance(exc, TimeoutError | ValueError):
            self.source.report_failure(exc)  # the whole process falls back at once
        if self.failures == 1 or self.failures % 1000 == 0:
            logger.warning("shared cache: %s failed (%d so far): %r", what, self.failures, exc)


def _select(stored: _Stored, request_headers: Headers) -> Entry | None:
    chosen: Entry | None = None
    for data in stored.values():
        entry = decode_entry(data)
        if entry.vary and selecting_values(entry.vary, request_headers) != entry.vary_values:
            continue
        if chosen is None or entry.freshness.response_time > chosen.freshness.response_time:
            chosen = entry
    return chosen
