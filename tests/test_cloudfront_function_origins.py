"""CloudFront Functions' origin helpers (cloudfront-js-2.0, viewer-request) through the real
proxy: `cf.selectRequestOriginById`, `cf.updateRequestOrigin` and `cf.createRequestOriginGroup`
against configured origins, the cache keeping each origin's answers apart, and an unknown id
failing the function as CloudFront fails it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EdgeProcess
from tests.origin_app import OriginServer

JS = Path(__file__).resolve().parent / "cloudfront_functions" / "origins.js"


@pytest.fixture(scope="module")
def edge(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("edge-cf-origins")
    site_b = tmp / "b"
    for where in ("to-b", "group", "status", "cacheable"):
        (site_b / where).mkdir(parents=True)
    (site_b / "to-b" / "page").write_text("from B\n")
    (site_b / "status" / "500").write_text("B instead of a 500\n")
    (site_b / "cacheable" / "cf-origins").write_text("B's copy\n")
    port = int(origin.url.rsplit(":", 1)[1].split("/")[0])
    code = tmp / "origins.js"
    code.write_text(JS.read_text().replace("ECHO_PORT", str(port)))
    config = tmp / "edge.toml"
    config.write_text(
        f'[server]\nname = "edge-cf"\n\n[origins.a]\nurl = "{origin.url}"\n\n'
        f'[origins.b]\ndirectory = "{site_b}"\n\n'
        f'[functions.pick]\nruntime = "cloudfront-js-2.0"\ncode = "{code}"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "a"\nviewer-request = "pick"\n'
    )
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"]).start(tmp)
    yield process
    process.stop()


@pytest.fixture
def client(edge: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        yield c


def test_select_origin_by_id(client: httpx.Client) -> None:
    response = client.get("/to-b/page")
    assert response.status_code == 200
    assert response.text == "from B\n"
    assert client.get("/other/page").json()["target"] == "/other/page"  # A, for the rest


def test_origins_chosen_per_request_never_share_a_stored_answer(client: httpx.Client) -> None:
    # A stores its answer for the URL (max-age=60); B, chosen by a header the cache does not
    # key on, must not be handed A's copy, nor A B's.
    url = "/cacheable/cf-origins"
    first = client.get(url)
    assert first.text == f"{url} #1"
    assert client.get(url, headers={"x-pick": "b"}).text == "B's copy\n"
    again = client.get(url)
    assert again.text == f"{url} #1"
    assert again.headers["x-cache"].startswith("Hit")
    assert client.get(url, headers={"x-pick": "b"}).text == "B's copy\n"


def test_update_request_origin_moves_host_port_path_and_headers(
    client: httpx.Client, edge: EdgeProcess
) -> None:
    response = client.get("/to-echo/x?q=1")
    assert response.status_code == 200
    echo = response.json()
    assert echo["target"] == "/moved/to-echo/x?q=1"
    assert dict(echo["headers"])["x-origin-secret"] == "s3cret"
    edge.wait_for(r"originShield.*not supported here; ignored", 10)
    moved = client.get("/to-localhost/y").json()
    assert moved["target"] == "/to-localhost/y"
    assert dict(moved["headers"])["host"].startswith("localhost:")


def test_origin_group_fails_over_from_a_to_b(client: httpx.Client, edge: EdgeProcess) -> None:
    response = client.get("/group/x")
    assert response.status_code == 200
    assert response.text == "B instead of a 500\n"
    edge.wait_for(r"origin group a\+b: primary answered 500; trying b", 10)


def test_unknown_origin_id_fails_the_function(client: httpx.Client, edge: EdgeProcess) -> None:
    response = client.get("/to-nowhere/x")
    assert response.status_code == 503
    assert response.headers["x-cache"] == "FunctionExecutionError from edge-cf"
    edge.wait_for(r"no origin with id 'nowhere'", 10)
    assert client.get("/to-b/page").text == "from B\n"  # the edge goes on serving
