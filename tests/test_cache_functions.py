"""The cache and Lambda@Edge functions together, through the real proxy and real workers.

What CloudFront does: a hit skips origin-request and origin-response (their effect is in the
stored response) but runs viewer-response; what origin-response leaves is what is stored; a
background refresh (stale-while-revalidate) is an origin fetch like any other, so it runs
origin-request and origin-response too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cache_origin import CacheOrigin, Reply, running_cache_origin
from tests.conftest import EdgeProcess

HOOKS = Path(__file__).resolve().parent / "edge_functions" / "hooks"

CONFIG = """
[origins.o]
url = "{url}"

[[behaviors]]
path = "/personal/*"
origin = "o"
viewer-response = "personalise"

[[behaviors]]
path = "*"
origin = "o"
origin-request = "tag-request"
origin-response = "tag-response"
viewer-response = "tag-response"

[functions.tag-request]
handler = "{hooks}.tag_request"

[functions.tag-response]
handler = "{hooks}.tag_response"

[functions.personalise]
handler = "{hooks}.personalise_body"
"""


@pytest.fixture(scope="module")
def cache_origin() -> Iterator[CacheOrigin]:
    with running_cache_origin() as server:
        yield server


@pytest.fixture(scope="module")
def client(
    cache_origin: CacheOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("edge-cache-functions")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(url=cache_origin.url, hooks=HOOKS))
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"]).start(tmp)
    with httpx.Client(base_url=process.url, timeout=30) as http:
        yield http
    process.stop()


def test_a_hit_runs_viewer_response_only(client: httpx.Client, cache_origin: CacheOrigin) -> None:
    path = "/functions/hit"
    cache_origin.script(path, Reply(200, [("Cache-Control", "max-age=600")], b"stored"))
    miss = client.get(path)
    hit = client.get(path)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("Miss from edge", "Hit from edge")
    for answer in (miss, hit):
        assert answer.content == b"stored"
        assert answer.headers["x-viewer-response"] == "ran"
        # Stored as origin-response left it.
        assert answer.headers["x-origin-response"] == "ran"
    assert cache_origin.count(path) == 1
    assert cache_origin.seen(path)[0].headers["x-origin-request"] == "ran"


def test_a_background_refresh_runs_the_origin_side_functions(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    path = "/functions/swr"
    cache_origin.script(
        path,
        Reply(
            200, [("Cache-Control", "max-age=1, stale-while-revalidate=600"), ("Age", "5")], b"v1"
        ),
        Reply(200, [("Cache-Control", "max-age=600")], b"v2"),
    )
    assert client.get(path).content == b"v1"
    assert client.get(path).content == b"v1"  # stale, and it starts the refresh
    cache_origin.wait_for_count(path, 2)
    assert cache_origin.seen(path)[1].headers["x-origin-request"] == "ran"
    deadline = time.monotonic() + 10
    while (latest := client.get(path)).content != b"v2":
        assert time.monotonic() < deadline, "the background refresh never landed"
    assert latest.headers["x-cache"] == "Hit from edge"
    assert latest.headers["x-origin-response"] == "ran"  # origin-response ran on the refresh
    assert cache_origin.count(path) == 2


def test_a_body_replaced_by_viewer_response_still_stores_the_origins(
    client: httpx.Client, cache_origin: CacheOrigin
) -> None:
    path = "/personal/page"
    cache_origin.script(path, Reply(200, [("Cache-Control", "max-age=600")], b"for everyone"))
    answers = [client.get(path) for _ in range(2)]
    assert [(a.content, a.headers["x-cache"]) for a in answers] == [
        (b"just for you", "Miss from edge"),
        (b"just for you", "Hit from edge"),
    ]
    assert cache_origin.count(path) == 1
