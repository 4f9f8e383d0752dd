"""The shared cache tier on a real redis-server, two caches in one process standing for two
nodes: what crosses (status, headers, body, age, Vary variants), what stays local (large
objects), how long Redis keeps it, and that a Redis gone reads as a miss, never an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from edge.shared_cache import RedisTier
from origin_proxy.cache import CachePolicy, CacheStore, Collapser, HttpCache, Outcome
from origin_proxy.message import Headers
from tests.redis_fixture_cache import REDIS_SERVER, RedisServer

POLICY = CachePolicy.rfc9111()


class Source:
    """What the cluster's connection manager gives: a client, and key names."""

    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=None)

    def client(self) -> Redis:
        return self.redis

    def key(self, *parts: str) -> str:
        return "test:" + ":".join(parts)

    def report_failure(self, error: BaseException) -> None:
        pass


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


OPEN: list[Source] = []


def _node(url: str, memory_bytes: int = 1 << 20, **tier: float) -> HttpCache:
    source = Source(url)
    OPEN.append(source)
    shared = RedisTier(source, **tier)
    return HttpCache(CacheStore(memory_bytes=memory_bytes), collapser=Collapser(), shared=shared)


async def _close_all() -> None:
    while OPEN:
        await OPEN.pop().redis.aclose()


async def _fetch_and_keep(
    cache: HttpCache, path: bytes, headers: Headers, body: bytes, request: Headers = ()
) -> None:
    look = await cache.lookup(POLICY, "GET", path, b"", list(request))
    assert look.outcome is Outcome.MISS
    sent = [*headers, (b"content-length", b"%d" % len(body))]
    _, writer = cache.keep(look, path, 200, b"OK", sent)
    assert writer is not None

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    async for _ in writer.tee(chunks()):
        pass
    look.release()
    shared = cache.shared
    assert isinstance(shared, RedisTier)
    await shared.aclose()


async def _body(cache: HttpCache, look_path: bytes, request: Headers = ()) -> tuple[str, bytes]:
    look = await cache.lookup(POLICY, "GET", look_path, b"", list(request))
    answer = cache.serve(look)
    look.release()
    if answer is None:
        return look.outcome.value, b""
    data = b"".join([chunk async for chunk in answer.body])
    return look.outcome.value, data


def test_a_response_crosses_with_its_variants(redis_url: str) -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        a, b = _node(redis_url), _node(redis_url)
        vary = [(b"cache-control", b"max-age=60"), (b"vary", b"accept-language")]
        await _fetch_and_keep(a, b"/v", vary, b"bonjour", [(b"accept-language", b"fr")])
        await _fetch_and_keep(a, b"/v", vary, b"hello", [(b"accept-language", b"en")])
        found = [
            await _body(b, b"/v", [(b"accept-language", b"en")]),
            await _body(b, b"/v", [(b"accept-language", b"fr")]),
            await _body(b, b"/v", [(b"accept-language", b"de")]),
        ]
        await _close_all()
        return found

    assert asyncio.run(scenario()) == [("hit", b"hello"), ("hit", b"bonjour"), ("miss", b"")]


def test_large_objects_stay_local_and_redis_keeps_the_freshness_lifetime(
    redis_url: str,
) -> None:
    async def scenario() -> tuple[str, float]:
        a = _node(redis_url, max_object_bytes=10)
        b = _node(redis_url)
        fresh = [(b"cache-control", b"max-age=100")]
        await _fetch_and_keep(a, b"/big", fresh, b"x" * 11)
        await _fetch_and_keep(a, b"/small", fresh, b"x" * 10)
        big, _ = await _body(b, b"/big")
        redis = OPEN[0].redis
        keys = await redis.keys("test:cache:obj:*")
        ttl = await redis.pttl(keys[0])
        await _close_all()
        return big, ttl / 1000

    big, ttl = asyncio.run(scenario())
    assert big == "miss"
    assert 90 < ttl <= 100


def test_redis_gone_is_a_miss_not_an_error(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> tuple[str, str]:
        cache = _node("redis://127.0.0.1:9/0")  # nothing listens there
        fresh = [(b"cache-control", b"max-age=60")]
        await _fetch_and_keep(cache, b"/here", fresh, b"kept locally")
        outcome, body = await _body(cache, b"/here")
        missing, _ = await _body(cache, b"/elsewhere")
        await _close_all()
        return f"{outcome}:{body.decode()}", missing

    assert asyncio.run(scenario()) == ("hit:kept locally", "miss")


def test_an_answer_too_large_to_keep_lets_the_other_nodes_fetch_at_once(redis_url: str) -> None:
    async def scenario() -> tuple[bool, bool]:
        a = _node(redis_url, memory_bytes=4096, wait_seconds=30)
        b = _node(redis_url, wait_seconds=30)
        first = await a.lookup(POLICY, "GET", b"/huge", b"", [])
        fresh = [(b"cache-control", b"max-age=60"), (b"content-length", b"100000")]
        _, writer = a.keep(first, b"/huge", 200, b"OK", fresh)
        first.release()
        shared = a.shared
        assert isinstance(shared, RedisTier)
        await shared.aclose()
        # b asks while nobody fetches any more: it fetches itself, with the claim.
        second = await asyncio.wait_for(b.lookup(POLICY, "GET", b"/huge", b"", []), 5)
        claimed = second.claim is not None
        second.release()
        assert isinstance(b.shared, RedisTier)
        await b.shared.aclose()
        await _close_all()
        return writer is None, claimed

    assert asyncio.run(scenario()) == (True, True)
