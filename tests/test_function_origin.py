"""Functions as origins, through the real proxy: real adapters (Mangum, apig-wsgi, Powertools)
run unmodified in real worker processes, in both ALB header modes."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from edge.events.alb_rules import ALB_FAILURES, AlbCondition
from edge.function_origin import FunctionOrigin, alb_condition_of
from origin_proxy.message import OriginRequest
from sandbox import (
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionThrottled,
    FunctionTimeout,
    PayloadTooLarge,
    PoolClosed,
    SandboxError,
)
from tests.alb_functions import BINARY_BODY
from tests.conftest import ENGINES, REPO, EdgeProcess

ADAPTERS = {
    "mangum": "tests.alb_functions.mangum_app.handler",
    "apig-wsgi": "tests.alb_functions.wsgi_app.handler",
    "powertools": "tests.alb_functions.powertools_app.handler",
}

CONFIG = """
[server]
name = "edge-alb"

[origins.fn]
function = "app"
multi_value_headers = {multi}

[origins.broken]
function = "broken"

[[behaviors]]
path = "/broken/*"
origin = "broken"

[[behaviors]]
path = "*"
origin = "fn"

[functions.app]
code = "{repo}"
handler = "{handler}"
timeout = 10

[functions.broken]
code = "{repo}"
handler = "tests.edge_functions.hooks.raise_error"
"""


@pytest.fixture(
    scope="module",
    # Each adapter under both engines (one per header mode, to keep the starts down).
    params=[
        (adapter, multi, ENGINES[index])
        for adapter in ADAPTERS
        for index, multi in enumerate((True, False))
    ],
    ids=lambda p: f"{p[0]}-{'multi' if p[1] else 'single'}-{p[2]}",
)
def edge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EdgeProcess, bool, str]]:
    adapter, multi, engine = request.param
    tmp = tmp_path_factory.mktemp("alb")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(multi=str(multi).lower(), repo=REPO, handler=ADAPTERS[adapter]))
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"], engine=engine).start(tmp)
    yield process, multi, adapter
    process.stop()


@pytest.fixture
def client(edge: tuple[EdgeProcess, bool, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge[0].url, timeout=30) as c:
        yield c


def test_echo_with_repeated_and_encoded_query(
    client: httpx.Client, edge: tuple[EdgeProcess, bool, str]
) -> None:
    multi = edge[1]
    response = client.get("/echo/a%20b?tag=x&tag=y&q=caf%C3%A9&sp=%20%2F")
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "GET"
    assert seen["path"] == "/echo/a b"
    query = [tuple(pair) for pair in seen["query"]]
    if multi:
        assert ("tag", "x") in query
        assert ("tag", "y") in query
    else:
        assert ("tag", "y") in query  # single-value mode: the last value wins (§7.1)
        assert ("tag", "x") not in query
    assert ("q", "café") in query
    assert ("sp", " /") in query
    assert response.headers["x-cache"] == "Miss from edge-alb"


def test_json_body_round_trip(client: httpx.Client) -> None:
    response = client.post("/echo", json={"name": "thing", "n": 3})
    seen = response.json()
    assert seen["method"] == "POST"
    assert base64.b64decode(seen["body_base64"]) == b'{"name":"thing","n":3}'


def test_binary_request_and_response_bodies_are_intact(client: httpx.Client) -> None:
    payload = bytes(range(256)) * 4
    seen = client.put(
        "/echo", content=payload, headers={"Content-Type": "application/octet-stream"}
    ).json()
    assert base64.b64decode(seen["body_base64"]) == payload
    response = client.get("/binary")
    assert response.content == BINARY_BODY
    assert response.headers["content-length"] == str(len(BINARY_BODY))


def test_cookies(client: httpx.Client, edge: tuple[EdgeProcess, bool, str]) -> None:
    response = client.get("/cookies")
    cookies = response.headers.get_list("set-cookie")
    if edge[1]:
        assert len(cookies) == 2  # multi-value mode: several Set-Cookie survive
    elif edge[2] == "mangum":
        # Mangum's single-value trick: `set-cookie`, `Set-cookie`, ... are distinct JSON keys,
        # and an ALB sends each as a header line of its own.
        assert len(cookies) == 2
    else:
        assert len(cookies) == 1  # single-value mode: one value per header name


def test_function_status_passes_through(client: httpx.Client) -> None:
    response = client.get("/missing")
    assert response.status_code == 404
    assert response.headers["x-cache"] == "Error from edge-alb"


def test_failing_function_gives_502_like_an_alb(
    client: httpx.Client, edge: tuple[EdgeProcess, bool, str]
) -> None:
    response = client.get("/broken/x")
    assert response.status_code == 502
    assert response.headers["x-edge-error"] == "LambdaUnhandled"
    edge[0].wait_for(r"function origin 'broken' \(function 'broken'\): LambdaUnhandled KeyError")


def test_request_body_over_1_mb_gets_413(client: httpx.Client) -> None:
    response = client.post("/echo", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert response.headers["x-edge-error"] == "LambdaRequestTooLarge"


def test_demo_api_behind_the_edge(start_edge: object) -> None:
    edge = start_edge("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")  # type: ignore[operator]
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        created = c.post("/api/items", json={"name": "first", "tags": ["a"]})
        assert created.status_code == 201
        location = created.headers["location"]
        assert re.fullmatch(r"/api/items/\d+", location)
        assert c.get(location).json()["name"] == "first"
        listed = c.get("/api/items", params=[("tag", "a"), ("tag", "b")]).json()
        assert any(item["name"] == "first" for item in listed["items"])


# -- failures, in memory: which §7.4 row each sandbox error is, and what the client gets ------


def _error(cls: type[FunctionError], error_type: str) -> FunctionError:
    return cls({"errorType": error_type, "errorMessage": "it failed"})


class _FailingRegistry:
    def __init__(self, error: SandboxError) -> None:
        self.error = error

    async def invoke(self, name: str, event: bytes, **_: Any) -> Any:
        raise self.error


FAILURES = [
    # A timeout reaches the load balancer as an Unhandled function error (Sandbox.Timedout);
    # the ELB access-log reason codes have no timeout code of their own.
    pytest.param(
        _error(FunctionTimeout, "Sandbox.Timedout"),
        AlbCondition.FUNCTION_TIMEOUT,
        502,
        "LambdaUnhandled",
        id="timeout",
    ),
    pytest.param(
        _error(FunctionError, "KeyError"),
        AlbCondition.FUNCTION_ERROR,
        502,
        "LambdaUnhandled",
        id="raised",
    ),
    pytest.param(
        _error(FunctionCrashed, "Runtime.ExitError"),
        AlbCondition.FUNCTION_ERROR,
        502,
        "LambdaUnhandled",
        id="crashed",
    ),
    pytest.param(
        _error(FunctionMemoryExceeded, "Runtime.OutOfMemory"),
        AlbCondition.FUNCTION_ERROR,
        502,
        "LambdaUnhandled",
        id="out-of-memory",
    ),
    pytest.param(
        _error(FunctionError, "Function.ResponseSizeTooLarge"),
        AlbCondition.RESPONSE_TOO_LARGE,
        502,
        "LambdaResponseTooLarge",
        id="result-over-6-mb",
    ),
    pytest.param(
        FunctionThrottled("fn", "ReservedFunctionConcurrentInvocationLimitExceeded"),
        AlbCondition.THROTTLED,
        502,
        "LambdaThrottling",
        id="throttled",
    ),
    pytest.param(
        PayloadTooLarge(7_000_000, 6_291_456),
        AlbCondition.REQUEST_TOO_LARGE,
        413,
        "LambdaRequestTooLarge",
        id="event-over-the-payload-limit",
    ),
    pytest.param(
        PoolClosed("closed"),
        AlbCondition.SERVICE_ERROR,
        502,
        "LambdaServiceException",
        id="pool-closed",
    ),
]


@pytest.mark.parametrize(("error", "condition", "status", "reason_code"), FAILURES)
def test_a_failed_invocation_is_answered_from_the_alb_failure_table(
    error: SandboxError, condition: AlbCondition, status: int, reason_code: str
) -> None:
    assert alb_condition_of(error) is condition
    assert ALB_FAILURES[condition].status == status
    assert ALB_FAILURES[condition].reason_code == reason_code
    origin = FunctionOrigin(
        "fn",
        "fn",
        _FailingRegistry(error),  # type: ignore[arg-type]
        multi_value=False,
        target_group_arn="arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t/1",
        timeout_seconds=1,
    )
    request = OriginRequest(method="GET", target=b"/", headers=[(b"host", b"edge")])
    response = asyncio.run(origin.fetch(request))
    assert response.status == status
    assert response.header(b"x-edge-error") == reason_code.encode()
