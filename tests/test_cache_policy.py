"""RFC 9111 and CloudFront cache-policy rules of `origin_proxy.cache.policy`, one row per rule.

Most rows are a miniature of the conformance suite: a response is stored at T0 and a second
request comes `elapsed` seconds later; the row says what the cache does with it.
"""

from __future__ import annotations

import math

import pytest

from origin_proxy.cache.directives import (
    parse_age,
    parse_cache_control,
    parse_cdn_cache_control,
    parse_surrogate_control,
    split_list,
)
from origin_proxy.cache.policy import (
    CacheKey,
    CachePolicy,
    Storable,
    accept_encoding_token,
    answer_conditions,
    assess_response,
    cache_key,
    compute_freshness,
    conditional_headers,
    decide,
    invalidated_paths,
    normalize_request_headers,
    parse_request_directives,
    selecting_values,
    stored_range,
    update_from_304,
    usable_on_error,
    vary_names,
)
from origin_proxy.fields import format_http_date

T0 = 1_700_000_000.0
RFC = CachePolicy.rfc9111()


def date(offset: float) -> str:
    return format_http_date(int(T0 + offset)).decode()


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in pairs]


def judge(
    response: list[tuple[str, str]],
    *,
    request: tuple[tuple[str, str], ...] = (),
    later: tuple[tuple[str, str], ...] = (),
    status: int = 200,
    elapsed: float = 3.0,
    policy: CachePolicy = RFC,
    method: str = "GET",
) -> str:
    """Store at T0 (the origin answering instantly), ask again at T0 + elapsed: the action
    taken ("fresh", "revalidate", ...) or why the response was not stored."""
    assessed = assess_response(policy, method, status, h(*request), h(*response), T0, T0)
    if isinstance(assessed, str):
        return f"not stored: {assessed}"
    directives = parse_request_directives(policy, h(*later))
    return decide(assessed.freshness, directives, T0 + elapsed).action.value


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(["max-age=60"], {"max-age": "60"}, id="token-argument"),
        pytest.param(['max-age="60"'], {"max-age": "60"}, id="quoted-argument-5.2"),
        pytest.param(["MaX-AgE=60, No-Store"], {"max-age": "60", "no-store": None},
                     id="names-case-insensitive-5.2"),
        pytest.param(['ext="max-age=5", max-age=1'], {"ext": "max-age=5", "max-age": "1"},
                     id="directive-inside-quotes-is-not-one"),
        pytest.param(["max-age=1800, max-age=1"], {"max-age": "1800"},
                     id="duplicate-first-wins-4.2.1"),
        pytest.param(["max-age=1800", "max-age=1"], {"max-age": "1800"},
                     id="duplicate-across-lines-first-wins"),
        pytest.param(["max-age =100"], {"max-age": ""}, id="space-before-equals-malformed"),
        pytest.param(["max-age= 100"], {"max-age": ""}, id="space-after-equals-malformed"),
        pytest.param([' no-cache="a, b" , private'], {"no-cache": "a, b", "private": None},
                     id="qualified-list-and-ows"),
        pytest.param([",, ,public,"], {"public": None}, id="empty-elements-skipped"),
    ],
)  # fmt: skip
def test_parse_cache_control(lines: list[str], expected: dict[str, str | None]) -> None:
    assert parse_cache_control(line.encode() for line in lines) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(["max-age=3600"], {"max-age": "3600"}, id="integer"),
        pytest.param(["foobar, max-age=3600"], {"foobar": None, "max-age": "3600"},
                     id="extension-boolean"),
        pytest.param(["no-store"], {"no-store": None}, id="bare-key"),
        pytest.param(["max-age=10000, &&&&&"], None, id="invalid-sf-ignored-rfc9213-2.1"),
        pytest.param(['max-age="10000"'], None, id="wrong-type-ignored"),
        pytest.param(["MaX-aGe=3600"], None, id="upper-case-key-is-invalid-sf"),
        pytest.param([], None, id="absent"),
        pytest.param(["max-age=99999999999"], {"max-age": "2147483648"}, id="huge-capped-1.2.2"),
    ],
)  # fmt: skip
def test_parse_cdn_cache_control(lines: list[str], expected: dict[str, str | None] | None) -> None:
    assert parse_cdn_cache_control(line.encode() for line in lines) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(["max-age=3600"], {"max-age": "3600"}, id="untargeted-applies"),
        pytest.param(["MaX-aGe=3600"], {"max-age": "3600"}, id="names-case-insensitive"),
        pytest.param(["max-age=3600;edge"], {"max-age": "3600"}, id="targeted-at-this-device"),
        pytest.param(["max-age=3600;EDGE"], {"max-age": "3600"}, id="target-case-insensitive"),
        pytest.param(["max-age=3600;not-for-you"], None, id="other-device-ignored"),
        pytest.param(["max-age=60, max-age=3600;edge"], {"max-age": "3600"},
                     id="targeted-beats-untargeted"),
        pytest.param(["max-age=60+600"], {"max-age": "60", "stale-if-error": "600"},
                     id="plus-is-a-stale-window"),
        pytest.param(["foobar, max-age=3600"], {"foobar": None, "max-age": "3600"},
                     id="extension-kept"),
        pytest.param(["max-age =100"], None, id="space-before-equals-ignored"),
        pytest.param(["max-age= 100"], None, id="space-after-equals-ignored"),
        pytest.param(["max-age=abc"], None, id="non-numeric-ignored"),
        pytest.param(["no-store"], {"no-store": None}, id="no-store"),
        pytest.param(['content="ESI/1.0"'], {"content": "ESI/1.0"}, id="quoted-argument"),
        pytest.param([], None, id="absent"),
    ],
)  # fmt: skip
def test_parse_surrogate_control(lines: list[str], expected: dict[str, str | None] | None) -> None:
    assert parse_surrogate_control((line.encode() for line in lines), "edge") == expected


@pytest.mark.parametrize(
    ("ages", "expected"),
    [
        pytest.param(["15"], 15, id="integer"),
        pytest.param(["abc"], 0, id="non-numeric-ignored"),
        pytest.param(["-7200"], 0, id="negative-ignored"),
        pytest.param(["7200.0"], 0, id="float-ignored"),
        pytest.param(["7200, 0"], 7200, id="list-first-member-5.1"),
        pytest.param(["0, 7200"], 0, id="list-first-member-zero"),
        pytest.param(["7200", "0"], 7200, id="two-lines-first-line"),
        pytest.param(["7200;foo=bar"], 0, id="parameter-ignored"),
        pytest.param(["abc, 7200"], 0, id="invalid-first-member-ignored"),
        pytest.param(["99999999999"], 2_147_483_648, id="huge-capped-1.2.2"),
        pytest.param([], 0, id="absent"),
    ],
)
def test_parse_age(ages: list[str], expected: int) -> None:
    assert parse_age(h(*[("age", age) for age in ages])) == expected


def test_split_list_keeps_quoted_commas() -> None:
    assert split_list(b' a, "b, c" ,, d') == [b"a", b'"b, c"', b"d"]


# -- storing (RFC 9111 §3) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "request_headers", "status", "method", "policy", "expected"),
    [
        pytest.param([("Cache-Control", "max-age=60")], (), 200, "GET", RFC, None,
                     id="max-age-storable"),
        pytest.param([("Cache-Control", "max-age=60")], (), 200, "POST", RFC,
                     "method POST is not stored", id="post-not-stored"),
        pytest.param([("Cache-Control", "max-age=60")], (), 200, "HEAD", RFC,
                     "method HEAD is not stored", id="head-answered-from-get"),
        pytest.param([("Cache-Control", "no-store, max-age=60")], (), 200, "GET", RFC,
                     "no-store", id="no-store-5.2.2.5"),
        pytest.param([("Cache-Control", "No-StOrE")], (), 200, "GET", RFC, "no-store",
                     id="no-store-case-insensitive"),
        pytest.param([("Cache-Control", "max-age=60")], (("Cache-Control", "no-store"),), 200,
                     "GET", RFC, "request no-store", id="request-no-store-5.2.1.5"),
        pytest.param([("Cache-Control", "private, max-age=60")], (), 200, "GET", RFC, "private",
                     id="private-shared-cache-5.2.2.7"),
        pytest.param([("Cache-Control", 'private="set-cookie", max-age=60')], (), 200, "GET",
                     RFC, None, id="qualified-private-stores-the-rest"),
        pytest.param([("Expires", date(3600)), ("Date", date(0))], (("Authorization", "x"),),
                     200, "GET", RFC, "request has Authorization", id="authorization-3.5"),
        pytest.param([("Cache-Control", "public, max-age=60")], (("Authorization", "x"),), 200,
                     "GET", RFC, None, id="authorization-with-public"),
        pytest.param([("Cache-Control", "s-maxage=60")], (("Authorization", "x"),), 200, "GET",
                     RFC, None, id="authorization-with-s-maxage"),
        pytest.param([("Cache-Control", "max-age=60, must-revalidate")],
                     (("Authorization", "x"),), 200, "GET", RFC, None,
                     id="authorization-with-must-revalidate"),
        pytest.param([("Cache-Control", "max-age=60"), ("Vary", "Foo, *")], (), 200, "GET", RFC,
                     "Vary: *", id="vary-star-4.1"),
        pytest.param([("Vary", ""), ("Vary", "*"), ("Cache-Control", "max-age=60")], (), 200,
                     "GET", RFC, "Vary: *", id="vary-star-second-line"),
        pytest.param([("Cache-Control", "max-age=60")], (), 206, "GET", RFC,
                     "206 without one complete Content-Range", id="part-without-range-not-stored"),
        pytest.param([("Cache-Control", "max-age=60"), ("Content-Range", "bytes 0-1/10")], (),
                     206, "GET", RFC, None, id="part-stored-3.3"),
        pytest.param([("Last-Modified", date(-86400)), ("Date", date(0))], (), 201, "GET", RFC,
                     "status 201 without explicit freshness", id="heuristic-201-not-cacheable"),
        pytest.param([("Last-Modified", date(-86400)), ("Date", date(0))], (), 404, "GET", RFC,
                     None, id="heuristic-404-cacheable-15.1"),
        pytest.param([("Last-Modified", date(-86400)), ("Cache-Control", "public")], (), 599,
                     "GET", RFC, None, id="public-makes-any-status-heuristic"),
        pytest.param([("Cache-Control", "max-age=60")], (), 599, "GET", RFC, None,
                     id="any-final-status-with-explicit-freshness"),
        pytest.param([], (), 200, "GET", RFC, "no freshness and no validator",
                     id="nothing-to-gain-not-stored"),
        pytest.param([("Cache-Control", "no-store, must-understand, max-age=60")], (), 200,
                     "GET", RFC, None, id="must-understand-overrides-no-store-5.2.2.3"),
        pytest.param([("Cache-Control", "no-store, private")], (), 200, "GET",
                     CachePolicy.caching_optimized(), None,
                     id="cloudfront-min-ttl-overrides-no-store-and-private"),
        pytest.param([("Cache-Control", "max-age=60")], (), 200, "GET",
                     CachePolicy.caching_disabled(), "caching disabled by the cache policy",
                     id="cloudfront-caching-disabled"),
        pytest.param([("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")], (),
                     200, "GET", RFC, None, id="cdn-cache-control-wins-rfc9213"),
        pytest.param([("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "no-store")], (),
                     200, "GET", RFC, "no-store", id="cdn-cache-control-no-store"),
        pytest.param([("Cache-Control", "no-store"), ("Surrogate-Control", "max-age=60")], (),
                     200, "GET", RFC, None, id="surrogate-control-wins"),
        pytest.param([("Cache-Control", "max-age=60"), ("Surrogate-Control", "no-store")], (),
                     200, "GET", RFC, "no-store", id="surrogate-control-no-store"),
        pytest.param([("Cache-Control", "no-store"), ("Surrogate-Control", "max-age=60;cdn")],
                     (), 200, "GET", RFC, "no-store", id="surrogate-control-for-another-device"),
        pytest.param([("Surrogate-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")],
                     (), 200, "GET", RFC, None, id="cdn-cache-control-before-surrogate-control"),
    ],
)  # fmt: skip
def test_storability(
    response: list[tuple[str, str]],
    request_headers: tuple[tuple[str, str], ...],
    status: int,
    method: str,
    policy: CachePolicy,
    expected: str | None,
) -> None:
    assessed = assess_response(policy, method, status, h(*request_headers), h(*response), T0, T0)
    assert (assessed if isinstance(assessed, str) else None) == expected


def test_stored_headers_omit_hop_by_hop_connection_listed_and_no_cache_fields() -> None:
    # RFC 9111 §3.1 and §5.2.2.4: these are never reused from the cache.
    response = h(
        ("Connection", "a, b"),
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("Keep-Alive", "timeout=5"),
        ("Cache-Control", 'no-cache="d", max-age=60'),
        ("d", "4"),
        ("Age", "10"),
    )
    assessed = assess_response(RFC, "GET", 200, [], response, T0, T0)
    assert isinstance(assessed, Storable)
    names = [name for name, _ in assessed.headers]
    assert names == [b"c", b"cache-control", b"date"]  # a Date is added when missing
    assert assessed.freshness.initial_age == 10
    # A qualified no-cache does not force revalidation of the rest (§5.2.2.4).
    assert not assessed.freshness.always_revalidate


# -- freshness and use (RFC 9111 §4.2, §4.2.4, §5.2, RFC 5861) -------------------------------


@pytest.mark.parametrize(
    ("response", "kwargs", "expected"),
    [
        pytest.param([("Cache-Control", "max-age=3600")], {}, "fresh", id="max-age-fresh"),
        pytest.param([("Cache-Control", "max-age=0"), ("ETag", '"x"')], {}, "revalidate",
                     id="max-age-0-stale"),
        pytest.param([("Cache-Control", "max-age=2"), ("ETag", '"x"')], {}, "revalidate",
                     id="max-age-expired"),
        pytest.param([("Cache-Control", 'max-age="3600"')], {}, "fresh", id="quoted-max-age"),
        pytest.param([("Cache-Control", "max-age='3600'"), ("ETag", '"x"')], {}, "revalidate",
                     id="single-quoted-is-invalid"),
        pytest.param([("Cache-Control", "max-age=a100"), ("ETag", '"x"')], {}, "revalidate",
                     id="invalid-max-age-is-stale"),
        pytest.param([("Cache-Control", "max-age=100a"), ("ETag", '"x"')], {}, "revalidate",
                     id="trailing-alpha-is-stale"),
        pytest.param([("Cache-Control", "max-age=-100"), ("ETag", '"x"')], {}, "revalidate",
                     id="negative-is-stale"),
        pytest.param([("Cache-Control", "max-age =100"), ("ETag", '"x"')], {}, "revalidate",
                     id="space-before-equals-is-stale"),
        pytest.param([("Cache-Control", 'ext="max-age=100", max-age=1'), ("ETag", '"x"')], {},
                     "revalidate", id="quoted-max-age-ignored"),
        pytest.param([("Cache-Control", "max-age=99999999999")], {}, "fresh", id="max-age-huge"),
        pytest.param([("Cache-Control", "max-age=10"), ("Age", "15"), ("ETag", '"x"')],
                     {"elapsed": 0}, "revalidate", id="age-beyond-max-age"),
        pytest.param([("Cache-Control", "max-age=3600"), ("Expires", date(-10000)),
                      ("Date", date(0))], {}, "fresh", id="max-age-beats-past-expires"),
        pytest.param([("Cache-Control", "max-age=0"), ("Expires", date(10000)),
                      ("Date", date(0)), ("ETag", '"x"')], {}, "revalidate",
                     id="max-age-0-beats-future-expires"),
        pytest.param([("Cache-Control", "max-age=3600, s-maxage=1"), ("ETag", '"x"')], {},
                     "revalidate", id="s-maxage-beats-max-age-4.2.1"),
        pytest.param([("Cache-Control", "max-age=1, s-maxage=3600")], {}, "fresh",
                     id="s-maxage-longer-wins"),
        pytest.param([("Expires", date(3600)), ("Date", date(0))], {}, "fresh",
                     id="expires-future"),
        pytest.param([("Expires", date(-3600)), ("Date", date(0)), ("ETag", '"x"')], {},
                     "revalidate", id="expires-past"),
        pytest.param([("Expires", "0"), ("Date", date(0)), ("ETag", '"x"')], {}, "revalidate",
                     id="invalid-expires-is-past-5.3"),
        # Only the three formats (in any letter case): any other near-miss is invalid, so
        # stale (RFC 9111 §5.3), rather than guessed at.
        pytest.param([("Expires", "Thu, 18 Aug 2050 02:01:18 UTC"), ("ETag", '"x"')], {},
                     "revalidate", id="expires-utc-invalid"),
        pytest.param([("Expires", "Thu, 18 Aug 50 02:01:18 GMT"), ("ETag", '"x"')], {},
                     "revalidate", id="expires-two-digit-year-invalid"),
        pytest.param([("Expires", "Thu 18 Aug 2050 02:01:18 GMT"), ("ETag", '"x"')], {},
                     "revalidate", id="expires-no-comma-invalid"),
        pytest.param([("Expires", "Thu, 18-Aug-2050 02:01:18 GMT"), ("ETag", '"x"')], {},
                     "revalidate", id="expires-dashes-invalid"),
        pytest.param([("Expires", "Thu, 18  Aug  2050 02:01:18 GMT"), ("ETag", '"x"')], {},
                     "revalidate", id="expires-double-spaces-invalid"),
        pytest.param([("Expires", "Thursday, 18-Aug-50 02:01:18 GMT")], {}, "fresh",
                     id="expires-rfc850"),
        pytest.param([("Expires", "Thu Aug 18 02:01:18 2050")], {}, "fresh",
                     id="expires-asctime"),
        pytest.param([("Expires", "Sun, 21 Nov 2286 04:46:39 GMT")], {}, "fresh",
                     id="expires-far-future"),
        pytest.param([("Expires", "THU, 18 AUG 2050 02:01:18 gMT")], {}, "fresh",
                     id="expires-wrong-case-accepted"),
        pytest.param([("Expires", "Thu, 31 Feb 2050 02:01:18 GMT"), ("ETag", '"x"')], {},
                     "revalidate", id="expires-impossible-day-invalid"),
        pytest.param([("Expires", "Sun, 06 Nov 0000 08:49:37 GMT"), ("ETag", '"x"')], {},
                     "revalidate", id="expires-year-zero-invalid"),
        pytest.param([("Expires", "-1"), ("ETag", '"x"')], {}, "revalidate",
                     id="expires-number-invalid"),
        pytest.param([("Expires", date(300)), ("Date", date(400)), ("ETag", '"x"')], {},
                     "revalidate", id="expires-before-date"),
        pytest.param([("Date", "foo"), ("Expires", date(10))], {}, "fresh",
                     id="invalid-date-means-receipt-time"),
        pytest.param([("Date", date(10)), ("Expires", date(20)), ("Age", "15"),
                      ("ETag", '"x"')], {"elapsed": 0}, "revalidate", id="age-beyond-expires"),
        pytest.param([("Date", date(-10)), ("Cache-Control", "max-age=3600")], {"elapsed": 0},
                     "fresh", id="apparent-age-from-date"),
        pytest.param([("Last-Modified", date(-86400)), ("Date", date(0))], {"elapsed": 3600},
                     "fresh", id="heuristic-10-percent-4.2.2"),
        pytest.param([("Last-Modified", date(-100)), ("Date", date(0))], {"elapsed": 11},
                     "revalidate", id="heuristic-expires"),
        pytest.param([("Last-Modified", date(-100 * 86400)), ("Date", date(0))],
                     {"elapsed": 86401}, "revalidate", id="heuristic-capped-at-a-day"),
        pytest.param([("Cache-Control", "max-age=3600, no-cache"), ("ETag", '"x"')], {},
                     "revalidate", id="response-no-cache-5.2.2.4"),
        pytest.param([("Cache-Control", "max-age=3600")],
                     {"later": (("Cache-Control", "no-cache"),)}, "revalidate",
                     id="request-no-cache-5.2.1.4"),
        pytest.param([("Cache-Control", "max-age=3600")],
                     {"later": (("Pragma", "no-cache"),)}, "fresh", id="pragma-ignored-5.4"),
        pytest.param([("Cache-Control", "max-age=3600")],
                     {"later": (("Cache-Control", "max-age=1"),)}, "revalidate",
                     id="request-max-age-5.2.1.1"),
        pytest.param([("Cache-Control", "max-age=3600"), ("Age", "1800")],
                     {"later": (("Cache-Control", "min-fresh=2000"),)}, "revalidate",
                     id="request-min-fresh-5.2.1.3"),
        pytest.param([("Cache-Control", "max-age=1")],
                     {"later": (("Cache-Control", "max-stale=1000"),)}, "stale",
                     id="request-max-stale-5.2.1.2"),
        pytest.param([("Cache-Control", "max-age=1")],
                     {"later": (("Cache-Control", "max-stale"),)}, "stale",
                     id="request-bare-max-stale"),
        pytest.param([("Cache-Control", "max-age=1"), ("ETag", '"x"')],
                     {"later": (("Cache-Control", "max-stale=1"),)}, "revalidate",
                     id="request-max-stale-too-short"),
        pytest.param([("Cache-Control", "max-age=1, must-revalidate")],
                     {"later": (("Cache-Control", "max-stale"),)}, "revalidate",
                     id="must-revalidate-forbids-stale-5.2.2.2"),
        pytest.param([("Cache-Control", "max-age=1, proxy-revalidate")],
                     {"later": (("Cache-Control", "max-stale"),)}, "revalidate",
                     id="proxy-revalidate-forbids-stale-5.2.2.8"),
        pytest.param([("Cache-Control", "s-maxage=1")],
                     {"later": (("Cache-Control", "max-stale"),)}, "revalidate",
                     id="s-maxage-forbids-stale-5.2.2.10"),
        pytest.param([("Cache-Control", "max-age=1, stale-while-revalidate=60")], {},
                     "stale-while-revalidate", id="stale-while-revalidate-rfc5861-3"),
        pytest.param([("Cache-Control", "max-age=1, stale-while-revalidate=60"),
                      ("ETag", '"x"')], {"elapsed": 62}, "revalidate",
                     id="stale-while-revalidate-window-over"),
        pytest.param([("Cache-Control", "max-age=60"), ("ETag", '"x"')],
                     {"policy": CachePolicy(default_ttl=1.0, max_ttl=1.0)}, "revalidate",
                     id="cloudfront-max-ttl-clamps"),
        pytest.param([("Cache-Control", "max-age=0")], {"policy": CachePolicy(min_ttl=10.0)},
                     "fresh", id="cloudfront-min-ttl-clamps"),
        pytest.param([("Cache-Control", "no-cache")], {"policy": CachePolicy(min_ttl=10.0)},
                     "fresh", id="cloudfront-min-ttl-overrides-no-cache"),
        pytest.param([("Content-Type", "text/plain")], {"policy": CachePolicy(default_ttl=60.0)},
                     "fresh", id="cloudfront-default-ttl-without-headers"),
        pytest.param([("ETag", '"x"')],
                     {"policy": CachePolicy(default_ttl=60.0), "elapsed": 61}, "revalidate",
                     id="cloudfront-default-ttl-expires"),
    ],
)  # fmt: skip
def test_use_of_stored_response(
    response: list[tuple[str, str]], kwargs: dict[str, object], expected: str
) -> None:
    assert judge(response, **kwargs) == expected  # type: ignore[arg-type]


def test_current_age_adds_response_delay_and_residence() -> None:
    # RFC 9111 §4.2.3: corrected_initial_age = max(apparent_age, age_value + response_delay);
    # current_age = corrected_initial_age + resident_time.
    headers = h(("Date", date(0)), ("Age", "30"), ("Cache-Control", "max-age=600"))
    freshness = compute_freshness(RFC, 200, headers, T0, T0 + 2)
    assert freshness.initial_age == 32
    assert freshness.age(T0 + 12) == 42
    assert freshness.age_header(T0 + 12.9) == b"42"


def test_stale_if_error_window() -> None:
    headers = h(("Cache-Control", "max-age=2, stale-if-error=60"))
    freshness = compute_freshness(RFC, 200, headers, T0, T0)
    none = parse_request_directives(RFC, [])
    assert usable_on_error(freshness, none, T0 + 30)
    assert not usable_on_error(freshness, none, T0 + 63)
    # The request may ask for a window of its own (RFC 5861 §4).
    asked = parse_request_directives(RFC, h(("Cache-Control", "stale-if-error=120")))
    assert usable_on_error(freshness, asked, T0 + 100)
    strict = compute_freshness(
        RFC, 200, h(("Cache-Control", "max-age=2, stale-if-error=60, must-revalidate")), T0, T0
    )
    assert not usable_on_error(strict, none, T0 + 30)
    # CloudFront's way: at any age, unless the response forbids serving it stale.
    assert usable_on_error(freshness, none, T0 + 86400, unbounded=True)
    assert not usable_on_error(strict, none, T0 + 30, unbounded=True)
    no_cache = compute_freshness(RFC, 200, h(("Cache-Control", "max-age=2, no-cache")), T0, T0)
    assert not usable_on_error(no_cache, none, T0 + 30, unbounded=True)


def test_request_directives() -> None:
    parsed = parse_request_directives(
        RFC, h(("Cache-Control", "max-age=5, min-fresh=3, only-if-cached, max-stale"))
    )
    assert (parsed.max_age, parsed.min_fresh, parsed.only_if_cached) == (5, 3, True)
    assert parsed.max_stale == math.inf
    ignoring = CachePolicy(honor_request_directives=False)
    assert not parse_request_directives(ignoring, h(("Cache-Control", "no-cache"))).no_cache


# -- keys and Vary ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "query", "headers", "expected"),
    [
        pytest.param(CachePolicy(), b"a=1", (), CacheKey(b"/p"), id="query-none"),
        pytest.param(CachePolicy(query_strings="all"), b"b=2&a=1", (), CacheKey(b"/p", b"?b=2&a=1"),
                     id="query-all-as-sent"),
        pytest.param(CachePolicy(query_strings="list", query_string_names=("a", "c")),
                     b"c=3&b=2&a=1", (), CacheKey(b"/p", b"?a=1&c=3"), id="query-list-sorted"),
        pytest.param(CachePolicy(query_strings="all_except", query_string_names=("utm",)),
                     b"utm=x&id=7", (), CacheKey(b"/p", b"?id=7"), id="query-all-except"),
        pytest.param(CachePolicy(headers=("X-Device",)), b"", (("X-Device", " mobile "),),
                     CacheKey(b"/p", b"\nh:x-device=mobile"), id="header-selected-normalised"),
        pytest.param(CachePolicy(headers=("X-Device",)), b"", (),
                     CacheKey(b"/p", b"\nh:x-device"), id="header-absent-differs-from-empty"),
        pytest.param(CachePolicy(cookies="list", cookie_names=("session",)), b"",
                     (("Cookie", "theme=dark; session=abc"),),
                     CacheKey(b"/p", b"\nc:session=abc"), id="cookie-list"),
        pytest.param(CachePolicy(cookies="all"), b"", (("Cookie", "b=2; a=1"),),
                     CacheKey(b"/p", b"\nc:a=1\nc:b=2"), id="cookies-all-sorted"),
        pytest.param(CachePolicy(compress=True), b"",
                     (("Accept-Encoding", "gzip, deflate, br"),), CacheKey(b"/p", b"\nae:br"),
                     id="compress-brotli-preferred"),
        pytest.param(CachePolicy(compress=True), b"",
                     (("Accept-Encoding", "gzip;q=0, deflate"),), CacheKey(b"/p", b"\nae:"),
                     id="compress-q0-is-refused"),
    ],
)  # fmt: skip
def test_cache_key(
    policy: CachePolicy, query: bytes, headers: tuple[tuple[str, str], ...], expected: CacheKey
) -> None:
    assert cache_key(policy, b"/p", query, h(*headers)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("gzip", b"gzip", id="gzip"),
        pytest.param("br;q=0.5, gzip", b"br", id="br-any-positive-q"),
        pytest.param("x-gzip", b"gzip", id="x-gzip"),
        pytest.param("identity", b"", id="identity"),
        pytest.param("BR", b"br", id="case-insensitive"),
    ],
)
def test_accept_encoding_token(value: str, expected: bytes) -> None:
    assert accept_encoding_token(h(("Accept-Encoding", value))) == expected


def test_normalized_request_headers_carry_one_coding() -> None:
    policy = CachePolicy(compress=True)
    out = normalize_request_headers(policy, h(("Accept-Encoding", "gzip, br"), ("X", "1")))
    assert out == [(b"x", b"1"), (b"accept-encoding", b"br")]
    assert normalize_request_headers(policy, h(("Accept-Encoding", "identity"))) == []


@pytest.mark.parametrize(
    ("stored", "later", "match"),
    [
        pytest.param((("Foo", "1"),), (("Foo", "1"),), True, id="vary-match"),
        pytest.param((("Foo", "1"),), (("Foo", "2"),), False, id="vary-no-match"),
        pytest.param((("Foo", "1"),), (), False, id="vary-omitted"),
        pytest.param((), (), True, id="both-omitted-match"),
        pytest.param((("Foo", "1,2"),), (("Foo", " 1, 2 "),), True, id="whitespace-normalised"),
        pytest.param((("Foo", "1, 2"),), (("Foo", "1"), ("Foo", "2")), True,
                     id="lines-combined-4.1"),
        pytest.param((("Accept-Language", "en, de"),), (("Accept-Language", "de, EN"),), True,
                     id="language-order-and-case"),
        pytest.param((("Foo", "a, b"),), (("Foo", "b, a"),), False, id="order-matters-elsewhere"),
    ],
)  # fmt: skip
def test_vary_selection(
    stored: tuple[tuple[str, str], ...], later: tuple[tuple[str, str], ...], match: bool
) -> None:
    name = stored[0][0] if stored else "Foo"
    names = vary_names(h(("Vary", name)))
    assert names is not None
    assert (selecting_values(names, h(*stored)) == selecting_values(names, h(*later))) is match


def test_vary_names_sorted_and_star() -> None:
    assert vary_names(h(("Vary", "Foo, bar"), ("Vary", "BAZ"))) == (b"bar", b"baz", b"foo")
    assert vary_names(h(("Vary", "*, *"))) is None


# -- validation (RFC 9111 §4.3) --------------------------------------------------------------


def test_conditional_request_from_stored_validators() -> None:
    stored = h(("ETag", "abcdef"), ("Last-Modified", date(-100)))
    request = h(("Abc", "123"), ("If-None-Match", '"viewer"'), ("Range", "bytes=0-1"))
    out = conditional_headers(request, stored)
    assert out == h(
        ("Abc", "123"),  # Vary'd fields are sent with the validation (§4.3.1)
        ("If-None-Match", "abcdef"),  # as the origin wrote it, even unquoted
        ("If-Modified-Since", date(-100)),
    )
    assert conditional_headers(request, h(("Content-Type", "text/plain"))) is None


def test_update_from_304_replaces_fields_but_not_framing() -> None:
    stored = h(
        ("Content-Type", "text/plain"),
        ("Content-Length", "10"),
        ("Content-MD5", "rL0Y20zC+Fzt72VPzMSk2A=="),
        ("Test-Header", "A"),
        ("Kept", "yes"),
        ("Date", date(0)),
    )
    not_modified = h(
        ("Content-Type", "text/plain;charset=utf-8"),
        ("Content-Length", "0"),
        ("Content-MD5", "N7UdGUp1E+RbVvZSTy1R8g=="),
        ("Test-Header", "B"),
        ("Cache-Control", "max-age=3600"),
        ("Connection", "close"),
    )
    updated = dict(update_from_304(stored, not_modified, T0 + 50))
    assert updated[b"content-type"] == b"text/plain;charset=utf-8"
    assert updated[b"test-header"] == b"B"
    assert updated[b"content-length"] == b"10"  # §3.2: never from a 304
    assert updated[b"content-md5"] == b"rL0Y20zC+Fzt72VPzMSk2A=="  # the stored bytes' digest
    assert updated[b"kept"] == b"yes"
    assert updated[b"date"] == date(50).encode()  # the 304 had no Date: its receipt time
    assert b"connection" not in updated


@pytest.mark.parametrize(
    ("request_headers", "expected"),
    [
        pytest.param((("If-None-Match", '"abc"'),), 304, id="inm-match"),
        pytest.param((("If-None-Match", '"1", "abc", "2"'),), 304, id="inm-list"),
        pytest.param((("If-None-Match", 'W/"abc"'),), 304, id="inm-weak-comparison"),
        pytest.param((("If-None-Match", '"zzz"'),), None, id="inm-no-match"),
        pytest.param((("If-None-Match", '"zzz"'), ("If-Modified-Since", date(0))), None,
                     id="inm-takes-precedence-over-ims"),
        pytest.param((("If-Modified-Since", date(-3000)),), 304, id="ims-equal"),
        pytest.param((("If-Modified-Since", date(-2000)),), 304, id="ims-later"),
        pytest.param((("If-Modified-Since", date(-4000)),), None, id="ims-earlier"),
        pytest.param((("If-Match", '"zzz"'),), 412, id="if-match-fails"),
        pytest.param((("If-Unmodified-Since", date(-4000)),), 412, id="ius-fails"),
        pytest.param((), None, id="unconditional"),
    ],
)  # fmt: skip
def test_viewer_conditions_on_stored_response(
    request_headers: tuple[tuple[str, str], ...], expected: int | None
) -> None:
    stored = h(("ETag", '"abc"'), ("Last-Modified", date(-3000)), ("Date", date(0)))
    assert answer_conditions(h(*request_headers), 200, stored) == expected


def test_if_modified_since_uses_date_without_last_modified() -> None:
    # RFC 9111 §4.3.2.
    stored = h(("Date", date(0)))
    assert answer_conditions(h(("If-Modified-Since", date(-3000))), 200, stored) is None
    assert answer_conditions(h(("If-Modified-Since", date(10))), 200, stored) == 304


# -- invalidation (RFC 9111 §4.4) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "response", "expected"),
    [
        pytest.param("POST", 200, (), [b"/a/b"], id="post-invalidates-uri"),
        pytest.param("M-SEARCH", 204, (), [b"/a/b"], id="unknown-method-is-unsafe"),
        pytest.param("POST", 500, (), [], id="failed-request-invalidates-nothing"),
        pytest.param("GET", 200, (), [], id="safe-method"),
        pytest.param("PUT", 201, (("Location", "/x"),), [b"/a/b", b"/x"], id="location"),
        pytest.param("DELETE", 200, (("Content-Location", "http://site.test/y?q=1"),),
                     [b"/a/b", b"/y"], id="content-location-same-origin"),
        pytest.param("POST", 200, (("Location", "http://other.test/z"),), [b"/a/b"],
                     id="other-origin-ignored"),
        pytest.param("POST", 303, (("Location", "c"),), [b"/a/b", b"/a/c"],
                     id="relative-reference-resolved"),
    ],
)  # fmt: skip
def test_invalidated_paths(
    method: str, status: int, response: tuple[tuple[str, str], ...], expected: list[bytes]
) -> None:
    assert invalidated_paths(method, status, b"/a/b", b"site.test", h(*response)) == expected


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="default_ttl"):
        CachePolicy(min_ttl=10, default_ttl=5)
    with pytest.raises(ValueError, match="max_ttl"):
        CachePolicy(min_ttl=10, max_ttl=5, default_ttl=None)
    assert CachePolicy(headers=("B", "a", "b")).headers == ("a", "b")
    assert not CachePolicy.caching_disabled().enabled


def test_stored_range() -> None:
    # The grammar's table is in tests/fields/test_ranges.py.
    assert stored_range(h(("Content-Range", "bytes 4-9/10"))) == (4, 10, 10)
    assert stored_range(h(("Content-Range", "bytes 4-9/*"))) is None
    assert stored_range(h()) is None
