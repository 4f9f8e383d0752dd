"""Lambda@Edge through the real proxy: triggers, skip rules, and every failure path.

The edge runs as `edge serve` with real worker processes in front of a real origin server.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EdgeProcess
from tests.origin_app import OriginServer

HOOKS = Path(__file__).resolve().parent / "edge_functions" / "hooks"


def _functions(**handlers: str | dict[str, Any]) -> str:
    out = []
    for name, spec in handlers.items():
        table = {"handler": spec} if isinstance(spec, str) else spec
        fields = []
        for key, value in table.items():
            if key == "handler":
                value = f"{HOOKS}.{value}"
            fields.append(f"{key} = {json.dumps(value)}")
        out.append(f"[functions.{name.replace('_', '-')}]\n" + "\n".join(fields))
    return "\n\n".join(out)


def _behavior(path: str, **triggers: str) -> str:
    lines = ["[[behaviors]]", f'path = "{path}"', 'origin = "app"']
    for trigger, value in triggers.items():
        key = trigger.replace("_", "-")
        lines.append(f"{key} = {value}" if value.startswith("{") else f'{key} = "{value}"')
    return "\n".join(lines)


CONFIG = "\n\n".join(
    [
        '[server]\nname = "edge-fn"\n\n[origins.app]\nurl = "{origin}"',
        _behavior(
            "/all/*",
            viewer_request="tag-request",
            origin_request="tag-request",
            origin_response="tag-response",
            viewer_response="tag-response",
        ),
        _behavior(
            "/vr-gen/*",
            viewer_request="generate",
            origin_request="tag-request",
            origin_response="tag-response",
            viewer_response="tag-response",
        ),
        _behavior(
            "/or-gen/*",
            origin_request="generate",
            origin_response="tag-response",
            viewer_response="tag-response",
        ),
        _behavior("/status/*", origin_response="tag-response", viewer_response="tag-response"),
        _behavior("/body/*", origin_request='{ function = "replace-body", include_body = true }'),
        _behavior("/event/*", viewer_request="echo-event"),
        _behavior("/oevent/*", origin_request="echo-event"),
        _behavior("/fail/raise", viewer_request="raise-error"),
        _behavior("/fail/timeout", viewer_request="sleep-forever"),
        _behavior("/fail/memory", viewer_request="eat-memory"),
        _behavior("/fail/crash", viewer_request="crash"),
        _behavior("/fail/invalid", viewer_request="invalid-json"),
        _behavior("/fail/readonly", viewer_request="read-only-host"),
        _behavior("/fail/notobject", origin_response="not-an-object"),
        _behavior("/throttle/*", viewer_request="sleep-briefly"),
        _behavior("/hang/*", viewer_request="hang"),
        _behavior("/switch/*", origin_request="switch-origin"),
        _behavior("/reserved/*", viewer_request="reserved-zero"),
        _behavior("*"),
        _functions(
            tag_request="tag_request",
            tag_response="tag_response",
            generate="generate",
            replace_body="replace_body",
            echo_event="echo_event_response",
            raise_error="raise_error",
            sleep_forever={"handler": "sleep_forever", "timeout": 1},
            hang={"handler": "sleep_forever", "timeout": 3},
            eat_memory="eat_memory",
            crash="crash",
            invalid_json="invalid_json",
            read_only_host="read_only_host",
            not_an_object="not_an_object",
            sleep_briefly={"handler": "sleep_briefly", "max_concurrency": 1},
            switch_origin="switch_origin",
            reserved_zero={"handler": "tag_request", "reserved_concurrency": 0},
        ),
    ]
)


@pytest.fixture(scope="module")
def edge(
    origin: OriginServer, tmp_path_factory: pytest.TempPathFactory, engine: str
) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("edge-fn")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.replace("{origin}", origin.url))
    process = EdgeProcess(
        [str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], engine=engine
    ).start(tmp)
    yield process
    process.stop()


@pytest.fixture
def client(edge: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        yield c


def _origin_headers(response: httpx.Response) -> dict[str, str]:
    return dict(response.json()["headers"])


def test_all_four_triggers_run_in_order(client: httpx.Client) -> None:
    response = client.get("/all/rewrite/x?q=1")
    assert response.status_code == 200
    echo = response.json()
    seen = _origin_headers(response)
    assert seen["x-viewer-request"] == "ran"
    assert seen["x-origin-request"] == "ran"
    # viewer-request rewrote the uri and query; origin-request saw the rewritten one.
    assert echo["target"] == "/all/rewritten/x?added=1"
    assert response.headers["x-origin-response"] == "ran"
    assert response.headers["x-viewer-response"] == "ran"
    assert response.headers["x-cache"] == "Miss from edge-fn"


def test_viewer_request_generated_response_skips_everything_else(
    client: httpx.Client, origin: OriginServer
) -> None:
    before = len(origin.log.requests)
    response = client.get("/vr-gen/x")
    assert response.status_code == 200
    assert response.text == "generated at viewer-request"
    assert response.headers["x-cache"] == "LambdaGeneratedResponse from edge-fn"
    assert "x-origin-response" not in response.headers
    assert "x-viewer-response" not in response.headers
    assert len(origin.log.requests) == before


def test_origin_request_generated_response_skips_origin_and_origin_response(
    client: httpx.Client, origin: OriginServer
) -> None:
    before = len(origin.log.requests)
    response = client.get("/or-gen/x")
    assert response.text == "generated at origin-request"
    assert "x-origin-response" not in response.headers
    assert response.headers["x-viewer-response"] == "ran"
    assert len(origin.log.requests) == before


@pytest.mark.parametrize(
    ("status", "viewer_response_runs"),
    [
        pytest.param(200, True, id="200-runs"),
        pytest.param(302, True, id="302-runs"),
        pytest.param(404, False, id="404-skipped"),
        pytest.param(503, False, id="503-skipped"),
    ],
)
def test_viewer_response_skipped_for_errors_origin_response_always_runs(
    client: httpx.Client, status: int, viewer_response_runs: bool
) -> None:
    response = client.get(f"/status/{status}")
    assert response.status_code == status
    assert response.headers["x-origin-response"] == "ran"
    assert ("x-viewer-response" in response.headers) is viewer_response_runs


def test_include_body_shows_the_body_and_replace_sends_the_new_one(client: httpx.Client) -> None:
    response = client.post("/body/keep", content=b"a" * 1000)
    echo = response.json()
    assert _origin_headers(response)["x-seen-body"] == "1000:False"
    assert echo["body_size"] == 1000  # read-only: the original body goes on

    big = b"b" * (1024 * 1024 + 10)
    response = client.post("/body/keep", content=big)
    assert _origin_headers(response)["x-seen-body"] == f"{1024 * 1024}:True"
    assert response.json()["body_size"] == len(big)  # truncated for the function only

    response = client.post("/body/replace", content=b"original")
    echo = response.json()
    assert echo["body_size"] == len(b"replaced body")
    assert _origin_headers(response)["content-length"] == str(len(b"replaced body"))


def test_viewer_request_event_is_aws_shaped(client: httpx.Client) -> None:
    response = client.get(
        "/event/p%20x?a=1&b=2", headers={"User-Agent": "test-agent", "X-Custom": "v"}
    )
    event = response.json()
    assert list(event) == ["Records"]
    cf = event["Records"][0]["cf"]
    assert set(cf) == {"config", "request"}
    assert cf["config"]["eventType"] == "viewer-request"
    assert cf["config"]["requestId"] == response.headers["x-amz-cf-id"]
    assert set(cf["config"]) == {
        "distributionDomainName",
        "distributionId",
        "eventType",
        "requestId",
    }
    request = cf["request"]
    assert request["clientIp"] == "127.0.0.1"
    assert request["method"] == "GET"
    assert request["uri"] == "/event/p%20x"
    assert request["querystring"] == "a=1&b=2"
    assert request["headers"]["user-agent"] == [{"key": "User-Agent", "value": "test-agent"}]
    assert request["headers"]["x-custom"] == [{"key": "X-Custom", "value": "v"}]
    assert "origin" not in request
    assert "body" not in request


def test_origin_request_event_shows_the_origin_and_the_forwarded_headers(
    client: httpx.Client, origin: OriginServer
) -> None:
    event = client.get("/oevent/x", headers={"Host": "viewer.example"}).json()
    request = event["Records"][0]["cf"]["request"]
    custom = request["origin"]["custom"]
    assert custom["domainName"] == "127.0.0.1"
    assert custom["port"] == origin.port
    assert custom["protocol"] == "http"
    assert request["headers"]["host"][0]["value"] == f"127.0.0.1:{origin.port}"
    assert request["headers"]["x-forwarded-for"][0]["value"] == "127.0.0.1"
    assert request["headers"]["via"][0]["value"] == "1.1 edge-fn"
    assert "x-forwarded-proto" not in request["headers"]  # disallowed: hidden (§3.1)


def test_origin_request_switches_to_another_custom_origin(client: httpx.Client) -> None:
    from tests.origin_app import running_origin

    with running_origin() as other:
        response = client.get("/switch/x?q=1", headers={"X-Switch-To": f"127.0.0.1:{other.port}"})
        assert response.status_code == 200
        seen = other.log.wait_for_target("/switched/switch/x?q=1")
    headers = dict(seen["headers"])
    assert headers["x-switched"] == "yes"
    assert headers["host"] == f"127.0.0.1:{other.port}"
    unswitched = client.get("/switch/y").json()
    assert unswitched["target"] == "/switch/y"


@pytest.mark.parametrize(
    ("path", "status", "kind", "detail", "log"),
    [
        pytest.param(
            "/fail/raise",
            503,
            "LambdaExecutionError",
            "KeyError",
            r"function 'raise-error' at viewer-request: KeyError: 'missing-thing'",
            id="exception",
        ),
        pytest.param(
            "/fail/timeout",
            503,
            "LambdaExecutionError",
            "Sandbox.Timedout",
            r"function 'sleep-forever' at viewer-request: .*Task timed out after 1\.00 seconds",
            id="timeout",
        ),
        pytest.param(
            "/fail/memory",
            503,
            "LambdaExecutionError",
            "Runtime.OutOfMemory",
            r"function 'eat-memory' at viewer-request: .*raise the function's memory",
            id="memory",
        ),
        pytest.param(
            "/fail/crash",
            503,
            "LambdaExecutionError",
            "Runtime.ExitError",
            r"function 'crash' at viewer-request: the execution environment died",
            id="crash",
        ),
        pytest.param(
            "/fail/invalid",
            502,
            "LambdaValidationError",
            "disallowed-header",
            r"function 'invalid-json' at viewer-request: invalid result: .*blacklisted header",
            id="disallowed-header",
        ),
        pytest.param(
            "/fail/readonly",
            502,
            "LambdaValidationError",
            "read-only-header",
            r"function 'read-only-host' at viewer-request: invalid result: .*read-only header",
            id="read-only-header",
        ),
        pytest.param(
            "/fail/notobject",
            502,
            "LambdaValidationError",
            "json-not-object",
            r"function 'not-an-object' at origin-response: invalid result: .*must be an object",
            id="not-an-object",
        ),
    ],
)
def test_failures_give_cloudfronts_status_header_and_a_log_line(
    client: httpx.Client,
    edge: EdgeProcess,
    path: str,
    status: int,
    kind: str,
    detail: str,
    log: str,
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["x-cache"] == f"{kind} from edge-fn"
    assert response.headers["x-edge-error"] == detail
    assert "<title>ERROR: The request could not be satisfied</title>" in response.text
    request_id = response.headers["x-amz-cf-id"]
    edge.wait_for(
        rf"request {re.escape(request_id)} GET {re.escape(path)}: {kind} -> {status}.*{log}"
    )


def test_a_crashed_environment_is_replaced(client: httpx.Client) -> None:
    assert client.get("/fail/crash").status_code == 503
    assert client.get("/fail/crash").status_code == 503  # crashes again, in a new environment
    assert client.get("/all/x").status_code == 200


def test_throttled_function_gives_503_limit_exceeded(edge: EdgeProcess) -> None:
    results: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(base_url=edge.url, timeout=30) as c:
            results.append(c.get("/throttle/x"))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) >= 1
    throttled = [r for r in results if r.status_code == 503]
    assert throttled, statuses
    for response in throttled:
        assert response.headers["x-cache"] == "LambdaLimitExceeded from edge-fn"


def test_a_hanging_function_does_not_delay_other_requests(edge: EdgeProcess) -> None:
    hung: dict[str, httpx.Response] = {}

    def hang() -> None:
        with httpx.Client(base_url=edge.url, timeout=30) as c:
            hung["response"] = c.get("/hang/x")

    thread = threading.Thread(target=hang)
    thread.start()
    try:
        with httpx.Client(base_url=edge.url, timeout=30) as c:
            for _ in range(5):
                assert c.get("/all/x").status_code == 200
            # The hung invocation is still running (its timeout is 3 s): nothing waited on it.
            assert thread.is_alive()
    finally:
        thread.join(30)
    assert hung["response"].status_code == 503


def test_function_logs_are_lambda_shaped(client: httpx.Client, edge: EdgeProcess) -> None:
    client.get("/all/logs")
    edge.wait_for(
        r"REPORT RequestId: [0-9a-f-]{36}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t"
    )


def test_function_metrics(client: httpx.Client, edge: EdgeProcess) -> None:
    client.get("/all/metrics")
    client.get("/fail/raise")
    with httpx.Client(base_url=edge.admin_url) as admin:
        metrics = admin.get("/metrics").text
    assert re.search(
        r'edge_function_invocations_total\{function="tag-request",trigger="viewer-request",'
        r'version="\$LATEST"\} [1-9]',
        metrics,
    )
    assert re.search(
        r'edge_function_errors_total\{function="raise-error",kind="KeyError",'
        r'trigger="viewer-request",version="\$LATEST"\} [1-9]',
        metrics,
    )
    assert (
        'edge_function_duration_seconds_count{function="tag-response",version="$LATEST"}' in metrics
    )


def test_reserved_concurrency_zero_throttles_every_edge_invocation(client: httpx.Client) -> None:
    response = client.get("/reserved/x")
    assert response.status_code == 503
    assert response.headers["x-cache"] == "LambdaLimitExceeded from edge-fn"
