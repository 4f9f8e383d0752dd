"""CloudFront's viewer protocol policy per behavior and CloudFront-Forwarded-Proto, through the
real `edge serve` in front of a real origin: redirect-to-https answers an HTTP request with
301 (307 for a POST) to the https URL and https-only with 403, before any function runs;
allow-all serves both; the origin and origin-request are told the viewer's protocol when the
cache policy names the header, and a viewer cannot claim HTTPS by sending it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO, EdgeProcess
from tests.origin_app import OriginServer

HOOKS = "tests.edge_functions.hooks"

CONFIG = """
[origins.o]
url = "{url}"

[[behaviors]]
path = "/redirect/*"
origin = "o"
viewer_protocol_policy = "redirect-to-https"
viewer-request = "generate"

[[behaviors]]
path = "/secure/*"
origin = "o"
viewer_protocol_policy = "https-only"
viewer-request = "generate"

[[behaviors]]
path = "/proto/*"
origin = "o"
cache = {{ headers = ["CloudFront-Forwarded-Proto"], default_ttl = 60 }}
origin-request = "echo"

[[behaviors]]
path = "*"
origin = "o"
viewer_protocol_policy = "allow-all"

[functions.generate]
code = "{repo}"
handler = "{hooks}.generate"

[functions.echo]
code = "{repo}"
handler = "{hooks}.echo_event_response"
"""


@pytest.fixture(scope="module")
def edge(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("viewer-protocol")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(url=origin.url, repo=REPO, hooks=HOOKS))
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"]).start(tmp)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def test_redirect_to_https_answers_a_get_with_301_and_runs_no_function(
    edge: EdgeProcess, client: httpx.Client
) -> None:
    response = client.get(f"{edge.url}/redirect/a%20b?x=1&y", headers={"Host": "shop.example"})
    assert response.status_code == 301
    assert response.headers["location"] == "https://shop.example/redirect/a%20b?x=1&y"
    assert "generated" not in response.text  # the viewer-request function did not run
    assert response.headers["x-cache"].startswith("Redirect from ")


def test_redirect_drops_the_http_port(edge: EdgeProcess, client: httpx.Client) -> None:
    response = client.head(f"{edge.url}/redirect/x", headers={"Host": "shop.example:8080"})
    assert response.status_code == 301
    assert response.headers["location"] == "https://shop.example/redirect/x"


def test_redirect_to_https_answers_other_methods_with_307(
    edge: EdgeProcess, client: httpx.Client
) -> None:
    response = client.post(f"{edge.url}/redirect/form", content=b"a=1")
    assert response.status_code == 307
    assert response.headers["location"].startswith("https://127.0.0.1/redirect/form")


def test_https_only_refuses_http_with_403(edge: EdgeProcess, client: httpx.Client) -> None:
    response = client.get(f"{edge.url}/secure/x")
    assert response.status_code == 403
    assert response.headers["x-edge-error"] == "HttpsRequired"
    assert "generated" not in response.text


def test_allow_all_serves_http(edge: EdgeProcess, client: httpx.Client) -> None:
    response = client.get(f"{edge.url}/status/200")
    assert response.status_code == 200


def test_the_forwarded_proto_is_the_viewers_and_cannot_be_claimed(
    edge: EdgeProcess, client: httpx.Client
) -> None:
    for sent in (None, "https"):
        headers = {} if sent is None else {"CloudFront-Forwarded-Proto": sent}
        response = client.get(f"{edge.url}/proto/x", headers=headers)
        assert response.status_code == 200
        request = response.json()["Records"][0]["cf"]["request"]
        assert request["headers"]["cloudfront-forwarded-proto"] == [
            {"key": "CloudFront-Forwarded-Proto", "value": "http"}
        ]
