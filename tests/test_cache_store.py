"""The cache's state: the bounded store (memory and disk tiers, LRU, Vary, invalidation),
request collapsing, and the layer the pipeline drives, on a manual clock.

The origin here is an in-process coroutine that counts its calls and streams its body.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from origin_proxy.cache import (
    CacheKey,
    CachePolicy,
    CacheStore,
    Collapser,
    HttpCache,
    Outcome,
)
from origin_proxy.cache.policy import Storable, assess_response
from origin_proxy.directory import format_http_date
from origin_proxy.message import Headers, OriginResponse

T0 = 1_700_000_000.0
RFC = CachePolicy.rfc9111()


class ManualClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def h(*pairs: tuple[str, str]) -> Headers:
    return [(name.lower().encode(), value.encode()) for name, value in pairs]


def storable(*pairs: tuple[str, str], request: Headers | None = None) -> Storable:
    assessed = assess_response(RFC, "GET", 200, request or [], h(*pairs), T0, T0)
    assert isinstance(assessed, Storable), assessed
    return assessed


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


async def collect(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in body])


def put(store: CacheStore, path: str, body: bytes, *pairs: tuple[str, str]) -> None:
    fresh = storable(("Cache-Control", "max-age=600"), *pairs)
    assert store.store(CacheKey(path.encode()), 200, b"OK", fresh, [], body) is not None


# -- the memory tier ---------------------------------------------------------------------------


def test_memory_budget_holds_under_a_flood_of_distinct_keys() -> None:
    budget = 256 * 1024
    tracemalloc.start()
    try:
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        store = CacheStore(memory_bytes=budget)
        fresh = storable(("Cache-Control", "max-age=600"), ("Content-Type", "text/plain"))
        for number in range(20_000):
            body = os.urandom(number % 3000)
            store.store(CacheKey(b"/flood/%d" % number), 200, b"OK", fresh, [], body)
            assert store.snapshot().memory_bytes <= budget
        gc.collect()
        real = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    stats = store.snapshot()
    assert stats.entries > 50  # it does keep things
    assert stats.evictions == 20_000 - stats.entries
    # The accounting bounds what Python really allocated for the entries.
    assert real <= budget


def test_least_recently_used_goes_first() -> None:
    body = b"x" * 1000
    store = CacheStore(memory_bytes=3 * 2900)
    for path in ("/a", "/b", "/c"):
        put(store, path, body)
    assert store.select(CacheKey(b"/a"), []) is not None  # /a is now the most recent
    put(store, "/d", body)
    assert [p for p in ("/a", "/b", "/c", "/d") if store.select(CacheKey(p.encode()), [])] == [
        "/a",
        "/c",
        "/d",
    ]


def test_too_big_for_memory_without_disk_is_not_stored() -> None:
    store = CacheStore(memory_bytes=10_000, memory_object_max_bytes=1000)
    fresh = storable(("Cache-Control", "max-age=600"))
    assert store.begin(CacheKey(b"/big"), 200, b"OK", fresh, [], content_length=5000) is None
    writer = store.begin(CacheKey(b"/chunked"), 200, b"OK", fresh, [])
    assert writer is not None
    writer.write(b"y" * 2000)  # over the memory object limit, no disk tier: gives up
    assert writer.done
    assert writer.commit() is None
    assert store.snapshot().memory_bytes == 0


def test_entry_is_visible_only_when_the_body_is_complete() -> None:
    async def scenario() -> None:
        store = CacheStore(memory_bytes=1 << 20)
        fresh = storable(("Cache-Control", "max-age=600"))
        writer = store.begin(CacheKey(b"/p"), 200, b"OK", fresh, [], content_length=6)
        assert writer is not None
        stream = writer.tee(chunks(b"abc", b"def"))
        assert await stream.__anext__() == b"abc"
        assert store.select(CacheKey(b"/p"), []) is None
        assert await stream.__anext__() == b"def"
        # Committed at the declared last byte, before the viewer's side even ends the stream.
        entry = store.select(CacheKey(b"/p"), [])
        assert entry is not None
        assert entry.body == b"abcdef"
        await stream.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("declared", "parts"),
    [
        pytest.param(10, (b"abc",), id="shorter-than-declared"),
        pytest.param(2, (b"abc",), id="longer-than-declared"),
    ],
)
def test_a_body_that_breaks_its_framing_is_not_stored(
    declared: int, parts: tuple[bytes, ...]
) -> None:
    async def scenario() -> None:
        store = CacheStore(memory_bytes=1 << 20)
        fresh = storable(("Cache-Control", "max-age=600"))
        writer = store.begin(CacheKey(b"/p"), 200, b"OK", fresh, [], content_length=declared)
        assert writer is not None
        assert await collect(writer.tee(chunks(*parts))) == b"".join(parts)
        assert store.select(CacheKey(b"/p"), []) is None
        assert store.snapshot().memory_bytes == 0

    asyncio.run(scenario())


def test_viewer_gone_mid_body_stores_nothing() -> None:
    async def scenario() -> None:
        store = CacheStore(memory_bytes=1 << 20)
        fresh = storable(("Cache-Control", "max-age=600"))
        writer = store.begin(CacheKey(b"/p"), 200, b"OK", fresh, [])
        assert writer is not None
        stream = writer.tee(chunks(b"abc", b"def"))
        await stream.__anext__()
        await stream.aclose()
        assert store.select(CacheKey(b"/p"), []) is None

    asyncio.run(scenario())


# -- the disk tier -----------------------------------------------------------------------------


def test_large_bodies_stream_to_disk_and_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = CacheStore(
            memory_bytes=64 * 1024,
            disk_directory=tmp_path,
            disk_bytes=1 << 20,
            memory_object_max_bytes=1024,
        )
        body = os.urandom(300_000)
        fresh = storable(("Cache-Control", "max-age=600"))
        writer = store.begin(CacheKey(b"/video"), 200, b"OK", fresh, [])
        assert writer is not None
        parts = [body[at : at + 70_000] for at in range(0, len(body), 70_000)]
        assert await collect(writer.tee(chunks(*parts))) == body
        entry = store.select(CacheKey(b"/video"), [])
        assert entry is not None
        assert entry.body is None
        assert entry.body_path is not None
        assert len(list(tmp_path.iterdir())) == 1
        opened = store.open_body(entry)
        assert opened is not None
        assert await collect(opened[0]) == body
        # A range of it, read from the file.
        opened = store.open_body(entry, 1000, 200_000)
        assert opened is not None
        assert await collect(opened[0]) == body[1000:200_000]
        stats = store.snapshot()
        assert (stats.disk_entries, stats.disk_bytes) == (1, 300_000)

    asyncio.run(scenario())


def test_disk_budget_evicts_least_recently_used_files(tmp_path: Path) -> None:
    store = CacheStore(
        memory_bytes=1 << 20,
        disk_directory=tmp_path,
        disk_bytes=10_000,
        memory_object_max_bytes=100,
    )
    for number in range(5):
        put(store, f"/f{number}", bytes([number]) * 3000)
        assert store.snapshot().disk_bytes <= 10_000
    kept = [n for n in range(5) if store.select(CacheKey(f"/f{n}".encode()), []) is not None]
    assert kept == [2, 3, 4]
    assert len(list(tmp_path.iterdir())) == 3  # evicted bodies leave the disk too
    assert store.clear() == 3
    assert list(tmp_path.iterdir()) == []


def test_orphaned_body_files_are_removed_but_live_ones_kept(tmp_path: Path) -> None:
    orphan = tmp_path / "body-999999999-1"  # no such process
    live = tmp_path / f"body-{os.getppid()}-1"  # the test runner's parent is alive
    other = tmp_path / "notes.txt"
    for path in (orphan, live, other):
        path.write_bytes(b"x")
    CacheStore(memory_bytes=1 << 20, disk_directory=tmp_path, disk_bytes=1 << 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_an_aborted_disk_body_leaves_no_file(tmp_path: Path) -> None:
    store = CacheStore(
        memory_bytes=1 << 20,
        disk_directory=tmp_path,
        disk_bytes=1 << 20,
        memory_object_max_bytes=10,
    )
    writer = store.begin(CacheKey(b"/x"), 200, b"OK", storable(("Cache-Control", "max-age=9")), [])
    assert writer is not None
    writer.write(b"z" * 100)
    assert len(list(tmp_path.iterdir())) == 1
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    assert store.snapshot().disk_bytes == 0


def test_an_evicted_body_that_is_being_read_still_reads_whole(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = CacheStore(
            memory_bytes=1 << 20,
            disk_directory=tmp_path,
            disk_bytes=5000,
            memory_object_max_bytes=10,
        )
        put(store, "/a", b"a" * 4000)
        entry = store.select(CacheKey(b"/a"), [])
        assert entry is not None
        opened = store.open_body(entry)
        assert opened is not None
        put(store, "/b", b"b" * 4000)  # evicts /a and deletes its file
        assert store.select(CacheKey(b"/a"), []) is None
        assert await collect(opened[0]) == b"a" * 4000
        assert store.open_body(entry) is None  # a new reader sees it gone

    asyncio.run(scenario())


# -- Vary and invalidation ---------------------------------------------------------------------


def test_vary_variants_live_side_by_side() -> None:
    store = CacheStore(memory_bytes=1 << 20)
    key = CacheKey(b"/v")
    for value, body in (("1", b"foo_1"), ("2", b"foo_2")):
        request = h(("Foo", value))
        fresh = storable(("Cache-Control", "max-age=60"), ("Vary", "Foo"), request=request)
        store.store(key, 200, b"OK", fresh, request, body)
    first = store.select(key, h(("Foo", "1")))
    second = store.select(key, h(("Foo", "2")))
    assert first is not None
    assert first.body == b"foo_1"
    assert second is not None
    assert second.body == b"foo_2"
    assert store.select(key, h(("Foo", "3"))) is None
    assert store.select(key, []) is None  # RFC 9111 §4.1: an absent field matches only absent


def test_variants_per_key_are_capped() -> None:
    store = CacheStore(memory_bytes=1 << 20, max_variants=2)
    key = CacheKey(b"/v")
    for value in ("1", "2", "3"):
        request = h(("Foo", value))
        fresh = storable(("Cache-Control", "max-age=60"), ("Vary", "Foo"), request=request)
        store.store(key, 200, b"OK", fresh, request, value.encode())
    assert [v for v in "123" if store.select(key, h(("Foo", v)))] == ["2", "3"]


def test_invalidation_by_path_and_wildcard_counts_what_it_removed() -> None:
    store = CacheStore(memory_bytes=1 << 24)
    put(store, "/images/a.png", b"a")
    put(store, "/images/deep/b.png", b"b")
    fresh = storable(("Cache-Control", "max-age=60"))
    store.store(CacheKey(b"/images/a.png", b"?size=2"), 200, b"OK", fresh, [], b"a2")
    put(store, "/css/site.css", b"c")
    assert store.invalidate("/nothing") == 0
    assert store.invalidate("/images/*") == 3
    assert store.select(CacheKey(b"/css/site.css"), []) is not None
    assert store.invalidate("/css/site.css") == 1
    assert store.snapshot().entries == 0
    assert store.snapshot().invalidated == 4


def test_wildcard_invalidation_over_many_entries() -> None:
    # How long it takes is measured by tests/benchmarks/admin_bench.py, not asserted here.
    store = CacheStore(memory_bytes=1 << 30)
    fresh = storable(("Cache-Control", "max-age=60"))
    for number in range(50_000):
        folder = "images" if number % 2 else "pages"
        store.store(CacheKey(f"/{folder}/{number}".encode()), 200, b"OK", fresh, [], b"x")
    removed = store.invalidate("/images/*")
    assert removed == 25_000
    assert store.snapshot().entries == 25_000
    assert store.select(CacheKey(b"/images/1"), []) is None
    assert store.select(CacheKey(b"/pages/2"), []) is not None


def _paths_store(paths: list[str]) -> CacheStore:
    store = CacheStore(memory_bytes=1 << 26)
    for path in paths:
        put(store, path, b"x")
    return store


@pytest.mark.parametrize(
    ("patterns", "left"),
    [
        pytest.param(["/a"], ["/a/b", "/ab", "/b"], id="exact-path-only"),
        pytest.param(["/a*"], ["/b"], id="prefix-takes-every-extension"),
        pytest.param(["/a/*", "/a/b*"], ["/a", "/ab", "/b"], id="covered-prefix-adds-nothing"),
        pytest.param(["/a/*", "/a/b"], ["/a", "/ab", "/b"], id="covered-exact-path"),
        pytest.param(["/a?x=1"], ["/a/b", "/ab", "/b"], id="query-names-the-path"),
        pytest.param(["/*"], [], id="everything"),
        pytest.param(["/c*", "/aa*", "/a/c*"], ["/a", "/a/b", "/ab", "/b"], id="no-match"),
        pytest.param(["/b", "/ab*", "/a/b"], ["/a"], id="mixed-batch"),
    ],
)
def test_a_batch_removes_what_each_of_its_paths_names(patterns: list[str], left: list[str]) -> None:
    stored = ["/a", "/a/b", "/ab", "/b"]
    store = _paths_store(stored)
    removed = sum(store.invalidation(patterns, slice_units=2))
    remaining = [p for p in stored if store.select(CacheKey(p.encode()), []) is not None]
    assert remaining == left
    assert removed == len(stored) - len(left) == store.snapshot().invalidated


def test_a_batch_gives_way_in_slices_and_spares_what_is_stored_meanwhile() -> None:
    store = _paths_store([f"/img/{n}" for n in range(100)])
    steps = store.invalidation(["/img/*", "/other"], slice_units=10)
    first = next(steps)
    # Between slices the store is live: a response stored now is newer than the invalidation.
    put(store, "/img/new", b"fresh")
    rest = list(steps)
    assert len(rest) >= 9  # 100 paths and 100 removals in slices of 10 units
    assert first + sum(rest) == 100
    assert store.select(CacheKey(b"/img/new"), []) is not None


def test_thousands_of_wildcards_cost_one_pass() -> None:
    store = _paths_store([f"/f/{n}.txt" for n in range(2_000)])
    patterns = [f"/f/{n}.*" for n in range(0, 2_000, 2)]
    # With a slice of one unit, every unit of work shows as one step: each stored path is
    # looked at once and each match removed once, whatever the number of wildcards.
    steps = list(store.invalidation(patterns, slice_units=1))
    assert sum(steps) == 1_000
    assert len(steps) <= 2_000 + 1_000 + 1


def test_the_layer_lets_other_tasks_run_between_slices() -> None:
    async def scenario() -> None:
        store = _paths_store([f"/img/{n}" for n in range(3_000)])
        cache = HttpCache(store, clock=ManualClock())
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        async with asyncio.TaskGroup() as group:
            task = group.create_task(ticker())
            removed = await cache.invalidate_paths([f"/img/{n}*" for n in range(3_000)])
            task.cancel()
        assert removed == 3_000
        assert ticks > 3  # the other task ran while the batch was under way

    asyncio.run(scenario())


# -- collapsing --------------------------------------------------------------------------------


class Origin:
    """Answers every fetch after `gate` opens, counting calls."""

    def __init__(self, headers: Headers, body: bytes = b"hello", status: int = 200) -> None:
        self.headers = headers
        self.body = body
        self.status = status
        self.calls = 0
        self.seen: list[Headers] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, method: str, headers: Headers) -> OriginResponse:
        self.calls += 1
        self.seen.append(headers)
        await self.gate.wait()
        length = [(b"content-length", b"%d" % len(self.body))] if self.status != 304 else []
        return OriginResponse(self.status, self.headers + length, chunks(self.body), b"")


async def through(
    cache: HttpCache,
    origin: Callable[[str, Headers], Awaitable[OriginResponse]],
    headers: Headers | None = None,
    *,
    method: str = "GET",
    path: bytes = b"/x",
    policy: CachePolicy = RFC,
) -> tuple[str, int, Headers, bytes]:
    """What the pipeline does, in miniature: (X-Cache kind, status, headers, body)."""
    look = await cache.lookup(policy, method, path, b"", headers or [])
    try:
        if look.outcome in (Outcome.HIT, Outcome.STALE):
            served = cache.serve(look)
            if served is not None:
                return "Hit", served.status, served.headers, await collect(served.body)
        if look.outcome is Outcome.GATEWAY_TIMEOUT:
            return "Error", 504, [], b""
        try:
            response = await origin(method, look.forward_headers)
        except ConnectionError:
            stale = cache.stale_on_error(look)
            if stale is not None:
                return "Hit", stale.status, stale.headers, await collect(stale.body)
            return "Error", 502, [], b""
        if look.validating and response.status == 304:
            served = cache.validated(look, response.headers)
            if served is not None:
                return "RefreshHit", served.status, served.headers, await collect(served.body)
        if response.status >= 500 and look.entry is not None:
            stale = cache.stale_on_error(look)
            if stale is not None:
                return "Hit", stale.status, stale.headers, await collect(stale.body)
        writer = cache.store_response(look, response.status, b"", response.headers)
        body = response.body if writer is None else writer.tee(response.body)
        return "Miss", response.status, response.headers, await collect(body)
    finally:
        look.release()


def test_fifty_concurrent_misses_make_one_origin_fetch() -> None:
    async def scenario() -> None:
        cache = HttpCache(CacheStore(memory_bytes=1 << 20), collapser=Collapser())
        origin = Origin(h(("Cache-Control", "max-age=60")))
        origin.gate.clear()
        requests = [asyncio.ensure_future(through(cache, origin)) for _ in range(50)]
        while cache.collapser is not None and cache.collapser.collapsed < 49:
            await asyncio.sleep(0)  # let every request reach the cache
        origin.gate.set()
        results = await asyncio.gather(*requests)
        assert origin.calls == 1
        assert sorted(kind for kind, *_ in results) == ["Hit"] * 49 + ["Miss"]
        assert {body for *_, body in results} == {b"hello"}
        assert cache.stats().collapsed == 49

    asyncio.run(scenario())


def test_an_unstorable_answer_releases_the_waiters_at_once() -> None:
    async def scenario() -> None:
        cache = HttpCache(CacheStore(memory_bytes=1 << 20), collapser=Collapser())
        origin = Origin(h(("Cache-Control", "no-store")))
        origin.gate.clear()
        requests = [asyncio.ensure_future(through(cache, origin)) for _ in range(10)]
        while cache.collapser is not None and cache.collapser.collapsed < 9:
            await asyncio.sleep(0)
        origin.gate.set()
        results = await asyncio.gather(*requests)
        # The leader's answer could not be shared: everyone fetched their own.
        assert origin.calls == 10
        assert [kind for kind, *_ in results] == ["Miss"] * 10
        assert cache.collapser is not None
        assert len(cache.collapser) == 0

    asyncio.run(scenario())


def test_waiting_for_a_silent_leader_is_bounded() -> None:
    async def scenario() -> None:
        clock = ManualClock(100.0)
        collapser = Collapser(wait_seconds=0.05, clock=clock)
        leader = await collapser.join("k")
        assert leader is not None
        started = time.perf_counter()
        assert await collapser.join("k") is None  # waited, gave up
        assert time.perf_counter() - started < 5
        assert collapser.lead("k") is None  # the flight is still young on the manual clock
        clock.now += 1.0
        replacement = collapser.lead("k")  # abandoned: a new leader takes over
        assert replacement is not None
        assert leader.released
        replacement.release(True)
        assert len(collapser) == 0

    asyncio.run(scenario())


# -- the layer, end to end on a manual clock -----------------------------------------------------


def new_cache(clock: ManualClock) -> HttpCache:
    return HttpCache(CacheStore(memory_bytes=1 << 20), collapser=Collapser(), clock=clock)


def header(headers: Headers, name: bytes) -> bytes | None:
    return next((value for key, value in headers if key == name), None)


def test_miss_then_hit_with_age_and_the_original_date() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        cache = new_cache(clock)
        date = format_http_date(int(T0))
        origin = Origin(h(("Cache-Control", "max-age=600"), ("Date", date.decode()), ("Age", "30")))
        assert (await through(cache, origin))[0] == "Miss"
        clock.now += 5
        kind, status, headers, body = await through(cache, origin)
        assert (kind, status, body) == ("Hit", 200, b"hello")
        assert header(headers, b"age") == b"35"  # RFC 9111 §4.2.3, §5.1
        assert header(headers, b"date") == date  # never rewritten
        assert header(headers, b"content-length") == b"5"
        assert origin.calls == 1
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)

    asyncio.run(scenario())


def test_stale_entry_is_revalidated_and_updated_by_a_304() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        cache = new_cache(clock)
        origin = Origin(h(("Cache-Control", "max-age=1"), ("ETag", '"v1"'), ("Test", "A")))
        await through(cache, origin)
        clock.now += 3
        origin.status = 304
        origin.headers = h(("Cache-Control", "max-age=3600"), ("ETag", '"v1"'), ("Test", "B"))
        kind, status, headers, body = await through(cache, origin)
        assert (kind, status, body) == ("RefreshHit", 200, b"hello")
        assert header(origin.seen[-1], b"if-none-match") == b'"v1"'
        assert header(headers, b"test") == b"B"  # §4.3.4: the 304's fields win
        clock.now += 10
        kind, status, headers, _ = await through(cache, origin)
        assert (kind, header(headers, b"test")) == ("Hit", b"B")  # and they were stored
        assert origin.calls == 2
        assert cache.stats().refresh_hits == 1

    asyncio.run(scenario())


def test_stale_if_error_serves_the_stored_response_when_the_origin_fails() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        cache = new_cache(clock)
        strict = replace(RFC, serve_stale_on_error=False)  # only stale-if-error's window
        origin = Origin(h(("Cache-Control", "max-age=1, stale-if-error=60"), ("ETag", '"v"')))
        await through(cache, origin, policy=strict)
        clock.now += 10
        origin.status, origin.headers = 503, []
        assert (await through(cache, origin, policy=strict))[:2] == ("Hit", 200)
        clock.now += 100  # past the stale-if-error window
        assert (await through(cache, origin, policy=strict))[:2] == ("Miss", 503)

        async def unreachable(method: str, headers: Headers) -> OriginResponse:
            raise ConnectionError

        assert (await through(cache, unreachable, policy=strict))[:2] == ("Error", 502)
        # CloudFront's way (the default): at any age, while it is stored.
        assert (await through(cache, unreachable))[:2] == ("Hit", 200)

    asyncio.run(scenario())


def test_stale_while_revalidate_serves_stale_and_hands_out_one_refresh() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        cache = new_cache(clock)
        origin = Origin(
            h(("Cache-Control", "max-age=1, stale-while-revalidate=60"), ("ETag", '"v"'))
        )
        await through(cache, origin)
        clock.now += 5
        first = await cache.lookup(RFC, "GET", b"/x", b"", [])
        second = await cache.lookup(RFC, "GET", b"/x", b"", [])
        assert (first.outcome, second.outcome) == (Outcome.STALE, Outcome.STALE)
        assert (first.refresh, second.refresh) == (True, False)  # one background refresh
        assert header(first.forward_headers, b"if-none-match") == b'"v"'
        # The background refresh, as the pipeline would run it: the origin says 304.
        origin.status = 304
        refreshed = await origin("GET", first.forward_headers)
        assert cache.validated(first, refreshed.headers) is not None
        first.release()
        second.release()
        again = await cache.lookup(RFC, "GET", b"/x", b"", [])
        assert again.outcome is Outcome.HIT

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("request_headers", "status", "body", "content_range"),
    [
        pytest.param((("Range", "bytes=0-1"),), 206, b"01", b"bytes 0-1/11", id="range"),
        pytest.param((("Range", "bytes=1-"),), 206, b"1234567890", b"bytes 1-10/11",
                     id="open-range"),
        pytest.param((("Range", "bytes=-1"),), 206, b"0", b"bytes 10-10/11", id="suffix-range"),
        pytest.param((("Range", "bytes=50-"),), 416, b"", b"bytes */11", id="unsatisfiable"),
        pytest.param((("Range", "bytes=0-1"), ("If-Range", '"old"')), 200, b"01234567890", None,
                     id="if-range-mismatch-sends-all"),
        pytest.param((("If-None-Match", '"e"'),), 304, b"", None, id="viewer-inm-304"),
        pytest.param((("If-Match", '"other"'),), 412, b"", None, id="viewer-if-match-412"),
    ],
)  # fmt: skip
def test_hits_answer_ranges_and_conditions(
    request_headers: tuple[tuple[str, str], ...],
    status: int,
    body: bytes,
    content_range: bytes | None,
) -> None:
    async def scenario() -> None:
        cache = new_cache(ManualClock())
        origin = Origin(h(("Cache-Control", "max-age=600"), ("ETag", '"e"')), b"01234567890")
        await through(cache, origin)
        kind, got_status, headers, got_body = await through(cache, origin, h(*request_headers))
        assert (kind, got_status, got_body) == ("Hit", status, body)
        assert header(headers, b"content-range") == content_range
        if status == 304:
            assert header(headers, b"etag") == b'"e"'  # RFC 9110 §15.4.5
        assert origin.calls == 1

    asyncio.run(scenario())


def test_head_is_answered_from_a_stored_get() -> None:
    async def scenario() -> None:
        cache = new_cache(ManualClock())
        origin = Origin(h(("Cache-Control", "max-age=600")), b"0123")
        await through(cache, origin)
        kind, status, headers, body = await through(cache, origin, method="HEAD")
        assert (kind, status, body, header(headers, b"content-length")) == ("Hit", 200, b"", b"4")

    asyncio.run(scenario())


def test_only_if_cached_without_a_stored_response_is_504() -> None:
    async def scenario() -> None:
        cache = new_cache(ManualClock())
        origin = Origin(h(("Cache-Control", "max-age=600")))
        only = h(("Cache-Control", "only-if-cached"))
        assert (await through(cache, origin, only))[:2] == ("Error", 504)
        assert origin.calls == 0

    asyncio.run(scenario())


def test_unsafe_request_invalidates_the_uri_and_its_location() -> None:
    async def scenario() -> None:
        cache = new_cache(ManualClock())
        origin = Origin(h(("Cache-Control", "max-age=600")))
        await through(cache, origin, path=b"/doc")
        await through(cache, origin, path=b"/other")
        look = await cache.lookup(RFC, "POST", b"/doc", b"", [])
        assert look.outcome is Outcome.PASS
        removed = cache.invalidate_after("POST", 200, b"/doc", b"site", h(("Location", "/other")))
        assert removed == 2
        assert (await through(cache, origin, path=b"/doc"))[0] == "Miss"

    asyncio.run(scenario())


def test_compressed_policy_keys_and_forwards_one_coding() -> None:
    async def scenario() -> None:
        cache = new_cache(ManualClock())
        policy = CachePolicy.caching_optimized()
        origin = Origin(h(("Cache-Control", "max-age=600"), ("Vary", "Accept-Encoding")))
        await through(cache, origin, h(("Accept-Encoding", "gzip, br")), policy=policy)
        assert header(origin.seen[-1], b"accept-encoding") == b"br"
        kind = (await through(cache, origin, h(("Accept-Encoding", "br")), policy=policy))[0]
        assert kind == "Hit"
        kind = (await through(cache, origin, h(("Accept-Encoding", "gzip")), policy=policy))[0]
        assert kind == "Miss"

    asyncio.run(scenario())


def test_a_stored_part_never_replaces_the_whole_response() -> None:
    store = CacheStore(memory_bytes=1 << 20)
    key = CacheKey(b"/whole")
    put(store, "/whole", b"0123456789")
    part = storable(("Cache-Control", "max-age=600"), ("Content-Range", "bytes 0-1/10"))
    assert store.store(key, 206, b"Partial Content", part, [], b"01") is None
    kept = store.select(key, [])
    assert kept is not None
    assert (kept.status, kept.body) == (200, b"0123456789")
