"""End-to-end tests of the CDN cache: the real `edge serve` in front of a scriptable origin.

Every rule is checked the way a user sees it: the `X-Cache` and `Age` headers, the body, and how
many requests reached the origin. Time never has to pass for freshness: the origin sends `Age`
(RFC 9111 §4.2.3) to make a response stale the moment it is stored. Each test uses paths of its
own, so the edge processes are shared per module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cache_origin import CacheOrigin, Reply, http_date, running_cache_origin
from tests.conftest import EdgeProcess, vm_kib

HIT = "Hit from edge"
MISS = "Miss from edge"
REFRESH_HIT = "RefreshHit from edge"
ERROR = "Error from edge"

Headers = dict[str, str]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_origin(engine: str) -> Iterator[CacheOrigin]:
    """A fresh origin for each engine's edges: the tests count what reaches it."""
    with running_cache_origin() as server:
        yield server


def _start(args: list[str], tmp: Path, engine: str | None = None) -> EdgeProcess:
    return EdgeProcess([*args, "--listen", "127.0.0.1:0"], engine=engine).start(tmp)


@pytest.fixture(scope="module")
def edge(
    cache_origin: CacheOrigin, tmp_path_factory: pytest.TempPathFactory, engine: str
) -> Iterator[str]:
    """`edge serve --origin URL`: one behavior, the default rfc9111 policy."""
    tmp = tmp_path_factory.mktemp("edge-rfc9111")
    process = _start(["--origin", cache_origin.url], tmp, engine)
    yield process.url
    process.stop()


@pytest.fixture(scope="module")
def client(edge: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge, timeout=20) as http:
        yield http


CLOUDFRONT_CONFIG = """
[origins.o]
url = "{url}"

[[behaviors]]
path = "/cf-min/*"
origin = "o"
cache = {{ min_ttl = 600 }}

[[behaviors]]
path = "/cf-default/*"
origin = "o"
cache = {{ default_ttl = 600 }}

[[behaviors]]
path = "/cf-max/*"
origin = "o"
cache = {{ max_ttl = 1 }}

[[behaviors]]
path = "/cf-qs/*"
origin = "o"
cache = {{ query_strings = ["v"] }}

[[behaviors]]
path = "/cf-hdr/*"
origin = "o"
cache = {{ headers = ["X-Device"] }}

[[behaviors]]
path = "/cf-cookie/*"
origin = "o"
cache = {{ cookies = ["session"] }}

[[behaviors]]
path = "/cf-off/*"
origin = "o"
cache = "disabled"

[[behaviors]]
path = "/cf-strict/*"
origin = "o"
cache = {{ serve_stale_on_error = false }}

[[behaviors]]
path = "*"
origin = "o"

[cache]
disk_directory = "{disk}"
disk_bytes = 33554432
"""


@pytest.fixture(scope="module")
def cloudfront_edge(
    cache_origin: CacheOrigin, tmp_path_factory: pytest.TempPathFactory, engine: str
) -> Iterator[tuple[str, Path]]:
    """An edge whose behaviors carry CloudFront-style cache policies (the default memory
    budget, and a disk tier): its URL and its disk directory."""
    tmp = tmp_path_factory.mktemp("edge-cloudfront")
    disk = tmp / "disk"
    config = tmp / "edge.toml"
    config.write_text(CLOUDFRONT_CONFIG.format(url=cache_origin.url, disk=disk))
    process = _start([str(config)], tmp, engine)
    yield process.url, disk
    process.stop()


@pytest.fixture(scope="module")
def cloudfront_client(cloudfront_edge: tuple[str, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cloudfront_edge[0], timeout=20) as http:
        yield http


BUDGET_CONFIG = """
[origins.o]
url = "{url}"

[[behaviors]]
path = "*"
origin = "o"

[cache]
memory_bytes = 204800
memory_object_max_bytes = 1048576
disk_directory = "{disk}"
disk_bytes = 33554432
"""


@pytest.fixture(scope="module")
def budget_edge(
    cache_origin: CacheOrigin, tmp_path_factory: pytest.TempPathFactory, engine: str
) -> Iterator[tuple[EdgeProcess, Path]]:
    """An edge with a 200 KB memory budget and a disk tier for bodies over 1 MB."""
    tmp = tmp_path_factory.mktemp("edge-budget")
    disk = tmp / "disk"
    config = tmp / "edge.toml"
    config.write_text(BUDGET_CONFIG.format(url=cache_origin.url, disk=disk))
    process = _start([str(config)], tmp, engine)
    yield process, disk
    process.stop()


def _get(client: httpx.Client, target: str, headers: Headers | None = None) -> httpx.Response:
    return client.get(target, headers=headers or {})


def _x_cache(response: httpx.Response) -> str:
    return str(response.headers.get("x-cache", ""))


def _cacheable(body: bytes, *extra: tuple[str, str]) -> Reply:
    return Reply(200, [("Cache-Control", "max-age=600"), *extra], body)


# -- storing or not (RFC 9111 §3) ----------------------------------------------------------------

TEN_DAYS = 10 * 86400

STORABLE = [
    pytest.param(200, [("Cache-Control", "max-age=600")], {}, True, id="max-age-s5.2.2.1"),
    pytest.param(
        200, [("Cache-Control", "max-age=0, s-maxage=600")], {}, True, id="s-maxage-wins-s5.2.2.10"
    ),
    pytest.param(
        200, [("Cache-Control", "max-age=600, s-maxage=0")], {}, False, id="s-maxage-0-wins"
    ),
    pytest.param(200, [("Expires", http_date(600))], {}, True, id="expires-s5.3"),
    pytest.param(200, [("Expires", "0")], {}, False, id="invalid-expires-is-past-s5.3"),
    pytest.param(200, [("Last-Modified", http_date(-TEN_DAYS))], {}, True, id="heuristic-s4.2.2"),
    pytest.param(200, [], {}, False, id="no-freshness-no-validator"),
    pytest.param(
        200, [("Cache-Control", "max-age=600, no-store")], {}, False, id="no-store-s5.2.2.5"
    ),
    pytest.param(
        200, [("Cache-Control", "private, max-age=600")], {}, False, id="private-s5.2.2.7"
    ),
    pytest.param(
        200,
        [("Cache-Control", "max-age=600")],
        {"Cache-Control": "no-store"},
        False,
        id="request-no-store-s5.2.1.5",
    ),
    pytest.param(
        200,
        [("Cache-Control", "max-age=600")],
        {"Authorization": "Bearer t"},
        False,
        id="authorization-s3.5",
    ),
    pytest.param(
        200,
        [("Cache-Control", "public, max-age=600")],
        {"Authorization": "Bearer t"},
        True,
        id="authorization-public-s3.5",
    ),
    pytest.param(
        200,
        [("Cache-Control", "s-maxage=600")],
        {"Authorization": "Bearer t"},
        True,
        id="authorization-s-maxage-s3.5",
    ),
    pytest.param(
        200,
        [("Cache-Control", "max-age=600, must-revalidate")],
        {"Authorization": "Bearer t"},
        True,
        id="authorization-must-revalidate-s3.5",
    ),
    pytest.param(500, [], {}, False, id="500-without-freshness-s3"),
    pytest.param(404, [("Cache-Control", "max-age=600")], {}, True, id="404-with-max-age-s3"),
    pytest.param(200, [("Cache-Control", "max-age=600"), ("Vary", "*")], {}, False, id="vary-*"),
    pytest.param(
        200, [("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=600")], {}, True,
        id="cdn-cache-control-rfc9213",
    ),
    pytest.param(
        200, [("Cache-Control", "no-store"), ("Surrogate-Control", "max-age=600;edge")], {}, True,
        id="surrogate-control-for-this-device",
    ),
    pytest.param(
        200, [("Cache-Control", "max-age=600"), ("Surrogate-Control", "no-store")], {}, False,
        id="surrogate-control-no-store",
    ),
    pytest.param(
        200, [("Cache-Control", "no-store"), ("Surrogate-Control", "max-age=600;other")], {},
        False, id="surrogate-control-for-another-device",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("status", "reply_headers", "request_headers", "stored"), STORABLE)
def test_stored_or_not(
    client: httpx.Client,
    cache_origin: CacheOrigin,
    request: pytest.FixtureRequest,
    status: int,
    reply_headers: list[tuple[str, str]],
    request_headers: Headers,
    stored: bool,
) -> None:
    path = f"/store/{request.node.callspec.id}"
    body = f"body of {path}".encode()
    cache_origin.script(path, Reply(status, reply_headers, body))
    first = _get(client, path, request_headers)
    second = _get(client, path, request_headers)
    assert (first.status_code, second.status_code) == (status, status)
    assert first.content == second.content == body
    assert _x_cache(first) == (MISS if status < 400 else ERROR)
    if stored:
        assert _x_cache(second) == HIT
        assert cache_origin.count(path) == 1
    else:
        assert _x_cache(second) != HIT
        assert cache_origin.count(path) == 2


def test_origin_is_told_the_surrogate_device_name(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """Surrogate-Capability names this cache, so the origin can target Surrogate-Control."""
    path = "/surrogate/capability"
    cache_origin.script(path, _cacheable(b"x"))
    _get(client, path)
    assert cache_origin.seen(path)[0].headers["surrogate-capability"] == 'edge="Surrogate/1.0"'


@pytest.mark.parametrize(
    ("cache_control", "field"),
    [
        pytest.param(
            'no-cache="Set-Cookie", max-age=600', "set-cookie", id="no-cache-field-s5.2.2.4"
        ),
        pytest.param('private="X-User", max-age=600', "x-user", id="private-field-s5.2.2.7"),
    ],
)
def test_qualified_directive_keeps_its_field_out_of_the_cache(
    client: httpx.Client,
    cache_origin: CacheOrigin,
    request: pytest.FixtureRequest,
    cache_control: str,
    field: str,
) -> None:
    """A field named by no-cache / private is not stored; the rest of the response is."""
    path = f"/store-field/{request.node.callspec.id}"
    cache_origin.script(
        path, Reply(200, [("Cache-Control", cache_control), (field, "secret")], b"x")
    )
    first = _get(client, path)
    assert first.headers.get(field) == "secret"
    second = _get(client, path)
    assert _x_cache(second) == HIT
    assert field not in second.headers


def test_vary_selects_by_the_request_header(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §4.1: a stored response is used only for requests with the same Vary'd values."""
    path = "/vary/language"
    cache_origin.script(path, _cacheable(b"some language", ("Vary", "Accept-Language")))
    steps = [("en", MISS), ("en", HIT), ("fr", MISS), ("fr", HIT), ("en", HIT)]
    seen = [_x_cache(_get(client, path, {"Accept-Language": lang})) for lang, _ in steps]
    assert seen == [result for _, result in steps]
    assert cache_origin.count(path) == 2


# -- what a hit looks like ------------------------------------------------------------------------


def test_hit_carries_age_from_the_origin_and_residence(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §5.1 / §4.2.3: Age on a hit is the age the origin reported plus time stored."""
    path = "/age/reported"
    cache_origin.script(path, Reply(200, [("Cache-Control", "max-age=600"), ("Age", "100")], b"a"))
    assert _x_cache(_get(client, path)) == MISS
    hit = _get(client, path)
    assert _x_cache(hit) == HIT
    assert 100 <= int(hit.headers["age"]) < 110


def test_a_stored_miss_carries_the_age_a_hit_would(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §4.2.3: the time the origin took counts (response_delay); the origin's own Age
    is corrected, never dropped."""
    slow, aged = "/age/slow-origin", "/age/origin-says"
    cache_origin.script(
        slow, Reply(200, [("Cache-Control", "max-age=600")], b"s", delay_seconds=1.2)
    )
    cache_origin.script(aged, Reply(200, [("Cache-Control", "max-age=600"), ("Age", "100")], b"a"))
    first = _get(client, slow)
    assert (_x_cache(first), int(first.headers["age"])) == (MISS, 1)
    second = _get(client, aged)
    assert _x_cache(second) == MISS
    assert 100 <= int(second.headers["age"]) <= 101
    cache_origin.script("/age/quick", _cacheable(b"q"))
    quick = _get(client, "/age/quick")
    assert (_x_cache(quick), quick.headers.get("age")) == (MISS, None)


def test_hit_age_starts_near_zero(client: httpx.Client, cache_origin: CacheOrigin) -> None:
    path = "/age/fresh"
    cache_origin.script(path, _cacheable(b"b"))
    _get(client, path)
    hit = _get(client, path)
    assert _x_cache(hit) == HIT
    assert 0 <= int(hit.headers["age"]) <= 2


def test_origin_error_is_an_error_result(client: httpx.Client, cache_origin: CacheOrigin) -> None:
    path = "/xcache/error"
    cache_origin.script(path, Reply(503, [], b"down"))
    answer = _get(client, path)
    assert (answer.status_code, _x_cache(answer)) == (503, ERROR)


def test_head_is_answered_from_a_stored_get(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9110 §9.3.2 / RFC 9111 §4: HEAD may be answered from the stored GET response."""
    path = "/head/stored"
    body = b"0123456789" * 10
    cache_origin.script(path, _cacheable(body, ("Content-Type", "text/plain")))
    assert _x_cache(_get(client, path)) == MISS
    head = client.head(path)
    assert head.status_code == 200
    assert _x_cache(head) == HIT
    assert head.headers["content-length"] == str(len(body))
    assert head.headers["content-type"] == "text/plain"
    assert head.content == b""
    assert cache_origin.count(path) == 1


def test_head_answered_by_the_origin_freshens_the_stored_get(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §4.3.5: a HEAD's 200 updates the stale stored GET it matches."""
    path = "/head/freshens"
    cache_origin.script(
        path,
        # Age 5 > max-age 1: stale the moment it is stored.
        Reply(200, [("Cache-Control", "max-age=1"), ("Age", "5"), ("Template-A", "1")], b"body"),
        Reply(200, [("Cache-Control", "max-age=600"), ("Template-B", "2")], b"body"),
    )
    assert _get(client, path).content == b"body"
    head = client.head(path)
    assert (head.status_code, _x_cache(head)) == (200, REFRESH_HIT)
    assert (head.headers["template-a"], head.headers["template-b"]) == ("1", "2")
    after = _get(client, path)
    assert (_x_cache(after), after.content, after.headers["template-b"]) == (HIT, b"body", "2")
    assert [seen.method for seen in cache_origin.seen(path)] == ["GET", "HEAD"]


def test_head_showing_another_representation_drops_the_stored_get(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §4.3.5: a HEAD whose ETag differs says the stored GET is no longer current."""
    path = "/head/changed"
    cache_origin.script(
        path,
        Reply(200, [("Cache-Control", "max-age=1"), ("Age", "5"), ("ETag", '"v1"')], b"old"),
        Reply(200, [("Cache-Control", "max-age=600"), ("ETag", '"v2"')], b"new"),
        Reply(200, [("Cache-Control", "max-age=600"), ("ETag", '"v2"')], b"new"),
    )
    assert _get(client, path).content == b"old"
    head = client.head(path)
    assert (head.status_code, head.headers["etag"], _x_cache(head)) == (200, '"v2"', MISS)
    after = _get(client, path)
    assert (_x_cache(after), after.content) == (MISS, b"new")


def test_a_stored_part_answers_ranges_inside_it(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §3.3: a 206 may be stored and used for later requests for bytes it holds."""
    path = "/partial/stored"
    cache_origin.script(
        path,
        Reply(
            206, [("Cache-Control", "max-age=600"), ("Content-Range", "bytes 4-9/10")], b"456789"
        ),
        Reply(200, [("Cache-Control", "max-age=600")], b"0123456789"),
    )
    first = _get(client, path, {"Range": "bytes=-6"})
    assert (first.status_code, first.content, _x_cache(first)) == (206, b"456789", MISS)
    for asked, content, content_range in [
        ("bytes=-6", b"456789", "bytes 4-9/10"),
        ("bytes=6-8", b"678", "bytes 6-8/10"),
        ("bytes=7-", b"789", "bytes 7-9/10"),
        ("bytes=-1", b"9", "bytes 9-9/10"),
    ]:
        part = _get(client, path, {"Range": asked})
        assert (part.status_code, part.content, _x_cache(part)) == (206, content, HIT)
        assert part.headers["content-range"] == content_range
    assert cache_origin.count(path) == 1
    # Bytes it does not hold, or the whole: the origin is asked, and the whole is kept.
    whole = _get(client, path)
    assert (whole.status_code, whole.content, _x_cache(whole)) == (200, b"0123456789", MISS)
    head = _get(client, path, {"Range": "bytes=0-1"})
    assert (head.status_code, head.content, _x_cache(head)) == (206, b"01", HIT)
    assert cache_origin.count(path) == 2


def test_query_string_is_part_of_the_key(client: httpx.Client, cache_origin: CacheOrigin) -> None:
    """RFC 9111 §2: the primary key is the target URI, query included."""
    path = "/query/page"
    cache_origin.script(path, _cacheable(b"page"))
    steps = [("?x=1", MISS), ("?x=1", HIT), ("?x=2", MISS), ("", MISS), ("?x=2", HIT)]
    seen = [_x_cache(_get(client, path + query)) for query, _ in steps]
    assert seen == [result for _, result in steps]
    assert [s.target for s in cache_origin.seen(path)] == [path + "?x=1", path + "?x=2", path]


@pytest.mark.parametrize(
    ("request_headers", "status", "body"),
    [
        pytest.param({"If-None-Match": '"h1"'}, 304, b"", id="if-none-match-match-rfc9110-s13.1.2"),
        pytest.param({"If-None-Match": '"other"'}, 200, b"0123456789", id="if-none-match-other"),
        pytest.param(
            {"If-Modified-Since": "Wed, 02 Jul 2025 10:00:00 GMT"}, 304, b"",
            id="if-modified-since-later-rfc9110-s13.1.3",
        ),
        pytest.param(
            {"If-Modified-Since": "Mon, 30 Jun 2025 10:00:00 GMT"}, 200, b"0123456789",
            id="if-modified-since-earlier",
        ),
        pytest.param({"Range": "bytes=2-5"}, 206, b"2345", id="range-rfc9110-s14.2"),
        pytest.param({"Range": "bytes=50-60"}, 416, b"", id="range-unsatisfiable"),
    ],
)  # fmt: skip
def test_hit_answers_the_viewers_own_conditions(
    client: httpx.Client,
    cache_origin: CacheOrigin,
    request: pytest.FixtureRequest,
    request_headers: Headers,
    status: int,
    body: bytes,
) -> None:
    """RFC 9111 §4.3.2: a cache answers conditional (and range) requests from what it stores."""
    path = f"/conditions/{request.node.callspec.id}"
    cache_origin.script(
        path,
        _cacheable(
            b"0123456789", ("ETag", '"h1"'), ("Last-Modified", "Tue, 01 Jul 2025 10:00:00 GMT")
        ),
    )
    assert _get(client, path).status_code == 200
    answer = _get(client, path, request_headers)
    assert (answer.status_code, answer.content, _x_cache(answer)) == (status, body, HIT)
    assert cache_origin.count(path) == 1


def test_viewer_304_from_the_origin_is_not_stored(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """A 304 answering the viewer's own validators is passed on, never stored (§3)."""
    path = "/conditions/viewer-304"
    cache_origin.script(
        path, _cacheable(b"full", ("ETag", '"v"')), not_modified=Reply(304, [("ETag", '"v"')])
    )
    first = _get(client, path, {"If-None-Match": '"v"'})
    assert first.status_code == 304
    second = _get(client, path)
    assert (second.status_code, second.content) == (200, b"full")
    assert cache_origin.seen(path)[1].headers.get("if-none-match") is None


# -- validation (RFC 9111 §4.3) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "condition"),
    [
        pytest.param(("ETag", '"v1"'), ("if-none-match", '"v1"'), id="etag-s4.3.1"),
        pytest.param(
            ("Last-Modified", "Tue, 01 Jul 2025 10:00:00 GMT"),
            ("if-modified-since", "Tue, 01 Jul 2025 10:00:00 GMT"),
            id="last-modified-s4.3.1",
        ),
    ],
)
def test_revalidation_with_304_refreshes_the_stored_response(
    client: httpx.Client,
    cache_origin: CacheOrigin,
    validator: tuple[str, str],
    condition: tuple[str, str],
) -> None:
    """A stale response with a validator is revalidated; a 304 freshens it and updates its
    headers (§4.3.4), and the viewer gets the whole stored response."""
    path = f"/revalidate/{validator[0].lower()}"
    body = b"the stored representation"
    cache_origin.script(
        path,
        Reply(200, [("Cache-Control", "max-age=0"), validator, ("X-Revision", "1")], body),
        not_modified=Reply(304, [("Cache-Control", "max-age=600"), ("X-Revision", "2")]),
    )
    first = _get(client, path)
    assert (_x_cache(first), first.headers["x-revision"]) == (MISS, "1")
    second = _get(client, path)
    assert second.status_code == 200
    assert _x_cache(second) == REFRESH_HIT
    assert second.content == body
    assert second.headers["x-revision"] == "2"
    assert second.headers[validator[0]] == validator[1]
    name, value = condition
    assert cache_origin.seen(path)[1].headers.get(name) == value
    # The 304's max-age=600 now applies: a plain hit, no third origin request.
    third = _get(client, path)
    assert (_x_cache(third), third.headers["x-revision"], third.content) == (HIT, "2", body)
    assert cache_origin.count(path) == 2


def test_no_cache_response_is_stored_but_revalidated_every_time(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §5.2.2.4: no-cache may be stored, but must be validated before each use."""
    path = "/revalidate/no-cache"
    cache_origin.script(
        path,
        Reply(200, [("Cache-Control", "no-cache"), ("ETag", '"nc"')], b"validated body"),
        not_modified=Reply(304, [("ETag", '"nc"')]),
    )
    results = [_get(client, path) for _ in range(3)]
    assert [_x_cache(r) for r in results] == [MISS, REFRESH_HIT, REFRESH_HIT]
    assert all(r.content == b"validated body" for r in results)
    assert [s.headers.get("if-none-match") for s in cache_origin.seen(path)] == [
        None,
        '"nc"',
        '"nc"',
    ]


def test_a_304_for_another_etag_fetches_the_whole_response(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §4.3.4: a 304 naming another representation does not freshen the stored one."""
    path = "/revalidate/other-etag"
    cache_origin.script(
        path,
        Reply(200, [("Cache-Control", "max-age=0"), ("ETag", '"a"')], b"version a"),
        Reply(200, [("Cache-Control", "max-age=600"), ("ETag", '"b"')], b"version b"),
        not_modified=Reply(304, [("ETag", '"b"')]),
    )
    assert _get(client, path).content == b"version a"
    second = _get(client, path)
    assert second.status_code == 200
    assert second.content == b"version b"
    assert [s.headers.get("if-none-match") for s in cache_origin.seen(path)] == [None, '"a"', None]


# -- stale responses and origin failures (RFC 9111 §4.2.4, RFC 5861) -----------------------------

STALE_ON_FAILURE = [
    pytest.param(
        "max-age=10, must-revalidate", Reply(drop=True), (502, 504), False,
        id="must-revalidate-origin-down-s5.2.2.2",
    ),
    pytest.param(
        "max-age=10, must-revalidate, stale-if-error=600", Reply(500, [], b"boom"), (500,), False,
        id="must-revalidate-beats-stale-if-error",
    ),
    pytest.param(
        "max-age=10, stale-if-error=600", Reply(500, [], b"boom"), (200,), True,
        id="stale-if-error-on-500-rfc5861-s4",
    ),
    pytest.param(
        "max-age=10, stale-if-error=600", Reply(drop=True), (200,), True,
        id="stale-if-error-origin-down-rfc5861-s4",
    ),
    # CloudFront's way (the policy's serve_stale_on_error): an expired copy stands in for a
    # failing origin even without stale-if-error; RFC 9111 §4.2.4 allows it when disconnected.
    pytest.param(
        "max-age=10", Reply(503, [], b"busy"), (200,), True,
        id="stale-on-503-like-cloudfront",
    ),
    pytest.param(
        "max-age=10", Reply(drop=True), (200,), True,
        id="stale-when-the-origin-closes",
    ),
    pytest.param(
        "max-age=10", Reply(501, [], b"no such method"), (501,), False,
        id="501-is-an-answer-not-an-outage",
    ),
    pytest.param(
        "max-age=10, no-cache", Reply(503, [], b"busy"), (503,), False,
        id="no-cache-never-unvalidated-s5.2.2.4",
    ),
    pytest.param(
        "s-maxage=10", Reply(drop=True), (502, 504), False,
        id="s-maxage-is-proxy-revalidate-s5.2.2.10",
    ),
    pytest.param(
        "max-age=10", Reply(500, [], b"boom"), (200,), True,
        id="request-stale-if-error-rfc5861-s4",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("cache_control", "failure", "statuses", "stale"), STALE_ON_FAILURE)
def test_stale_response_when_the_origin_fails(
    client: httpx.Client,
    cache_origin: CacheOrigin,
    request: pytest.FixtureRequest,
    cache_control: str,
    failure: Reply,
    statuses: tuple[int, ...],
    stale: bool,
) -> None:
    case = request.node.callspec.id
    path = f"/stale/{case}"
    # Age 20 > max-age 10: stale the moment it is stored.
    cache_origin.script(
        path, Reply(200, [("Cache-Control", cache_control), ("Age", "20")], b"old body"), failure
    )
    assert _get(client, path).content == b"old body"
    asked = {"Cache-Control": "stale-if-error=600"} if case.startswith("request-") else {}
    answer = _get(client, path, asked)
    assert answer.status_code in statuses
    assert (answer.content == b"old body") is stale
    assert cache_origin.count(path) >= 2  # the origin was asked before anything stale was used


def test_stale_while_revalidate_serves_stale_and_refreshes_once(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 5861 §3: served stale at once, refreshed in the background by one request."""
    path = "/swr/page"
    cache_origin.script(
        path,
        Reply(
            200, [("Cache-Control", "max-age=1, stale-while-revalidate=600"), ("Age", "5")], b"v1"
        ),
        # The refresh is slow, so the stale answers below come while it is under way.
        Reply(200, [("Cache-Control", "max-age=600")], b"v2", delay_seconds=3.0),
    )
    assert _get(client, path).content == b"v1"
    started = time.monotonic()
    stale = [_get(client, path) for _ in range(5)]
    assert time.monotonic() - started < 2.5  # none of them waited for the 3 s refresh
    assert [(r.content, _x_cache(r)) for r in stale] == [(b"v1", HIT)] * 5
    cache_origin.wait_for_count(path, 2)
    deadline = time.monotonic() + 10
    while (latest := _get(client, path)).content != b"v2":
        assert latest.content == b"v1"
        assert time.monotonic() < deadline, "the background refresh never landed"
    assert _x_cache(latest) == HIT
    assert cache_origin.count(path) == 2


def test_stale_while_revalidate_refresh_by_304(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 5861 §3 with a validator: the background refresh is conditional, and its 304 freshens
    the stored response (RFC 9111 §4.3.4)."""
    path = "/swr/etag"
    cache_origin.script(
        path,
        Reply(
            200,
            [("Cache-Control", "max-age=1, stale-while-revalidate=600"), ("Age", "5"),
             ("ETag", '"s1"'), ("X-Revision", "1")],
            b"same body",
        ),
        not_modified=Reply(304, [("Cache-Control", "max-age=600"), ("X-Revision", "2")]),
    )  # fmt: skip
    _get(client, path)
    stale = _get(client, path)
    assert (_x_cache(stale), stale.headers["x-revision"]) == (HIT, "1")
    cache_origin.wait_for_count(path, 2)
    assert cache_origin.seen(path)[1].headers.get("if-none-match") == '"s1"'
    deadline = time.monotonic() + 10
    while (latest := _get(client, path)).headers["x-revision"] != "2":
        assert time.monotonic() < deadline, "the background refresh never landed"
    assert (_x_cache(latest), latest.content) == (HIT, b"same body")
    assert int(latest.headers["age"]) < 5  # the 304 restarted its age
    assert cache_origin.count(path) == 2


# -- request directives (RFC 9111 §5.2.1) --------------------------------------------------------

REQUEST_DIRECTIVES = [
    pytest.param("no-cache", ("ETag", '"r"'), REFRESH_HIT, 2, id="no-cache-revalidates-s5.2.1.4"),
    pytest.param("no-cache", None, MISS, 2, id="no-cache-without-validator-refetches"),
    pytest.param("max-age=0", ("ETag", '"r"'), REFRESH_HIT, 2, id="max-age-0-s5.2.1.1"),
    pytest.param("max-age=3600", None, HIT, 1, id="max-age-larger-than-age"),
    pytest.param("min-fresh=3600", ("ETag", '"r"'), REFRESH_HIT, 2, id="min-fresh-s5.2.1.3"),
    pytest.param("only-if-cached", None, HIT, 1, id="only-if-cached-stored-s5.2.1.7"),
]


@pytest.mark.parametrize(("directive", "validator", "result", "origin_count"), REQUEST_DIRECTIVES)
def test_request_directives(
    client: httpx.Client,
    cache_origin: CacheOrigin,
    request: pytest.FixtureRequest,
    directive: str,
    validator: tuple[str, str] | None,
    result: str,
    origin_count: int,
) -> None:
    path = f"/request-cc/{request.node.callspec.id}"
    extra = [validator] if validator else []
    cache_origin.script(
        path,
        Reply(200, [("Cache-Control", "max-age=600"), *extra], b"stored"),
        not_modified=Reply(304, []),
    )
    assert _x_cache(_get(client, path)) == MISS
    answer = _get(client, path, {"Cache-Control": directive})
    assert (answer.status_code, answer.content, _x_cache(answer)) == (200, b"stored", result)
    assert cache_origin.count(path) == origin_count
    if origin_count == 2:
        # The viewer's directive travels on to the origin (§5.2.1).
        assert directive in cache_origin.seen(path)[1].headers.get("cache-control", "")


def test_only_if_cached_with_nothing_stored_is_504(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §5.2.1.7: only-if-cached and nothing stored: 504, the origin is not asked."""
    path = "/request-cc/only-if-cached-empty"
    cache_origin.script(path, _cacheable(b"never fetched"))
    answer = _get(client, path, {"Cache-Control": "only-if-cached"})
    assert answer.status_code == 504
    assert cache_origin.count(path) == 0


# -- invalidation by unsafe methods (RFC 9111 §4.4) -----------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "invalidates"),
    [
        pytest.param("POST", 200, True, id="post"),
        pytest.param("PUT", 204, True, id="put"),
        pytest.param("DELETE", 200, True, id="delete"),
        pytest.param("PATCH", 200, True, id="patch"),
        # `edge serve --origin` forwards extension methods; any unsafe one invalidates.
        pytest.param("M-SEARCH", 200, True, id="extension-method"),
        pytest.param("POST", 500, False, id="failed-post-keeps-it"),
    ],
)
def test_unsafe_method_invalidates_the_stored_response(
    client: httpx.Client,
    cache_origin: CacheOrigin,
    request: pytest.FixtureRequest,
    method: str,
    status: int,
    invalidates: bool,
) -> None:
    path = f"/invalidate/{request.node.callspec.id}"
    stored = _cacheable(b"stored")
    cache_origin.script(path, stored, Reply(status, [], b"" if status == 204 else b"done"), stored)
    assert [_x_cache(_get(client, path)) for _ in range(2)] == [MISS, HIT]
    unsafe = client.request(method, path, content=b"new state")
    assert unsafe.status_code == status
    assert cache_origin.seen(path)[1].body == b"new state"
    after = _get(client, path)
    assert _x_cache(after) == (MISS if invalidates else HIT)
    assert cache_origin.count(path) == (3 if invalidates else 2)


def test_unsafe_method_invalidates_its_location(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §4.4: the URIs in Location / Content-Location of the same origin too."""
    target = "/invalidate/location/item"
    form = "/invalidate/location/form"
    cache_origin.script(target, _cacheable(b"item"))
    cache_origin.script(form, Reply(201, [("Location", target)], b"created"))
    assert [_x_cache(_get(client, target)) for _ in range(2)] == [MISS, HIT]
    assert client.post(form, content=b"x").status_code == 201
    assert _x_cache(_get(client, target)) == MISS


def test_unsafe_method_invalidates_every_query_of_the_path(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """RFC 9111 §4.4 names the target URI; the edge drops the path's stored queries with it."""
    path = "/invalidate/query/list"
    cache_origin.script(path, _cacheable(b"list"))
    for query in ("?page=1", "?page=2"):
        assert [_x_cache(_get(client, path + query)) for _ in range(2)] == [MISS, HIT]
    assert client.post(path + "?page=1", content=b"x").status_code == 200
    assert [_x_cache(_get(client, path + q)) for q in ("?page=1", "?page=2")] == [MISS, MISS]


# -- request collapsing ---------------------------------------------------------------------------


async def _concurrent_gets(base_url: str, target: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        return list(await asyncio.gather(*(http.get(target) for _ in range(count))))


def test_concurrent_misses_make_one_origin_request(edge: str, cache_origin: CacheOrigin) -> None:
    """Request collapsing (RFC 9111 §4: one fetch may satisfy many waiting requests)."""
    path = "/collapse/cacheable"
    # The origin is slow: all 50 requests reach the edge while the first one is at the origin.
    cache_origin.script(path, Reply(200, [("Cache-Control", "max-age=600")], b"one", 1.0))
    answers = asyncio.run(_concurrent_gets(edge, path, 50))
    assert [a.status_code for a in answers] == [200] * 50
    assert {a.content for a in answers} == {b"one"}
    assert cache_origin.count(path) == 1
    results = sorted(_x_cache(a) for a in answers)
    assert results.count(MISS) == 1
    assert results.count(HIT) == 49


def test_concurrent_revalidations_make_one_origin_request(
    edge: str, client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    """Collapsing applies to revalidation too: one conditional request, one 304 for all."""
    path = "/collapse/revalidate"
    cache_origin.script(
        path,
        Reply(200, [("Cache-Control", "max-age=0"), ("ETag", '"c"')], b"validated"),
        not_modified=Reply(304, [("Cache-Control", "max-age=600")], delay_seconds=1.0),
    )
    assert _x_cache(_get(client, path)) == MISS
    answers = asyncio.run(_concurrent_gets(edge, path, 50))
    assert [(a.status_code, a.content) for a in answers] == [(200, b"validated")] * 50
    assert cache_origin.count(path) == 2
    results = [_x_cache(a) for a in answers]
    assert (results.count(REFRESH_HIT), results.count(HIT)) == (1, 49)


def test_concurrent_misses_with_an_uncacheable_answer_all_get_answers(
    edge: str, cache_origin: CacheOrigin
) -> None:
    """A private answer cannot be shared: every waiting request gets its own, promptly."""
    path = "/collapse/private"
    cache_origin.script(path, Reply(200, [("Cache-Control", "private")], b"mine", 0.5))
    started = time.monotonic()
    answers = asyncio.run(_concurrent_gets(edge, path, 50))
    elapsed = time.monotonic() - started
    assert [(a.status_code, a.content) for a in answers] == [(200, b"mine")] * 50
    assert all(_x_cache(a) == MISS for a in answers)
    assert cache_origin.count(path) == 50
    assert elapsed < 10  # nobody waited for collapse_wait (30 s)


# -- CloudFront cache policies ---------------------------------------------------------------------

Step = tuple[str, Headers, str]  # query, request headers, expected X-Cache

CLOUDFRONT_POLICIES = [
    pytest.param(
        "/cf-min/no-store", [("Cache-Control", "no-store")],
        [("", {}, MISS), ("", {}, HIT)], 1, id="min-ttl-overrides-no-store",
    ),
    pytest.param(
        "/cf-min/max-age-0", [("Cache-Control", "max-age=0")],
        [("", {}, MISS), ("", {}, HIT)], 1, id="min-ttl-raises-max-age",
    ),
    pytest.param(
        "/cf-default/plain", [], [("", {}, MISS), ("", {}, HIT)], 1,
        id="default-ttl-without-origin-headers",
    ),
    pytest.param(
        "/rfc-default/plain", [], [("", {}, MISS), ("", {}, MISS)], 2,
        id="rfc9111-without-origin-headers-not-stored",
    ),
    pytest.param(
        "/cf-max/long", [("Cache-Control", "max-age=3600"), ("Age", "5")],
        [("", {}, MISS), ("", {}, MISS)], 2, id="max-ttl-caps-max-age",
    ),
    pytest.param(
        "/rfc-max/long", [("Cache-Control", "max-age=3600"), ("Age", "5")],
        [("", {}, MISS), ("", {}, HIT)], 1, id="rfc9111-keeps-max-age",
    ),
    pytest.param(
        "/cf-qs/page", [("Cache-Control", "max-age=600")],
        [("?v=1&utm=a", {}, MISS), ("?v=1&utm=b", {}, HIT), ("?utm=c&v=1", {}, HIT),
         ("?v=2&utm=a", {}, MISS), ("", {}, MISS)],
        3, id="query-string-allow-list",
    ),
    pytest.param(
        "/cf-hdr/page", [("Cache-Control", "max-age=600")],
        [("", {"X-Device": "phone"}, MISS), ("", {"X-Device": "phone"}, HIT),
         ("", {"X-Device": "tv"}, MISS), ("", {}, MISS), ("", {"X-Device": "phone"}, HIT)],
        3, id="header-in-key",
    ),
    pytest.param(
        "/cf-cookie/page", [("Cache-Control", "max-age=600")],
        [("", {"Cookie": "session=1; theme=dark"}, MISS),
         ("", {"Cookie": "theme=light; session=1"}, HIT),
         ("", {"Cookie": "session=2"}, MISS), ("", {}, MISS)],
        3, id="cookie-in-key",
    ),
    pytest.param(
        "/cf-off/page", [("Cache-Control", "max-age=600")],
        [("", {}, MISS), ("", {}, MISS)], 2, id="disabled-never-stores",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("path", "reply_headers", "steps", "origin_count"), CLOUDFRONT_POLICIES)
def test_cloudfront_policy(
    cloudfront_client: httpx.Client,
    cache_origin: CacheOrigin,
    path: str,
    reply_headers: list[tuple[str, str]],
    steps: list[Step],
    origin_count: int,
) -> None:
    cache_origin.script(path, Reply(200, reply_headers, f"body of {path}".encode()))
    results = [
        _x_cache(_get(cloudfront_client, path + query, headers)) for query, headers, _ in steps
    ]
    assert results == [expected for _, _, expected in steps]
    assert cache_origin.count(path) == origin_count


@pytest.mark.parametrize(
    ("path", "cache_control", "stale"),
    [
        pytest.param("/cf-strict/plain", "max-age=10", False, id="strict-no-window"),
        pytest.param("/cf-strict/window", "max-age=10, stale-if-error=600", True,
                     id="strict-within-stale-if-error"),
        pytest.param("/cf-default/on-error", "max-age=10", True, id="default-serves-stale"),
    ],
)  # fmt: skip
def test_serve_stale_on_error_setting(
    cloudfront_client: httpx.Client, cache_origin: CacheOrigin, path: str, cache_control: str,
    stale: bool,
) -> None:  # fmt: skip
    """`serve_stale_on_error = false` keeps to RFC 5861's stale-if-error windows."""
    cache_origin.script(
        path, Reply(200, [("Cache-Control", cache_control), ("Age", "20")], b"old"),
        Reply(503, [], b"busy"),
    )  # fmt: skip
    assert _get(cloudfront_client, path).content == b"old"
    answer = _get(cloudfront_client, path)
    assert (answer.status_code, answer.content) == ((200, b"old") if stale else (503, b"busy"))


# -- the store's budgets ---------------------------------------------------------------------------


def _large_body_is_kept_on_disk(
    base_url: str, disk: Path, cache_origin: CacheOrigin, path: str
) -> None:
    body = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    cache_origin.script(path, _cacheable(body))
    with httpx.Client(base_url=base_url, timeout=30) as http:
        first = http.get(path)
        assert (_x_cache(first), first.content == body) == (MISS, True)
        second = http.get(path)
        assert (_x_cache(second), len(second.content)) == (HIT, len(body))
        assert second.content == body
    assert cache_origin.count(path) == 1
    files = [f for f in disk.iterdir() if f.name.startswith("body-")]
    assert [f.stat().st_size for f in files] == [len(body)]


def test_large_body_goes_to_the_disk_tier(
    cloudfront_edge: tuple[str, Path], cache_origin: CacheOrigin
) -> None:
    """A 5 MB body (over memory_object_max_bytes, 1 MB by default) is kept on disk and served
    as a hit."""
    base_url, disk = cloudfront_edge
    _large_body_is_kept_on_disk(base_url, disk, cache_origin, "/disk/large")


def test_large_body_goes_to_disk_with_a_small_memory_budget(
    budget_edge: tuple[EdgeProcess, Path], cache_origin: CacheOrigin
) -> None:
    """The disk tier must not depend on the memory budget holding memory_object_max_bytes."""
    process, disk = budget_edge
    _large_body_is_kept_on_disk(process.url, disk, cache_origin, "/budget/large")


async def _flood(port: int, path: str, keys: range, connections: int) -> list[str]:
    """GET `path?k=KEY` for every key over a few kept-alive connections; the X-Cache of each.
    Plain asyncio streams: an HTTP client library would cost more than the edge being measured."""
    results: list[str] = []

    async def connection(share: range) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for key in share:
                writer.write(f"GET {path}?k={key} HTTP/1.1\r\nHost: edge\r\n\r\n".encode())
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                assert head.startswith("http/1.1 200"), head
                lines = head.split("\r\n")[1:]
                fields = {
                    name.strip(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines)
                }
                body = await reader.readexactly(int(fields["content-length"]))
                assert len(body) == 4096
                results.append(fields["x-cache"])
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection(keys[n::connections]) for n in range(connections)))
    return results


def test_memory_budget_holds_under_a_flood_of_keys(
    budget_edge: tuple[EdgeProcess, Path], cache_origin: CacheOrigin
) -> None:
    """5,000 distinct 4 KB responses through a 200 KB memory cache: the least recently used
    go, the process does not grow with the number of keys, and the cache keeps hitting."""
    process, _ = budget_edge
    path = "/budget/flood"
    cache_origin.script(path, _cacheable(b"f" * 4096))
    # Warm-up: the process's steady-state allocations (connections, buffers) come first.
    port = int(process.url.rpartition(":")[2])
    asyncio.run(_flood(port, path, range(-400, 0), 4))
    before_kib = vm_kib(process.pid, "VmHWM")
    results = asyncio.run(_flood(port, path, range(5000), 4))
    growth_kib = vm_kib(process.pid, "VmHWM") - before_kib
    assert results.count(MISS.lower()) == 5000
    # Unbounded, 5,000 entries of 4 KB plus their overhead would be ~30 MB: 10 MB catches that
    # while leaving room for the allocator's noise (measured: well under 1 MB).
    assert growth_kib < 10 * 1024, f"the edge grew by {growth_kib} KiB"
    # The flood's Host: the viewer's Host is part of an RFC 9111 key (the target URI's).
    with httpx.Client(base_url=process.url, timeout=30, headers={"host": "edge"}) as http:
        assert _x_cache(http.get(f"{path}?k=4999")) == HIT  # the most recent are kept
        assert _x_cache(http.get(f"{path}?k=0")) == MISS  # the oldest went long ago
    assert cache_origin.count(path) == 400 + 5000 + 1
