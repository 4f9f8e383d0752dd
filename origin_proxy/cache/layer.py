"""The cache as a request's journey uses it: look up, serve, judge the origin's answer, keep.

A thin shell over the pure rules of `policy` and the state of `store` and `collapse`; the only
clock read is the injected `clock` (epoch seconds). The journey's part, in order:

1. `lookup(...)` after viewer-request. `serve(lookup)` gives the stored response when it may
   answer (HIT, or STALE: X-Cache Hit); STALE with `lookup.refresh` also wants a background
   refresh, which goes on with `refresh_of(lookup)`. GATEWAY_TIMEOUT: answer 504
   (only-if-cached). Otherwise go to the origin with `lookup.forward_headers`.
2. When the origin answers: `on_origin_answer(lookup, status, headers)` says what comes next
   (`Next`): the stored response freshened by a 304 or a HEAD's 200 (RefreshHit), a stale one
   standing in for a 5xx (Hit), ask again without this cache's validators
   (`without_validators`), or go on with the origin's answer. When the origin cannot be
   reached at all: `stale_on_error(lookup)`.
3. After origin-response: `keep(...)` gives the headers to send on and a `StoreWriter` (or
   None) to stream the body through (`writer.tee(body)`); an unsafe request invalidates there.
4. Always, when done with a lookup: `lookup.release()` (a no-op once a writer or a 304 took
   the flight over), so requests collapsed onto this one never wait for nothing.

The steps are also callable one by one (`validated`, `freshened_by_head`, `store_response`,
`invalidate_after`).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from origin_proxy.cache.collapse import Collapser, Flight
from origin_proxy.cache.directives import combined, parse_age
from origin_proxy.cache.policy import (
    Action,
    CacheKey,
    CachePolicy,
    RequestDirectives,
    Storable,
    answer_conditions,
    assess_response,
    cache_key,
    compute_freshness,
    conditional_headers,
    decide,
    invalidated_paths,
    normalize_request_headers,
    parse_request_directives,
    stored_range,
    update_from_304,
    usable_on_error,
    with_age,
)
from origin_proxy.cache.store import CacheStats, CacheStore, Entry, StoreWriter
from origin_proxy.cache.tier import Claim, SharedTier
from origin_proxy.fields import if_range_holds, parse_byte_range
from origin_proxy.message import Headers, OriginResponse

__all__ = ["HttpCache", "Lookup", "Next", "Outcome", "Verdict"]

# RFC 9110 §15.4.5: what a 304 carries of the stored response's fields.
_NOT_MODIFIED_FIELDS: Final = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary",
     b"last-modified"}
)  # fmt: skip
# RFC 5861 §4's errors: the origin answers, but cannot serve the object now.
_ORIGIN_ERRORS: Final = frozenset({500, 502, 503, 504})
_REASONS: Final = {
    200: b"OK",
    206: b"Partial Content",
    304: b"Not Modified",
    412: b"Precondition Failed",
    416: b"Range Not Satisfiable",
}


class Outcome(enum.Enum):
    HIT = "hit"  # serve the stored response
    STALE = "stale"  # serve it stale (max-stale, stale-while-revalidate)
    REVALIDATE = "revalidate"  # ask the origin; a 304 keeps the stored response
    MISS = "miss"  # nothing stored: fetch
    PASS = "pass"  # not a request for the cache (method, no-store, caching disabled)
    GATEWAY_TIMEOUT = "gateway-timeout"  # only-if-cached and nothing usable (RFC 9111 §5.2.1.7)


class Next(enum.Enum):
    """What follows an origin's answer to a lookup's request (`HttpCache.on_origin_answer`)."""

    GO_ON = "go-on"  # the origin's answer goes on: origin-response, then `keep`
    REFRESHED = "refreshed"  # answer with the stored response, freshened (X-Cache: RefreshHit)
    STALE = "stale"  # answer with a stale stored response instead of the origin's error (Hit)
    REFETCH = "refetch"  # the 304 was for another representation: ask again without validators


@dataclass(frozen=True, slots=True)
class Verdict:
    """`next`, and for REFRESHED and STALE the stored `response` to answer with."""

    next: Next
    response: OriginResponse | None = None


_GO_ON: Final = Verdict(Next.GO_ON)
_REFETCH: Final = Verdict(Next.REFETCH)


@dataclass(slots=True, eq=False)
class Lookup:
    """One request's dealings with the cache.

    `request_headers` are the viewer's, normalised by the policy (Accept-Encoding);
    `forward_headers` are what to send to the origin: the same, plus this cache's validators
    when `validating` (on a PASS, the viewer's own headers untouched). `flight` is set when
    this request fetches on behalf of others waiting for the same key; `refresh` when a STALE
    answer should be refreshed in the background by this request (it then owns the flight).
    """

    outcome: Outcome
    policy: CachePolicy
    method: str
    key: CacheKey | None
    request_headers: Headers
    forward_headers: Headers
    directives: RequestDirectives
    entry: Entry | None = None
    age_seconds: float = 0.0
    validating: bool = False
    refresh: bool = False
    flight: Flight | None = None
    request_time: float = 0.0
    # The shared tier's claim on this key (every node's misses wait for this fetch).
    claim: Claim | None = None
    tier: SharedTier | None = None

    def release(self) -> None:
        """Let requests waiting on this one go (their own way). Idempotent."""
        if self.flight is not None:
            self.flight.release(False)
        if self.claim is not None and self.tier is not None:
            claim, self.claim = self.claim, None
            self.tier.release(claim)


class HttpCache:
    """The cache of one edge: a store, request collapsing and a clock (epoch seconds).
    `shared`: a second level several edges share, asked on a local miss (see `tier`)."""

    def __init__(
        self,
        store: CacheStore,
        *,
        collapser: Collapser | None = None,
        clock: Callable[[], float] = time.time,
        shared: SharedTier | None = None,
    ) -> None:
        self.store = store
        self.collapser = collapser
        self.clock = clock
        self.shared = shared

    # -- 1. lookup ---------------------------------------------------------------------------

    async def lookup(
        self,
        policy: CachePolicy,
        method: str,
        path: bytes,
        query: bytes,
        headers: Headers,
        variant: bytes = b"",
    ) -> Lookup:
        """What to do for a viewer request (after viewer-request, before origin-request).
        `variant`: what else decides the answer, in the key (see `cache_key`)."""
        normalized = normalize_request_headers(policy, headers)
        directives = parse_request_directives(policy, normalized)
        if method not in ("GET", "HEAD") or not policy.enabled or directives.no_store:
            return Lookup(Outcome.PASS, policy, method, None, normalized, headers, directives)
        key = cache_key(policy, path, query, normalized, variant)
        found = self._consult(policy, method, key, normalized, directives)
        collapser = self.collapser
        if collapser is None or method != "GET":
            return self._count(found)
        if found.outcome is Outcome.STALE:
            if found.refresh:
                found.flight = collapser.lead(key)
                found.refresh = found.flight is not None  # somebody is refreshing already
            return self._count(found)
        if found.outcome not in (Outcome.MISS, Outcome.REVALIDATE):
            return self._count(found)
        flight = await collapser.join(key)
        if flight is not None:
            found.flight = flight
            if self.shared is not None and found.outcome is Outcome.MISS:
                found = await self._from_shared(self.shared, found)
            return self._count(found)
        # Another request fetched this key meanwhile: its answer may be stored now.
        self.store.stats.collapsed += 1
        again = self._consult(policy, method, key, normalized, directives)
        if again.outcome is Outcome.STALE:
            again.refresh = False
        elif again.outcome is Outcome.MISS and self.shared is not None:
            # Not kept here (no room, or the leader gave up): the shared tier may have it.
            again = await self._from_shared(self.shared, again, lead=False)
        return self._count(again)

    async def _from_shared(self, tier: SharedTier, look: Lookup, *, lead: bool = True) -> Lookup:
        """A local miss this request leads: the shared tier's copy (kept locally too, and
        judged as a stored response), or its claim to fetch for every node."""
        assert look.key is not None
        found = await tier.find(look.key, look.request_headers, lead=lead)
        if found.entry is None:
            look.claim = found.claim
            look.tier = tier
            return look
        shared = found.entry
        self.store.stats.shared_hits += 1
        kept = self.store.store(
            shared.key, shared.status, shared.reason,
            Storable(shared.freshness, shared.headers, shared.vary),
            look.request_headers, shared.body or b"",
        )  # fmt: skip
        if look.flight is not None:
            look.flight.release(kept is not None)  # local followers find it stored
            look.flight = None
        again = self._judge(
            look.policy, look.method, look.key, look.request_headers, look.directives,
            shared if kept is None else kept,
        )  # fmt: skip
        again.refresh = False
        return again

    def _consult(
        self,
        policy: CachePolicy,
        method: str,
        key: CacheKey,
        headers: Headers,
        directives: RequestDirectives,
    ) -> Lookup:
        entry = self.store.select(key, headers)
        return self._judge(policy, method, key, headers, directives, entry)

    def _judge(
        self,
        policy: CachePolicy,
        method: str,
        key: CacheKey,
        headers: Headers,
        directives: RequestDirectives,
        entry: Entry | None,
    ) -> Lookup:
        now = self.clock()
        if entry is not None and entry.status == 206 and _part_for(headers, entry) is None:
            entry = None  # a stored part answers only Range requests inside it
        look = Lookup(Outcome.MISS, policy, method, key, headers, headers, directives)
        look.request_time = now
        if entry is None:
            if directives.only_if_cached:
                look.outcome = Outcome.GATEWAY_TIMEOUT
            return look
        look.entry = entry
        decision = decide(entry.freshness, directives, now)
        look.age_seconds = decision.age
        if decision.action is Action.FRESH:
            look.outcome = Outcome.HIT
            return look
        if decision.action in (Action.STALE, Action.STALE_WHILE_REVALIDATE):
            look.outcome = Outcome.STALE
            if decision.action is Action.STALE_WHILE_REVALIDATE and not directives.only_if_cached:
                look.refresh = True
                self._add_validators(look, entry)
            return look
        if directives.only_if_cached:
            look.outcome = Outcome.GATEWAY_TIMEOUT
            return look
        look.outcome = Outcome.REVALIDATE
        self._add_validators(look, entry)
        return look

    @staticmethod
    def _add_validators(look: Lookup, entry: Entry) -> None:
        conditional = conditional_headers(look.request_headers, entry.headers)
        if conditional is not None:
            look.forward_headers = conditional
            look.validating = True

    def _count(self, look: Lookup) -> Lookup:
        stats = self.store.stats
        if look.outcome is Outcome.HIT:
            stats.hits += 1
        elif look.outcome is Outcome.STALE:
            stats.hits += 1
            stats.stale_hits += 1
        elif look.outcome in (Outcome.MISS, Outcome.REVALIDATE):
            stats.misses += 1
        return look

    # -- serving -----------------------------------------------------------------------------

    def serve(self, lookup: Lookup) -> OriginResponse | None:
        """The response for a HIT or STALE lookup: with `Age`, answering the viewer's own
        conditions (304/412) and a single Range (206/416). None for any other lookup, or when
        the stored body has gone meanwhile (then fetch as on a miss)."""
        if lookup.entry is None or lookup.outcome not in (Outcome.HIT, Outcome.STALE):
            return None
        return self._respond(lookup.entry, lookup.method, lookup.request_headers)

    def refresh_of(self, lookup: Lookup) -> Lookup:
        """For a STALE lookup with `refresh`: the lookup its background refresh goes on with, a
        conditional GET that takes the flight over (the others keep being served stale)."""
        flight, lookup.flight = lookup.flight, None
        return Lookup(
            Outcome.REVALIDATE, lookup.policy, "GET", lookup.key, lookup.request_headers,
            lookup.forward_headers, lookup.directives, entry=lookup.entry,
            age_seconds=lookup.age_seconds, validating=lookup.validating, flight=flight,
            request_time=self.clock(),
        )  # fmt: skip

    def _respond(
        self, entry: Entry, method: str, request_headers: Headers
    ) -> OriginResponse | None:
        now = self.clock()
        age = (b"age", entry.freshness.age_header(now))
        verdict = answer_conditions(request_headers, entry.status, entry.headers)
        if verdict == 304:
            kept = [(n, v) for n, v in entry.headers if n in _NOT_MODIFIED_FIELDS]
            kept.append(age)
            return OriginResponse(304, kept, reason=_REASONS[304])
        if verdict == 412:
            return OriginResponse(412, [(b"content-length", b"0")], reason=_REASONS[412])
        if entry.status == 206:
            return self._respond_part(entry, method, request_headers, age)
        headers = [(n, v) for n, v in entry.headers if n != b"content-length"]
        headers.append(age)
        status, reason = entry.status, entry.reason
        size = entry.body_bytes
        start, stop = 0, size
        if method == "GET" and status == 200:
            selected = _requested_range(request_headers, entry, size)
            if selected == "unsatisfiable":
                headers.append((b"content-range", b"bytes */%d" % size))
                headers.append((b"content-length", b"0"))
                return OriginResponse(416, headers, reason=_REASONS[416])
            if selected is not None:
                start, stop = selected
                status, reason = 206, _REASONS[206]
                headers.append((b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, size)))
        if status != 204 and not 100 <= status < 200 and status != 304:
            headers.append((b"content-length", b"%d" % (stop - start)))
        if method == "HEAD" or stop == start:
            return OriginResponse(status, headers, reason=reason)
        opened = self.store.open_body(entry, start, stop)
        if opened is None:
            return None
        body, close = opened
        return OriginResponse(status, headers, body, reason, close)

    def _respond_part(
        self, entry: Entry, method: str, request_headers: Headers, age: tuple[bytes, bytes]
    ) -> OriginResponse | None:
        # A stored 206 (RFC 9111 §3.3): the requested range, cut from the stored part.
        part = _part_for(request_headers, entry)
        if part is None:
            return None
        start, stop, complete, offset = part
        headers = [
            (n, v) for n, v in entry.headers if n not in (b"content-length", b"content-range")
        ]
        headers.append(age)
        headers.append((b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, complete)))
        headers.append((b"content-length", b"%d" % (stop - start)))
        if method == "HEAD":
            return OriginResponse(206, headers, reason=_REASONS[206])
        opened = self.store.open_body(entry, start - offset, stop - offset)
        if opened is None:
            return None
        body, close = opened
        return OriginResponse(206, headers, body, _REASONS[206], close)

    # -- 2. the origin's answer --------------------------------------------------------------

    def on_origin_answer(self, lookup: Lookup, status: int, headers: Headers) -> Verdict:
        """What follows the origin's answer (its status and headers) to `lookup`'s request: a
        304 to this cache's validators freshens the stored response (RFC 9111 §4.3.3), or asks
        for the response whole when it cannot; a HEAD's 200 freshens a stored GET when they
        agree (§4.3.5); a 5xx lets a stale stored response stand in where allowed (RFC 5861
        §4). Otherwise the origin's answer goes on."""
        if lookup.validating and status == 304:
            refreshed = self.validated(lookup, headers)
            return _REFETCH if refreshed is None else Verdict(Next.REFRESHED, refreshed)
        if lookup.entry is None:
            return _GO_ON
        if lookup.method == "HEAD" and status == 200:
            refreshed = self.freshened_by_head(lookup, headers)
            return _GO_ON if refreshed is None else Verdict(Next.REFRESHED, refreshed)
        if status in _ORIGIN_ERRORS:
            stale = self.stale_on_error(lookup)
            return _GO_ON if stale is None else Verdict(Next.STALE, stale)
        return _GO_ON

    def validated(
        self, lookup: Lookup, not_modified_headers: Headers, response_time: float | None = None
    ) -> OriginResponse | None:
        """The origin answered this cache's validators with 304 (RFC 9111 §4.3.3): freshen the
        stored response and answer from it. None when that is impossible (it was removed, or the
        304 names another representation): then fetch again with `lookup.request_headers`."""
        entry = lookup.entry
        if entry is None or not lookup.validating:
            lookup.release()
            return None
        now = self.clock() if response_time is None else response_time
        new_tag = combined(not_modified_headers, b"etag")
        old_tag = combined(entry.headers, b"etag")
        if new_tag is not None and old_tag is not None and new_tag.strip() != old_tag.strip():
            # §4.3.4: a 304 for another representation does not update this one.
            self.store.remove(entry)
            lookup.release()
            return None
        fresh = self._freshen(lookup, entry, not_modified_headers, now)
        if fresh is None:
            lookup.release()
            return None
        if lookup.flight is not None:
            lookup.flight.release(True)
            lookup.flight = None
        return self._respond(fresh, lookup.method, lookup.request_headers)

    def _freshen(
        self, lookup: Lookup, entry: Entry, new_headers: Headers, now: float
    ) -> Entry | None:
        """Update a stored response with the fields of a 304 or a HEAD's 200 (§3.2, §4.3.4,
        §4.3.5) and its freshness from them; None when it is no longer stored."""
        headers = update_from_304(entry.headers, new_headers, now)
        freshness = compute_freshness(
            lookup.policy, entry.status, headers, lookup.request_time, now,
            age=parse_age(new_headers),
        )  # fmt: skip
        fresh = self.store.replace(entry, headers, freshness)
        if fresh is not None:
            lookup.entry = fresh
            self.store.stats.refresh_hits += 1
        return fresh

    def freshened_by_head(
        self, lookup: Lookup, head_headers: Headers, response_time: float | None = None
    ) -> OriginResponse | None:
        """A HEAD went to the origin for a stored GET and got 200 (RFC 9111 §4.3.5): when the
        HEAD's validators and Content-Length agree with the stored response, its fields update
        it as a 304's would, and the answer comes from it; otherwise the stored response can
        no longer be trusted and is removed. None: answer with the origin's HEAD response."""
        entry = lookup.entry
        if entry is None or lookup.method != "HEAD" or entry.status != 200:
            return None
        now = self.clock() if response_time is None else response_time
        if not _head_matches(entry, head_headers):
            self.store.remove(entry)
            return None
        fresh = self._freshen(lookup, entry, head_headers, now)
        if fresh is None:
            return None
        return self._respond(fresh, "HEAD", lookup.request_headers)

    def stale_on_error(self, lookup: Lookup) -> OriginResponse | None:
        """A stale stored response to send instead of an origin error (5xx, unreachable,
        timeout) when the policy or stale-if-error allows it (RFC 5861 §4), else None."""
        entry = lookup.entry
        lookup.release()
        if entry is None or not usable_on_error(
            entry.freshness,
            lookup.directives,
            self.clock(),
            unbounded=lookup.policy.serve_stale_on_error,
        ):
            return None
        self.store.stats.stale_hits += 1
        return self._respond(entry, lookup.method, lookup.request_headers)

    # -- 3. keeping -------------------------------------------------------------------------

    def keep(
        self, lookup: Lookup, path: bytes, status: int, reason: bytes, headers: Headers
    ) -> tuple[Headers, StoreWriter | None]:
        """After origin-response, what becomes of the answer: the headers it goes on with
        (without the origin's Set-Cookie where the policy forwards no cookie; with the Age
        this cache gives it when stored) and the writer to stream its body into the store
        (None: not stored). An unsafe request that passed the cache invalidates `path` and
        the places its answer names (§4.4)."""
        if lookup.policy.strips_set_cookie:
            # CloudFront, forwarding no cookie, removes the origin's Set-Cookie.
            headers = [(name, value) for name, value in headers if name != b"set-cookie"]
        if lookup.outcome is Outcome.PASS:
            self.invalidate_after(lookup.method, status, path, None, headers)
            return headers, None
        writer = self.store_response(lookup, status, reason, headers)
        if writer is not None:
            headers = with_age(headers, writer.initial_age)
        return headers, writer

    def store_response(
        self,
        lookup: Lookup,
        status: int,
        reason: bytes,
        response_headers: Headers,
        response_time: float | None = None,
    ) -> StoreWriter | None:
        """A writer that stores the origin's answer while it streams, or None when it is not
        to be stored. Either way the lookup's flight is released when the outcome is known."""
        if lookup.key is None:
            lookup.release()
            return None
        now = self.clock() if response_time is None else response_time
        storable = assess_response(
            lookup.policy, lookup.method, status, lookup.request_headers, response_headers,
            lookup.request_time, now,
        )  # fmt: skip
        if isinstance(storable, str):
            lookup.release()
            return None
        length = _content_length(response_headers)
        # The writer takes the flight over: waiters go when the entry is visible (or not kept).
        flight, lookup.flight = lookup.flight, None
        on_done: Callable[[bool], None] | None = None if flight is None else flight.release
        tier = self.shared
        begun: list[StoreWriter] = []  # the writer, once `begin` returned it
        if tier is not None:
            claim, lookup.claim = lookup.claim, None
            on_done = _sharing(tier, claim, flight, begun)
        writer = self.store.begin(
            lookup.key, status, reason, storable, lookup.request_headers,
            content_length=length, on_done=on_done,
        )  # fmt: skip
        if writer is not None:
            begun.append(writer)
        return writer

    # -- invalidation ------------------------------------------------------------------------

    def invalidate_after(
        self,
        method: str,
        status: int,
        path: bytes,
        authority: bytes | None,
        response_headers: Headers,
    ) -> int:
        """RFC 9111 §4.4: after a successful unsafe request, drop what it may have changed."""
        targets = invalidated_paths(method, status, path, authority, response_headers)
        if self.shared is not None:
            for target in targets:
                self.shared.remove_path(target)
        return sum(self.store.remove_path(target) for target in targets)

    def invalidate(self, pattern: str | bytes) -> int:
        """A CloudFront invalidation: an exact path or a `prefix*`; the number removed."""
        return self.store.invalidate(pattern)

    async def invalidate_paths(self, patterns: Sequence[str | bytes]) -> int:
        """A CloudFront invalidation batch (exact paths and `prefix*`s) in one pass over the
        store, pausing between slices so the requests in flight keep being served; the number
        of stored responses removed. The shared tier goes first, so that this cache cannot
        fetch back from it what it has just dropped."""
        if self.shared is not None:
            await self.shared.invalidate(patterns)
        removed = 0
        for count in self.store.invalidation(patterns):
            removed += count
            await asyncio.sleep(0)
        return removed

    def stats(self) -> CacheStats:
        return self.store.snapshot()


def _sharing(
    tier: SharedTier, claim: Claim | None, flight: Flight | None, writer: list[StoreWriter]
) -> Callable[[bool], None]:
    """A writer's `on_done`: offer what was stored to the shared tier (or give the claim
    back), then let the local followers go. `writer` holds the writer once there is one."""

    def done(stored: bool) -> None:
        entry = writer[0].entry if writer else None
        if stored and entry is not None:
            tier.publish(entry, claim)
        elif claim is not None:
            tier.release(claim)
        if flight is not None:
            flight.release(stored)

    return done


def _head_matches(entry: Entry, head_headers: Headers) -> bool:
    # §4.3.5: every validator the HEAD response carries, and its Content-Length if any, must
    # be the stored response's.
    for name in (b"etag", b"last-modified"):
        received = combined(head_headers, name)
        if received is not None:
            stored = combined(entry.headers, name)
            if stored is None or stored.strip() != received.strip():
                return False
    length = _content_length(head_headers)
    return length is None or length == entry.body_bytes


def _content_length(headers: Headers) -> int | None:
    value = combined(headers, b"content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _part_for(request_headers: Headers, entry: Entry) -> tuple[int, int, int, int] | None:
    """The Range a request asks for as (start, stop, complete, first byte of the stored part),
    when a stored part holds it."""
    stored = stored_range(entry.headers)
    value = combined(request_headers, b"range")
    if stored is None or value is None or combined(request_headers, b"if-range") is not None:
        return None
    first, last, complete = stored
    if last - first != entry.body_bytes:
        return None
    wanted = parse_byte_range(value, complete)
    if wanted is None or wanted == "unsatisfiable":
        return None
    start, stop = wanted
    if first <= start and stop <= last:
        return start, stop, complete, first
    return None


def _requested_range(
    request_headers: Headers, entry: Entry, size: int
) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    value = combined(request_headers, b"range")
    if value is None:
        return None
    if_range = combined(request_headers, b"if-range")
    if if_range is not None and not if_range_holds(
        if_range, combined(entry.headers, b"etag"), combined(entry.headers, b"last-modified")
    ):
        return None  # RFC 9110 §13.1.5: the representation changed, send all of it
    return parse_byte_range(value, size)
