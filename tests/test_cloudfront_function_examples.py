"""The CloudFront Functions examples (examples/edge-cloudfront-functions.toml) through the real
proxy, as the comment at the top of that file tells a user to try them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO, EdgeProcess

CONFIG = REPO / "examples" / "edge-cloudfront-functions.toml"
SECRET = b"change-me-in-production"  # examples/cloudfront-functions/kvs.json


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp("cf-examples")
    process = EdgeProcess([str(CONFIG), "--listen", "127.0.0.1:0"]).start(tmp)
    try:
        with httpx.Client(base_url=process.url, timeout=30) as c:
            yield c
    finally:
        process.stop()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(payload: dict[str, object], secret: bytes = SECRET) -> str:
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64url(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(signature)}"


def test_security_headers_and_a_lambda_edge_origin_request_on_one_behavior(
    client: httpx.Client,
) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")
    beta = client.get("/", headers={"X-Origin": "beta"})
    assert beta.status_code == 200
    assert beta.text != response.text  # the Lambda@Edge origin-request switched the origin
    assert beta.headers["x-content-type-options"] == "nosniff"


def test_redirect(client: httpx.Client) -> None:
    response = client.get("/old")
    assert response.status_code == 301
    assert response.headers["location"].endswith("/")
    assert response.headers["x-cache"] == "FunctionGeneratedResponse from edge"


def test_spa_routes_get_the_index(client: httpx.Client) -> None:
    route = client.get("/docs/getting-started")
    assert route.status_code == 200
    assert route.text == client.get("/docs/").text


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        (None, 401, "no token"),
        (_jwt({"sub": "ana"}, secret=b"wrong"), 401, "bad signature"),
        (_jwt({"sub": "ana", "exp": 1}), 401, "expired"),
        (_jwt({"sub": "ana", "exp": int(time.time()) + 600}), 404, None),
    ],
)
def test_jwt_check_with_the_secret_in_the_store(
    client: httpx.Client, token: str | None, status: int, reason: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/members/page.html", headers=headers)
    assert response.status_code == status  # a valid token reaches the origin (no such page)
    if reason is not None:
        assert response.headers["x-denied"] == reason


def test_ab_split_by_the_weight_in_the_store(client: httpx.Client) -> None:
    response = client.get("/experiment/")
    assert response.status_code == 200
    assert "Variant B" in response.text  # weight 100 in the store: everyone new gets b
    pinned = client.get("/experiment/", headers={"Cookie": "variant=a"})
    assert "Variant A" in pinned.text  # the cookie keeps a viewer's variant
