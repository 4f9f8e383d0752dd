"""RFC 9111 (HTTP caching) and CloudFront cache policies as functions over headers and times.

Pure: no I/O and no clock. Times are epoch seconds (floats) passed in by the caller: the time
the request went to the origin (`request_time`), the time its answer arrived (`response_time`)
and `now`. The cache is a *shared* cache (RFC 9111 §1), as a CDN is.

The steps, in the order a request meets them:
- `cache_key` / `normalize_request_headers`: the primary key from a `CachePolicy` (§2, and
  CloudFront's cache key settings), with Accept-Encoding reduced to br / gzip / identity.
- `parse_request_directives`: what the viewer asked for (§5.2.1).
- `decide`: whether a stored response can be used as it is, served stale, or must be validated
  (§4, §4.2.4, RFC 5861).
- `conditional_headers` / `update_from_304`: validation (§4.3.1, §4.3.4, §3.2).
- `assess_response`: whether an origin's answer can be stored, and its freshness (§3, §4.2.1 to
  §4.2.3), with CloudFront's TTL clamps applied.
- `invalidated_paths`: what an unsafe request invalidates (§4.4).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple
from urllib.parse import urlsplit

from origin_proxy.cache.directives import (
    Directives,
    combined,
    delta_seconds,
    field_names,
    parse_age,
    parse_cache_control,
    parse_cdn_cache_control,
    parse_surrogate_control,
    split_list,
)
from origin_proxy.fields import (
    CONDITION_FIELDS,
    PRECONDITION_FIELDS,
    condition_fields,
    evaluate_preconditions,
    format_http_date,
    parse_content_range,
    parse_http_date,
)
from origin_proxy.headers import HOP_BY_HOP
from origin_proxy.message import Headers

__all__ = [
    "HEURISTIC_STATUSES",
    "Action",
    "CacheKey",
    "CachePolicy",
    "Decision",
    "Freshness",
    "RequestDirectives",
    "Storable",
    "accept_encoding_token",
    "announce_surrogate",
    "answer_conditions",
    "assess_response",
    "cache_key",
    "compute_freshness",
    "conditional_headers",
    "decide",
    "explicit_lifetime",
    "invalidated_paths",
    "normalize_request_headers",
    "parse_request_directives",
    "response_directives",
    "selecting_values",
    "stored_range",
    "update_from_304",
    "usable_on_error",
    "vary_names",
    "with_age",
    "without_validators",
]

# RFC 9110 §15.1: the status codes that are heuristically cacheable.
HEURISTIC_STATUSES: Final = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})

# The validators this cache adds to a revalidation (§4.3.1).
_VALIDATORS: Final = frozenset({b"if-none-match", b"if-modified-since"})

# RFC 9110 §9.2.1: the safe methods; any other method invalidates (RFC 9111 §4.4).
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# Status codes this cache understands (RFC 9111 §3, must-understand): all final codes that it
# stores as a whole. 206 (partial content) and 304 are never stored as an entry here.
_UNDERSTOOD: Final = frozenset(
    {200, 203, 204, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 500, 501, 502,
     503, 504}
)  # fmt: skip

# RFC 9111 §3.2: fields a 304 must not replace in the stored response: Content-Length, and the
# fields the stored bytes depend on (§3.2 allows keeping those "to assure integrity"): their
# coding, the part they are, their digest. A 304 cannot change the bytes held, so nor what
# describes them. Age is recomputed from the new exchange.
_NOT_UPDATED: Final = frozenset(
    {b"content-length", b"content-encoding", b"content-range", b"content-md5",
     b"transfer-encoding", b"age"}
)  # fmt: skip

# Header values compared as case-insensitive, order-free lists when selecting a variant
# (RFC 9111 §4.1 allows normalising by the field's own syntax).
_UNORDERED_FIELDS: Final = frozenset({b"accept-encoding", b"accept-language", b"accept-charset"})

KeyMode = Literal["none", "all", "list", "all_except"]


# -- the policy ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """A CloudFront-style cache policy: TTLs and what goes into the cache key.

    TTLs are in seconds. `default_ttl` is used when the origin gives no max-age, s-maxage or
    Expires; None means "no default: RFC 9111 heuristic freshness" (10 % of the time since
    Last-Modified, at most `heuristic_max_seconds`, for heuristically cacheable statuses).
    `min_ttl` and `max_ttl` clamp whatever lifetime the origin gave (None: no upper bound).
    As in CloudFront, a `min_ttl` above 0 also overrides the origin's `no-store`, `no-cache`
    and `private`. A `max_ttl` of 0 disables caching.

    Key settings: `query_strings` and `cookies` are "none", "all", "list" (only the names in
    `query_string_names` / `cookie_names`) or "all_except" (all but those); `headers` names the
    request headers whose values are part of the key; `compress` puts the viewer's
    Accept-Encoding, reduced to br / gzip / identity, in the key (CloudFront's
    EnableAcceptEncodingBrotli/Gzip).

    Targeted fields: with `honor_cdn_cache_control`, a valid CDN-Cache-Control (RFC 9213)
    replaces Cache-Control; else, with a `surrogate_device` name, the Surrogate-Control
    directives meant for it (untargeted or `;name`) do, and requests to the origin announce
    the device in Surrogate-Capability (W3C Edge Architecture 1.0).

    `serve_stale_on_error`: as CloudFront does, an expired stored response stands in for an
    origin that fails (unreachable, timeout, 500/502/503/504) unless the response forbids serving
    it stale (must-revalidate, proxy-revalidate, s-maxage, no-cache). Without it, only a
    stale-if-error window allows that (RFC 5861 §4).

    Cookies: with `keyed_cookies_only` (CloudFront's policies), the cookies outside the key
    never reach the origin, and when no cookie is keyed the origin's `Set-Cookie` never reaches
    the cache or the viewer (CloudFront's "don't forward cookies"). Either way, a response that
    still carries `Set-Cookie` is stored only with `store_set_cookie` (CloudFront, forwarding
    cookies, stores it and replays it on every hit to viewers with the same keyed cookies): by
    default one viewer's cookie is never handed to another.
    """

    name: str = "custom"
    min_ttl: float = 0.0
    default_ttl: float | None = 86400.0
    max_ttl: float | None = 31536000.0
    query_strings: KeyMode = "none"
    query_string_names: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    cookies: KeyMode = "none"
    cookie_names: tuple[str, ...] = ()
    compress: bool = False
    honor_request_directives: bool = True
    honor_cdn_cache_control: bool = True
    surrogate_device: str | None = "edge"
    serve_stale_on_error: bool = True
    keyed_cookies_only: bool = False
    store_set_cookie: bool = False
    heuristic_fraction: float = 0.1
    heuristic_max_seconds: float = 86400.0

    def __post_init__(self) -> None:
        if self.min_ttl < 0:
            raise ValueError(f"cache policy {self.name!r}: min_ttl must be >= 0")
        if self.max_ttl is not None and self.max_ttl < self.min_ttl:
            raise ValueError(f"cache policy {self.name!r}: max_ttl must be >= min_ttl")
        if self.default_ttl is not None and not (
            self.min_ttl <= self.default_ttl <= (math.inf if self.max_ttl is None else self.max_ttl)
        ):
            raise ValueError(
                f"cache policy {self.name!r}: default_ttl must be between min_ttl and max_ttl"
            )
        for field, mode in (("query_strings", self.query_strings), ("cookies", self.cookies)):
            if mode not in ("none", "all", "list", "all_except"):
                raise ValueError(
                    f"cache policy {self.name!r}: {field} must be none, all, list or all_except"
                )
        # Header names are case-insensitive: keep them lower-case, sorted, once.
        object.__setattr__(self, "headers", tuple(sorted({h.lower() for h in self.headers})))

    @classmethod
    def rfc9111(cls) -> CachePolicy:
        """Plain RFC 9111: the origin's headers decide, heuristics when they say nothing."""
        return cls(name="RFC9111", default_ttl=None, max_ttl=None)

    @classmethod
    def caching_optimized(cls) -> CachePolicy:
        """CloudFront's managed CachingOptimized policy."""
        return cls(
            name="Managed-CachingOptimized", min_ttl=1.0, compress=True, keyed_cookies_only=True
        )

    @classmethod
    def caching_disabled(cls) -> CachePolicy:
        """CloudFront's managed CachingDisabled policy: nothing is stored."""
        return cls(name="Managed-CachingDisabled", default_ttl=0.0, max_ttl=0.0)

    @property
    def enabled(self) -> bool:
        return self.max_ttl is None or self.max_ttl > 0

    @property
    def strips_set_cookie(self) -> bool:
        """Whether the origin's Set-Cookie is removed (CloudFront, forwarding no cookie)."""
        return self.keyed_cookies_only and self.cookies == "none"


def announce_surrogate(policy: CachePolicy, headers: Headers) -> Headers:
    """`headers` for the origin with Surrogate-Capability (W3C Edge Architecture 1.0), which
    tells it that this cache understands Surrogate-Control, and the device name its targeted
    directives use."""
    device = policy.surrogate_device
    if device is None or not policy.enabled:
        return headers
    capability = (b"surrogate-capability", device.encode("latin-1") + b'="Surrogate/1.0"')
    kept = [(name, value) for name, value in headers if name != b"surrogate-capability"]
    kept.append(capability)
    return kept


# -- cache keys ----------------------------------------------------------------------------------


class CacheKey(NamedTuple):
    """The primary cache key: the URI path, and the selected query/header/cookie values.
    (A named tuple: hashed and compared in C, several times a request.)"""

    path: bytes
    extra: bytes = b""


def accept_encoding_token(headers: Headers) -> bytes:
    """CloudFront's normalised Accept-Encoding: b"br", b"gzip" or b"" (identity)."""
    value = combined(headers, b"accept-encoding")
    if value is None:
        return b""
    accepted: set[bytes] = set()
    for element in split_list(value):
        coding, _, params = element.partition(b";")
        quality = 1.0
        for param in params.split(b";"):
            name, _, number = param.strip().partition(b"=")
            if name.strip().lower() == b"q":
                try:
                    quality = float(number.strip())
                except ValueError:
                    quality = 0.0
        if quality > 0:
            accepted.add(coding.strip().lower())
    if b"br" in accepted:
        return b"br"
    if b"gzip" in accepted or b"x-gzip" in accepted:
        return b"gzip"
    return b""


def normalize_request_headers(policy: CachePolicy, headers: Headers) -> Headers:
    """The request headers as the cache (and the origin) should see them: with `compress`,
    Accept-Encoding becomes the one coding of the cache key, or is dropped for identity; with
    `keyed_cookies_only`, Cookie keeps only the cookies of the key (none: it is dropped)."""
    if policy.keyed_cookies_only:
        headers = _keyed_cookies(policy, headers)
    if not policy.compress:
        return headers
    token = accept_encoding_token(headers)
    out = [(name, value) for name, value in headers if name != b"accept-encoding"]
    if token:
        out.append((b"accept-encoding", token))
    return out


def _keyed_cookies(policy: CachePolicy, headers: Headers) -> Headers:
    if not any(name == b"cookie" for name, _ in headers):
        return headers
    out = [(name, value) for name, value in headers if name != b"cookie"]
    kept = _selected_cookies(policy, _cookies(headers))
    if kept:
        out.append((b"cookie", b"; ".join(name + b"=" + value for name, value in kept)))
    return out


def _selected_cookies(
    policy: CachePolicy, cookies: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    if policy.cookies == "none":
        return []
    if policy.cookies == "all":
        return cookies
    names = {name.encode() for name in policy.cookie_names}
    keep = policy.cookies == "list"
    return [pair for pair in cookies if (pair[0] in names) == keep]


def cache_key(policy: CachePolicy, path: bytes, query: bytes, headers: Headers) -> CacheKey:
    """The primary key for a GET/HEAD to `path?query` under `policy` (RFC 9111 §2: the URI;
    plus what the policy adds). `headers` should already be `normalize_request_headers`'d."""
    parts: list[bytes] = []
    if policy.query_strings == "all":
        if query:
            parts.append(b"?" + query)
    elif policy.query_strings != "none" and query:
        names = {name.encode() for name in policy.query_string_names}
        keep = policy.query_strings == "list"
        selected = [
            pair
            for pair in query.split(b"&")
            if pair and (pair.partition(b"=")[0] in names) == keep
        ]
        if selected:
            # A stable sort by name: `b=2&a=1` and `a=1&b=2` are one object.
            selected.sort(key=lambda pair: pair.partition(b"=")[0])
            parts.append(b"?" + b"&".join(selected))
    for name in policy.headers:
        raw = name.encode("latin-1")
        value = combined(headers, raw)
        parts.append(b"\nh:" + raw + (b"" if value is None else b"=" + _normalize(raw, value)))
    if policy.cookies != "none":
        for cookie_name, cookie_value in sorted(_selected_cookies(policy, _cookies(headers))):
            parts.append(b"\nc:" + cookie_name + b"=" + cookie_value)
    if policy.compress:
        parts.append(b"\nae:" + accept_encoding_token(headers))
    return CacheKey(path, b"".join(parts))


def _cookies(headers: Headers) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b"cookie":
            for item in value.split(b";"):
                key, _, content = item.strip().partition(b"=")
                if key:
                    pairs.append((key.strip(), content.strip()))
    return pairs


# -- Vary (RFC 9111 §4.1) ------------------------------------------------------------------------


def vary_names(headers: Headers) -> tuple[bytes, ...] | None:
    """The request fields a response varies on, sorted, or None for `Vary: *` (never matches)."""
    names = field_names(headers, b"vary")
    if b"*" in names:
        return None
    return tuple(sorted(set(names)))


def _normalize(name: bytes, value: bytes) -> bytes:
    # RFC 9111 §4.1: whitespace around list elements and the split into several field lines
    # do not change the value; Accept-Encoding/-Language/-Charset are case-insensitive lists
    # whose order (without q-values) carries no meaning here.
    elements = split_list(value)
    if name in _UNORDERED_FIELDS:
        elements = sorted(element.lower().replace(b" ", b"") for element in elements)
    return b",".join(elements)


def selecting_values(names: Iterable[bytes], request_headers: Headers) -> tuple[bytes | None, ...]:
    """The normalised values of the selecting request fields `names` (None when absent)."""
    values: list[bytes | None] = []
    for name in names:
        value = combined(request_headers, name)
        values.append(None if value is None else _normalize(name, value))
    return tuple(values)


# -- request directives (RFC 9111 §5.2.1) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestDirectives:
    """What the viewer's Cache-Control asks of the cache. `max_stale` is math.inf for a bare
    `max-stale` (any staleness)."""

    no_cache: bool = False
    no_store: bool = False
    max_age: int | None = None
    max_stale: float | None = None
    min_fresh: int | None = None
    only_if_cached: bool = False
    stale_if_error: int | None = None


_NO_REQUEST_DIRECTIVES: Final = RequestDirectives()


def parse_request_directives(policy: CachePolicy, headers: Headers) -> RequestDirectives:
    """The request's Cache-Control (Pragma is ignored: RFC 9111 §5.4 deprecates it)."""
    if not policy.honor_request_directives:
        return _NO_REQUEST_DIRECTIVES
    lines = [value for name, value in headers if name == b"cache-control"]
    if not lines:
        return _NO_REQUEST_DIRECTIVES
    directives = parse_cache_control(lines)
    max_stale: float | None = None
    if "max-stale" in directives:
        argument = directives["max-stale"]
        # A bare (or unreadable) max-stale accepts any staleness (§5.2.1.2).
        max_stale = math.inf if not argument else delta_seconds(argument)
        if max_stale is None:
            max_stale = math.inf
    return RequestDirectives(
        no_cache="no-cache" in directives,
        no_store="no-store" in directives,
        max_age=delta_seconds(directives.get("max-age")),
        max_stale=max_stale,
        min_fresh=delta_seconds(directives.get("min-fresh")),
        only_if_cached="only-if-cached" in directives,
        stale_if_error=delta_seconds(directives.get("stale-if-error")),
    )


# -- freshness (RFC 9111 §4.2) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Freshness:
    """What RFC 9111 needs to judge a stored response later; computed once, when stored.

    `initial_age` is §4.2.3's corrected_initial_age. `always_revalidate` is an unqualified
    `no-cache`; `never_stale` is `must-revalidate`, `proxy-revalidate` or `s-maxage` (which
    implies proxy-revalidate for a shared cache, §5.2.2.10).
    """

    lifetime: float
    initial_age: float
    response_time: float
    always_revalidate: bool = False
    never_stale: bool = False
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0

    def age(self, now: float) -> float:
        """§4.2.3 current_age: the initial age plus the time resident in this cache."""
        return self.initial_age + max(0.0, now - self.response_time)

    def age_header(self, now: float) -> bytes:
        """The `Age` value to send (§5.1: whole seconds, never negative)."""
        return b"%d" % int(self.age(now))


def response_directives(policy: CachePolicy, headers: Headers) -> Directives:
    """The response's caching directives: CDN-Cache-Control's when present and valid (RFC 9213
    §2: a CDN then ignores Cache-Control), else Surrogate-Control's meant for this cache, else
    Cache-Control's."""
    if policy.honor_cdn_cache_control:
        cdn = parse_cdn_cache_control(
            value for name, value in headers if name == b"cdn-cache-control"
        )
        if cdn is not None:
            return cdn
    if policy.surrogate_device is not None:
        surrogate = parse_surrogate_control(
            (value for name, value in headers if name == b"surrogate-control"),
            policy.surrogate_device,
        )
        if surrogate is not None:
            return surrogate
    return parse_cache_control(value for name, value in headers if name == b"cache-control")


def _unqualified(directives: Directives, name: str) -> bool:
    # A directive without a field list (or with one that cannot be read, to be safe).
    return name in directives and not directives[name]


def _first(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _parse_date(value: bytes | None) -> float | None:
    """An HTTP-date (RFC 9110 §5.6.7); None when absent or invalid: an invalid Expires means
    "already expired" (RFC 9111 §5.3), so a broken date is never guessed at."""
    if value is None:
        return None
    parsed = parse_http_date(value)
    return None if parsed is None else float(parsed)


def explicit_lifetime(
    directives: Directives, headers: Headers, response_time: float
) -> float | None:
    """§4.2.1: s-maxage, else max-age, else Expires - Date; None when there is none of them.
    An invalid value of the one that applies means "already expired" (0)."""
    if "s-maxage" in directives:
        return float(delta_seconds(directives["s-maxage"]) or 0)
    if "max-age" in directives:
        return float(delta_seconds(directives["max-age"]) or 0)
    expires_value = _first(headers, b"expires")
    if expires_value is None:
        return None
    expires = _parse_date(expires_value)
    if expires is None:
        return 0.0  # §5.3: an invalid Expires (e.g. "0") represents a time in the past
    date = _parse_date(_first(headers, b"date"))
    return max(0.0, expires - (response_time if date is None else date))


def _heuristic_lifetime(policy: CachePolicy, headers: Headers, response_time: float) -> float:
    # §4.2.2: a fraction of the time since Last-Modified, as caches usually do.
    last_modified = _parse_date(_first(headers, b"last-modified"))
    if last_modified is None:
        return 0.0
    date = _parse_date(_first(headers, b"date"))
    reference = response_time if date is None else date
    if last_modified > reference:
        return 0.0
    return min(
        (reference - last_modified) * policy.heuristic_fraction, policy.heuristic_max_seconds
    )


def _initial_age(headers: Headers, request_time: float, response_time: float, age: int) -> float:
    # §4.2.3, corrected_initial_age. A missing or invalid Date counts as the receipt time
    # (RFC 9110 §6.6.1).
    date = _parse_date(_first(headers, b"date"))
    apparent_age = 0.0 if date is None else max(0.0, response_time - date)
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, age + response_delay)


def compute_freshness(
    policy: CachePolicy,
    status: int,
    headers: Headers,
    request_time: float,
    response_time: float,
    *,
    age: int | None = None,
    directives: Directives | None = None,
) -> Freshness:
    """The freshness of a response with these (stored) headers, after the policy's clamps.

    `age` is the Age value received (the stored headers carry none); by default it is read from
    `headers`.
    """
    if directives is None:
        directives = response_directives(policy, headers)
    if age is None:
        age = parse_age(headers)
    lifetime = explicit_lifetime(directives, headers, response_time)
    if lifetime is None:
        # No explicit freshness: CloudFront's default TTL, or RFC 9111 heuristics — both only
        # for statuses that may be cached without explicit freshness (§4.2.2).
        if status in HEURISTIC_STATUSES or "public" in directives:
            if policy.default_ttl is not None:
                lifetime = policy.default_ttl
            else:
                lifetime = _heuristic_lifetime(policy, headers, response_time)
        else:
            lifetime = 0.0
    # CloudFront: the policy's TTLs bound the origin's.
    if policy.max_ttl is not None:
        lifetime = min(lifetime, policy.max_ttl)
    lifetime = max(lifetime, policy.min_ttl)
    overridden = policy.min_ttl > 0  # CloudFront: a min TTL overrides no-cache
    return Freshness(
        lifetime=lifetime,
        initial_age=_initial_age(headers, request_time, response_time, age),
        response_time=response_time,
        always_revalidate=not overridden and _unqualified(directives, "no-cache"),
        never_stale=(
            "must-revalidate" in directives
            or "proxy-revalidate" in directives
            or "s-maxage" in directives
        ),
        stale_while_revalidate=float(delta_seconds(directives.get("stale-while-revalidate")) or 0),
        stale_if_error=float(delta_seconds(directives.get("stale-if-error")) or 0),
    )


# -- storing (RFC 9111 §3) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Storable:
    """A response that may be stored: its freshness, the headers to store, what it varies on."""

    freshness: Freshness
    headers: Headers
    vary: tuple[bytes, ...]


def assess_response(
    policy: CachePolicy,
    method: str,
    status: int,
    request_headers: Headers,
    response_headers: Headers,
    request_time: float,
    response_time: float,
) -> Storable | str:
    """A `Storable` when this cache may store the response, else the reason it may not.

    `request_headers` are the request as sent to the origin; `response_headers` the answer
    after hop-by-hop stripping (it is stripped again here, harmlessly).
    """
    if not policy.enabled:
        return "caching disabled by the cache policy"
    if method != "GET":
        # §3: only GET is stored here; HEAD is answered from a stored GET (§4.3.5 allows it).
        return f"method {method} is not stored"
    if status < 200 or status == 304:
        return f"status {status} is not stored"
    if status == 206 and stored_range(response_headers) is None:
        # §3.3: a part is stored only when it says which bytes of how many it holds.
        return "206 without one complete Content-Range"
    directives = response_directives(policy, response_headers)
    overridden = policy.min_ttl > 0  # CloudFront: a min TTL overrides no-store and private
    request_cc = parse_request_directives(policy, request_headers)
    if request_cc.no_store:
        return "request no-store"  # §5.2.1.5
    # §5.2.2.3: must-understand lets an understood status ignore no-store.
    understood = "must-understand" in directives and status in _UNDERSTOOD
    if "no-store" in directives and not overridden and not understood:
        return "no-store"
    if "must-understand" in directives and status not in _UNDERSTOOD:
        return f"must-understand and status {status} is not understood"  # §5.2.2.3
    if _unqualified(directives, "private") and not overridden:
        return "private"  # §5.2.2.7: a shared cache must not store it
    if combined(request_headers, b"authorization") is not None and not (
        "public" in directives or "s-maxage" in directives or "must-revalidate" in directives
    ):
        return "request has Authorization"  # §3.5
    vary = vary_names(response_headers)
    if vary is None:
        return "Vary: *"  # §4.1: it can never be selected
    has_explicit = (
        "max-age" in directives
        or "s-maxage" in directives
        or _first(response_headers, b"expires") is not None
    )
    if not (has_explicit or "public" in directives or status in HEURISTIC_STATUSES):
        return f"status {status} without explicit freshness"  # §3, §4.2.2
    headers = _headers_to_store(response_headers, directives, response_time)
    if not policy.store_set_cookie and _first(headers, b"set-cookie") is not None:
        # RFC 9111 §7.3 leaves it to the cache; a shared cache that stores it hands one
        # viewer's cookie to the next (nginx and Varnish do not store it either). An origin's
        # no-cache="Set-Cookie" or private="Set-Cookie" keeps the field out, and the rest in.
        return "Set-Cookie"
    freshness = compute_freshness(
        policy,
        status,
        headers,
        request_time,
        response_time,
        age=parse_age(response_headers),
        directives=directives,
    )
    if (
        freshness.lifetime <= 0
        and freshness.stale_if_error <= 0
        and _first(headers, b"etag") is None
        and _first(headers, b"last-modified") is None
    ):
        # Never fresh and nothing to validate with: storing it could never save a fetch.
        return "no freshness and no validator"
    return Storable(freshness, headers, vary)


def stored_range(headers: Headers) -> tuple[int, int, int] | None:
    """A 206's single `Content-Range: bytes first-last/complete` as (first, last + 1,
    complete), or None when there is none, or it is a multipart answer or has no known total."""
    value = combined(headers, b"content-range")
    return None if value is None else parse_content_range(value)


def _headers_to_store(headers: Headers, directives: Directives, response_time: float) -> Headers:
    # §3.1: not hop-by-hop fields, nor those Connection lists; §5.2.2.4 / §5.2.2.7: not the
    # fields named by a qualified no-cache or private. Age is recomputed on every use.
    drop = set(HOP_BY_HOP)
    drop.update(field_names(headers, b"connection"))
    drop.add(b"age")
    for name in ("no-cache", "private"):
        argument = directives.get(name)
        if argument:
            drop.update(
                element.strip().lower().encode("latin-1") for element in argument.split(",")
            )
    stored = [(name, value) for name, value in headers if name not in drop]
    if _parse_date(_first(stored, b"date")) is None:
        # RFC 9110 §6.6.1: a cache records when a Date-less response was received.
        stored = [(name, value) for name, value in stored if name != b"date"]
        stored.append((b"date", format_http_date(int(response_time))))
    return stored


def with_age(headers: Headers, initial_age: float) -> Headers:
    """§5.1 / §4.2.3: a response being stored goes out with the age this cache gives it (the
    origin's Age corrected by the time the answer took, or what its Date says), as on later
    hits; one with no age to speak of (under a second, no Age from the origin) gets none."""
    had_age = any(name == b"age" for name, _ in headers)
    if not had_age and initial_age < 1:
        return headers
    aged = [(name, value) for name, value in headers if name != b"age"]
    aged.append((b"age", b"%d" % int(initial_age)))
    return aged


# -- using a stored response (RFC 9111 §4) -------------------------------------------------------


class Action(enum.Enum):
    """What to do with the stored response selected for a request."""

    FRESH = "fresh"  # serve it
    STALE = "stale"  # serve it stale: the request's max-stale allows it (§4.2.4)
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"  # serve it, refresh in the background
    REVALIDATE = "revalidate"  # validate with the origin before use (§4.3)


class Decision(NamedTuple):
    action: Action
    age: float


def decide(freshness: Freshness, request: RequestDirectives, now: float) -> Decision:
    """Whether a stored response can satisfy a request at `now` (§4.2, §4.2.4, §5.2)."""
    age = freshness.age(now)
    if request.no_cache or freshness.always_revalidate:
        return Decision(Action.REVALIDATE, age)  # §5.2.1.4, §5.2.2.4
    if request.max_age is not None and age > request.max_age:
        return Decision(Action.REVALIDATE, age)  # §5.2.1.1
    remaining = freshness.lifetime - age
    if request.min_fresh is not None and remaining < request.min_fresh:
        return Decision(Action.REVALIDATE, age)  # §5.2.1.3
    if remaining > 0:
        return Decision(Action.FRESH, age)  # §4.2: fresh while age < lifetime
    if freshness.never_stale:
        return Decision(Action.REVALIDATE, age)  # §5.2.2.2, §5.2.2.8, §5.2.2.10
    staleness = -remaining
    if request.max_stale is not None and staleness <= request.max_stale:
        return Decision(Action.STALE, age)  # §5.2.1.2
    if staleness <= freshness.stale_while_revalidate:
        return Decision(Action.STALE_WHILE_REVALIDATE, age)  # RFC 5861 §3
    return Decision(Action.REVALIDATE, age)


def usable_on_error(
    freshness: Freshness, request: RequestDirectives, now: float, *, unbounded: bool = False
) -> bool:
    """Whether a stale response may stand in for an origin error (5xx or no answer) at `now`:
    within a stale-if-error window (RFC 5861 §4), or at any age when `unbounded` (CloudFront's
    way, the policy's `serve_stale_on_error`). must-revalidate and friends forbid it (RFC 9111
    §5.2.2.2), and so does an unqualified no-cache (§5.2.2.4: never used unvalidated)."""
    if freshness.never_stale or freshness.always_revalidate:
        return False
    if unbounded:
        return True
    window = max(freshness.stale_if_error, float(request.stale_if_error or 0))
    return freshness.age(now) - freshness.lifetime <= window


# -- validation (RFC 9111 §4.3) ------------------------------------------------------------------


def conditional_headers(request_headers: Headers, stored_headers: Headers) -> Headers | None:
    """The headers of the request that validates a stored response (§4.3.1): the viewer's,
    without its own conditions and Range, plus If-None-Match / If-Modified-Since from the stored
    validators. None when the stored response has no validator (then it is refetched)."""
    etag = _first(stored_headers, b"etag")
    last_modified = _first(stored_headers, b"last-modified")
    if etag is None and last_modified is None:
        return None
    out = [(name, value) for name, value in request_headers if name not in CONDITION_FIELDS]
    if etag is not None:
        # Sent back as the origin wrote it, even when it is not a valid entity-tag (unquoted):
        # origins compare their own tags as strings.
        out.append((b"if-none-match", etag.strip()))
    if last_modified is not None:
        out.append((b"if-modified-since", last_modified))
    return out


def without_validators(headers: Headers) -> Headers:
    """`headers` without the validators `conditional_headers` adds, to ask for the response
    whole (the stored one cannot be freshened after all)."""
    return [(name, value) for name, value in headers if name not in _VALIDATORS]


def update_from_304(
    stored_headers: Headers, not_modified: Headers, response_time: float
) -> Headers:
    """§4.3.4 / §3.2: the stored headers freshened by a 304. Every field the 304 carries
    replaces the stored one, except the stored body's framing and hop-by-hop fields."""
    drop = set(HOP_BY_HOP) | _NOT_UPDATED
    drop.update(field_names(not_modified, b"connection"))
    updates = [(name, value) for name, value in not_modified if name not in drop]
    names = {name for name, _ in updates}
    headers = [(name, value) for name, value in stored_headers if name not in names]
    headers.extend(updates)
    if b"date" not in names:
        # The 304 vouches for the stored response as of now (RFC 9110 §6.6.1).
        headers = [(name, value) for name, value in headers if name != b"date"]
        headers.append((b"date", format_http_date(int(response_time))))
    return headers


def answer_conditions(request_headers: Headers, status: int, stored_headers: Headers) -> int | None:
    """RFC 9110 §13.2.2 evaluated against a stored response: 304, 412 or None (answer in
    full). Only for 2xx stored responses; the viewer's conditions come first."""
    if not 200 <= status < 300:
        return None
    if PRECONDITION_FIELDS.isdisjoint([name for name, _ in request_headers]):
        return None  # the common case, a plain request: nothing to parse
    conditions = condition_fields(request_headers) or {}
    last_modified_value = _first(stored_headers, b"last-modified")
    last_modified = None if last_modified_value is None else parse_http_date(last_modified_value)
    # RFC 9111 §4.3.2: without Last-Modified, the stored Date stands in for it.
    date_value = _first(stored_headers, b"date") if last_modified is None else None
    date = None if date_value is None else parse_http_date(date_value)
    etag = _first(stored_headers, b"etag")
    return evaluate_preconditions(conditions, etag, last_modified, date=date)


# -- invalidation (RFC 9111 §4.4) ----------------------------------------------------------------


def invalidated_paths(
    method: str, status: int, path: bytes, authority: bytes | None, response_headers: Headers
) -> list[bytes]:
    """The paths an unsafe request invalidates once its answer is a success (2xx/3xx): its own,
    and those of Location and Content-Location when they name the same origin (§4.4)."""
    if method in _SAFE_METHODS or not 200 <= status < 400:
        return []
    paths = [path]
    for name in (b"location", b"content-location"):
        value = _first(response_headers, name)
        if value is None:
            continue
        target = _same_origin_path(value.strip(), path, authority)
        if target is not None and target not in paths:
            paths.append(target)
    return paths


def _same_origin_path(reference: bytes, base_path: bytes, authority: bytes | None) -> bytes | None:
    try:
        parts = urlsplit(reference.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if parts.scheme or parts.netloc:
        if authority is None or parts.netloc.encode("ascii").lower() != authority.lower():
            return None  # §4.4: another origin's URI must not be invalidated
        return parts.path.encode("ascii") or b"/"
    if not parts.path:
        return base_path
    if parts.path.startswith("/"):
        return parts.path.encode("ascii")
    # A relative reference: resolved against the request's path.
    directory = base_path[: base_path.rfind(b"/") + 1] or b"/"
    return directory + parts.path.encode("ascii")
