"""The examples are tests: examples/edge.toml served as `edge serve` runs it, every example
function driven through the real proxy, plus the author tools (`edge invoke`, `edge events`)."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from edge.events.alb import build_alb_event, build_health_check_event, decode_alb_response
from edge.invoke.records import Outcome, invocation_record
from tests.alb_functions import wsgi_app
from tests.conftest import REPO, EdgeProcess
from tests.origin_app import OriginServer
from tests.rawhttp import exchange, status_of
from tests.test_events_alb import (
    HEALTH_CHECK_SAMPLE,
    MULTI_VALUE_SAMPLE,
    SINGLE_VALUE_SAMPLE,
    FakeContext,
)
from tests.test_events_alb import _sample_input as alb_sample_input

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """The bundled demo, started with no configuration argument, as README's command does."""
    tmp = tmp_path_factory.mktemp("demo")
    process = EdgeProcess(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]).start(tmp)
    yield process
    process.stop()


@pytest.fixture
def client(demo: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo.url, timeout=30) as c:
        yield c


NO_NODE = pytest.mark.skipif(shutil.which("node") is None, reason="`node` is not installed")


@pytest.fixture(scope="module")
def node_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """examples/edge-node.toml: the demo with its functions in JavaScript."""
    tmp = tmp_path_factory.mktemp("demo-node")
    config = str(EXAMPLES / "edge-node.toml")
    process = EdgeProcess([config, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
    process.start(tmp)
    yield process
    process.stop()


@pytest.fixture(params=["python", pytest.param("node", marks=NO_NODE)])
def script_client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """The demo with its functions in Python, then in JavaScript."""
    demo: EdgeProcess = request.getfixturevalue(
        "demo" if request.param == "python" else "node_demo"
    )
    with httpx.Client(base_url=demo.url, timeout=30) as c:
        yield c


# The examples that exist in every runtime: Python under examples/functions/, C and Zig under
# examples/wasm/ (built from source by the test). The same tests run against each.
WASM_FUNCTIONS = {
    "security-headers": "security_headers",
    "redirects": "redirects",
    "ab-testing-request": "ab_testing",
    "ab-testing-response": "ab_testing",
}


def _wasm_demo_config(language: str, out_dir: Path) -> str:
    from tests.wasm_guests.build import build_all, find_guest

    modules = build_all(out_dir)
    text = (EXAMPLES / "edge.toml").read_text()
    text = text.replace('directory = "site/', f'directory = "{EXAMPLES}/site/')
    text = re.sub(r'handler = "(?!/)', f'handler = "{EXAMPLES}/', text)
    for name, guest in WASM_FUNCTIONS.items():
        module = modules[find_guest(guest, language)]  # type: ignore[arg-type]
        text = re.sub(
            rf'(\[functions\.{re.escape(name)}\]\n)handler = "[^"]*"\n',
            rf'\1runtime = "wasm"\nmodule = "{module}"\n',
            text,
        )
    return text


@pytest.fixture(scope="module", params=["python", pytest.param("node", marks=NO_NODE), "c", "zig"])
def any_demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    """The demo with its security-headers, redirects and A/B functions in one runtime."""
    if request.param in ("python", "node"):
        yield request.getfixturevalue("demo" if request.param == "python" else "node_demo")
        return
    tmp = tmp_path_factory.mktemp(f"demo-{request.param}")
    config = tmp / "edge.toml"
    config.write_text(_wasm_demo_config(request.param, REPO / "examples" / "wasm" / "build"))
    process = EdgeProcess(
        [str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        env={"XDG_CACHE_HOME": str(tmp / "cache")},
    ).start(tmp)
    yield process
    process.stop()


@pytest.fixture
def any_client(any_demo: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=any_demo.url, timeout=30) as c:
        yield c


def test_demo_serves_the_site_with_security_headers(any_client: httpx.Client) -> None:
    response = any_client.get("/")
    assert response.status_code == 200
    assert "<h1>Served by edge</h1>" in response.text
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-type"].startswith("text/html")


def test_demo_missing_page_gets_the_error_document(client: httpx.Client) -> None:
    response = client.get("/missing")
    assert response.status_code == 404
    assert "The demo site has no such page" in response.text


def test_basic_auth(script_client: httpx.Client) -> None:
    client = script_client
    response = client.get("/private.html")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="edge demo"'
    assert response.headers["x-cache"] == "LambdaGeneratedResponse from edge"
    wrong = base64.b64encode(b"demo:nope").decode()
    assert (
        client.get("/private.html", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    )
    response = client.get("/private.html", auth=("demo", "edge"))
    assert response.status_code == 200
    assert "Members only" in response.text
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        pytest.param("/old", "/", id="moved-page"),
        pytest.param("/documentation?x=1", "/docs/?x=1", id="query-kept"),
        pytest.param("/blog", "https://blog.example.com/", id="external"),
        pytest.param("/docs///index.html", "/docs/index.html", id="slashes-collapse"),
    ],
)
def test_redirects(any_client: httpx.Client, path: str, location: str) -> None:
    response = any_client.get(path)
    assert response.status_code == 301
    assert response.headers["location"] == location


def test_leading_double_slash_is_collapsed(any_demo: EdgeProcess) -> None:
    # An HTTP client would read `//docs` as a host: send the request line by hand.
    port = int(any_demo.url.rsplit(":", 1)[1])
    response = exchange(port, b"GET //docs///index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 301
    assert b"\r\nlocation: /docs/index.html\r\n" in response


def test_directory_uri_gets_its_index_document(any_client: httpx.Client) -> None:
    response = any_client.get("/docs/")
    assert response.status_code == 200
    assert "<h1>Docs</h1>" in response.text


def test_ab_testing_assigns_a_sticky_group(any_client: httpx.Client) -> None:
    first = any_client.get("/experiment/")
    assert first.status_code == 200
    cookie = first.headers["set-cookie"]
    group = cookie.split(";")[0].split("=")[1]
    assert group in ("a", "b")
    assert f"<h1>Variant {group.upper()}</h1>" in first.text
    for _ in range(5):
        any_client.cookies.clear()
        again = any_client.get("/experiment/", headers={"Cookie": f"ab-group={group}"})
        assert f"<h1>Variant {group.upper()}</h1>" in again.text
        assert "set-cookie" not in again.headers
    groups = set()
    for _ in range(40):
        any_client.cookies.clear()
        groups.add(any_client.get("/experiment/").headers["set-cookie"].split(";")[0])
    assert groups == {"ab-group=a", "ab-group=b"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Origin": "beta"}, id="by-header"),
        pytest.param({"Cookie": "theme=dark; origin=beta"}, id="by-cookie"),
    ],
)
def test_origin_selection(script_client: httpx.Client, headers: dict[str, str]) -> None:
    client = script_client
    assert "Beta site" in client.get("/", headers=headers).text
    assert "Served by edge" in client.get("/").text


@pytest.mark.parametrize(
    "function",
    [
        pytest.param(f'handler = "{EXAMPLES}/functions/custom_error_page.handler"', id="python"),
        pytest.param(
            f'runtime = "nodejs"\nhandler = "{EXAMPLES}/functions/js/custom_error_page.handler"',
            id="node",
            marks=NO_NODE,
        ),
    ],
)
def test_custom_error_page_replaces_an_origin_5xx(
    start_edge: Any, origin: OriginServer, function: str
) -> None:
    config = f"""
[origins.app]
url = "{origin.url}"

[[behaviors]]
path = "*"
origin = "app"
origin-response = "custom-error-page"

[functions.custom-error-page]
{function}
"""
    edge: EdgeProcess = start_edge(config=config)
    with httpx.Client(base_url=edge.url) as c:
        broken = c.get("/status/503")
        fine = c.get("/status/200")
    assert broken.status_code == 503
    assert "We'll be right back" in broken.text
    assert "(503)" in broken.text
    assert broken.headers["content-type"] == "text/html; charset=utf-8"
    assert broken.headers["content-length"] == str(len(broken.content))
    assert fine.text == "status 200"


def test_demo_admin_listener(demo: EdgeProcess) -> None:
    with httpx.Client(base_url=demo.admin_url) as admin:
        assert admin.get("/healthz").status_code == 200
        assert "edge_requests_total" in admin.get("/metrics").text


def _edge(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        input=stdin,
    )


def test_every_example_config_passes_edge_check() -> None:
    configs = sorted(EXAMPLES.glob("**/*.toml"))
    assert configs
    if shutil.which("node") is None:  # its nodejs functions need `node`: a config error without
        configs.remove(EXAMPLES / "edge-node.toml")
    for config in configs:
        result = _edge("check", str(config))
        assert result.returncode == 0, f"{config}: {result.stderr}"


@pytest.mark.parametrize(
    "trigger", ["viewer-request", "origin-request", "origin-response", "viewer-response"]
)
def test_edge_events_prints_a_valid_sample(trigger: str) -> None:
    result = _edge("events", trigger, "--uri", "/x", "--header", "X-Test: 1", "--status", "404")
    assert result.returncode == 0, result.stderr
    cf = json.loads(result.stdout)["Records"][0]["cf"]
    assert cf["config"]["eventType"] == trigger
    assert cf["request"]["uri"] == "/x"
    assert cf["request"]["headers"]["x-test"] == [{"key": "X-Test", "value": "1"}]
    assert ("response" in cf) is trigger.endswith("response")
    if "response" in cf:
        assert cf["response"]["status"] == "404"
    assert ("origin" in cf["request"]) is trigger.startswith("origin")


@pytest.mark.parametrize("multi_value", [False, True], ids=["single-value", "multi-value"])
def test_edge_events_alb_is_the_event_a_function_origin_gets(multi_value: bool) -> None:
    mode = "--multi-value-headers" if multi_value else "--single-value-headers"
    body = '{"n": 1}'
    result = _edge(
        "events",
        "alb",
        mode,
        "--method",
        "post",
        "--uri",
        "/echo",
        "--querystring",
        "tag=a&tag=b",
        "--header",
        "Content-Type: application/json",
        "--body",
        body,
    )
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    # The reference sample's fields for this target-group setting, and nothing else.
    assert set(event) == set(MULTI_VALUE_SAMPLE if multi_value else SINGLE_VALUE_SAMPLE)
    assert event["httpMethod"] == "POST"
    assert (event["body"], event["isBase64Encoded"]) == (body, False)
    # Exactly what the codec builds from the request the sample describes.
    request, trace_id = alb_sample_input(event, multi_value=multi_value)
    rebuilt = build_alb_event(
        dataclasses.replace(request, body=body.encode()),
        multi_value=multi_value,
        target_group_arn=event["requestContext"]["elb"]["targetGroupArn"],
        trace_id=trace_id,
    )
    assert orjson.loads(rebuilt) == event
    # And what an ALB adapter running unmodified accepts.
    answer = wsgi_app.handler(event, FakeContext())
    seen = json.loads(
        decode_alb_response(json.dumps(answer).encode(), multi_value=multi_value).body
    )
    assert (seen["method"], seen["path"]) == ("POST", "/echo")
    assert base64.b64decode(seen["body_base64"]) == body.encode()


@pytest.mark.parametrize("multi_value", [False, True], ids=["single-value", "multi-value"])
def test_edge_events_alb_health_check(multi_value: bool) -> None:
    mode = "--multi-value-headers" if multi_value else "--single-value-headers"
    result = _edge("events", "alb-health-check", mode)
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    arn = event["requestContext"]["elb"]["targetGroupArn"]
    assert event == orjson.loads(
        build_health_check_event(multi_value=multi_value, target_group_arn=arn)
    )
    if not multi_value:
        assert {**event, "requestContext": None} == {**HEALTH_CHECK_SAMPLE, "requestContext": None}


@pytest.mark.parametrize(
    ("condition", "outcome", "invoke_count"),
    [
        pytest.param("Success", Outcome(200, b'{"statusCode": 200}'), 1, id="success"),
        pytest.param(
            "RetriesExhausted",
            Outcome(
                200,
                b'{"errorMessage": "RequestId: e4b46cbf-b738-xmpl-8880-a18cdf61200e Process '
                b'exited before completing request"}',
                "Unhandled",
            ),
            3,
            id="retries-exhausted",
        ),
        pytest.param(
            "EventAgeExceeded",
            Outcome(
                429,
                b'{"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded.", '
                b'"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}',
            ),
            0,
            id="event-age-exceeded",
        ),
    ],
)
def test_edge_events_destination_record(
    condition: str, outcome: Outcome, invoke_count: int
) -> None:
    payload = '{"order": 7}'
    result = _edge(
        "events",
        "destination-record",
        "--condition",
        condition,
        "--function",
        "fn",
        "--payload",
        payload,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    reference = json.loads(
        '{"version": "1.0", "timestamp": "2019-11-14T18:16:05.568Z", "requestContext": {'
        '"requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e", "functionArn": '
        '"arn:aws:lambda:us-east-2:123456789012:function:my-function:$LATEST", "condition": '
        '"RetriesExhausted", "approximateInvokeCount": 3}, "requestPayload": {}, '
        '"responseContext": {"statusCode": 200, "executedVersion": "$LATEST", '
        '"functionError": "Unhandled"}, "responsePayload": {}}'
    )  # events/async-destination-record.json, payloads emptied
    assert set(record) == set(reference)
    assert set(record["requestContext"]) == set(reference["requestContext"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("timestamp"))
    expected = json.loads(
        invocation_record(
            request_id=record["requestContext"]["requestId"],
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn:$LATEST",
            condition=condition,
            invoke_count=invoke_count,
            request_payload=payload.encode(),
            outcome=outcome,
            now=0.0,
        )
    )
    expected.pop("timestamp")
    assert record == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("alb", "--status", "404"), "--status goes with", id="status-on-alb"),
        pytest.param(("origin-response", "--body", "x"), "--body goes with", id="body-on-response"),
        pytest.param(
            ("viewer-request", "--condition", "Success"),
            "--condition goes with",
            id="record-option",
        ),
        pytest.param(
            ("alb", "--multi-value-headers", "--condition", "Success"), "--condition", id="mixed"
        ),
        pytest.param(
            ("viewer-request", "--multi-value-headers"),
            "--multi-value-headers goes with",
            id="alb-option",
        ),
        pytest.param(("destination-record", "--payload", "{"), "not JSON", id="payload-not-json"),
        pytest.param(
            ("destination-record", "--function", "a b"), "function name", id="bad-function"
        ),
    ],
)
def test_edge_events_refuses_options_it_would_ignore(args: tuple[str, ...], message: str) -> None:
    result = _edge("events", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_edge_invoke_runs_a_handler_and_prints_result_and_log(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(_edge("events", "viewer-request", "--uri", "/old").stdout)
    result = _edge("invoke", "examples/functions/redirects.py::handler", "--event", str(event))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "301"
    assert "START RequestId: " in result.stderr
    assert "REPORT RequestId: " in result.stderr


def test_edge_invoke_exits_1_with_lambdas_error_document(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(_edge("events", "viewer-request").stdout)
    # security_headers expects a response event: KeyError on a request event
    result = _edge(
        "invoke", "examples/functions/security_headers.py::handler", "--event", str(event)
    )
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "KeyError"
    assert error["errorMessage"] == "'response'"
    assert "[ERROR] KeyError: 'response'" in result.stderr


def test_quick_hooks_without_a_config_file(start_edge: Any, origin: OriginServer) -> None:
    hooks = REPO / "tests" / "edge_functions" / "hooks.py"
    edge: EdgeProcess = start_edge(
        "--origin",
        origin.url,
        "--viewer-request",
        f"{hooks}::tag_request",
        "--origin-response",
        "tests/edge_functions/hooks.tag_response",  # the config file's spelling works too
    )
    with httpx.Client(base_url=edge.url) as c:
        response = c.get("/quick")
    assert dict(response.json()["headers"])["x-viewer-request"] == "ran"
    assert response.headers["x-origin-response"] == "ran"
    # Each function log line names the function (its file and function) and the trigger.
    edge.wait_for(r"hooks-tag-request viewer-request \| START RequestId: ")
    edge.wait_for(r"hooks-tag-response origin-response \| REPORT RequestId: ")


def test_quick_origin_without_cache_serves_an_edited_file_at_once(
    start_edge: Any, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    page = site / "page.html"
    page.write_text("first")
    edge: EdgeProcess = start_edge("--origin", str(site), "--cache", "disabled")
    with httpx.Client(base_url=edge.url) as c:
        assert c.get("/page.html").text == "first"
        page.write_text("second")
        again = c.get("/page.html")
    assert again.text == "second"
    assert again.headers["x-cache"] == "Miss from edge"


HOOKS = REPO / "tests" / "edge_functions" / "hooks.py"


@pytest.mark.parametrize(
    ("target", "kind", "expected"),
    [
        pytest.param("url", None, ("custom", "127.0.0.1"), id="url-is-custom"),
        pytest.param("url", "s3", ("s3", "127.0.0.1"), id="url-as-s3"),
        pytest.param("dir", None, ("s3", "origin.s3.us-east-1.amazonaws.com"), id="dir-is-s3"),
        pytest.param(
            "dir",
            "custom",
            ("custom", "origin.s3-website-us-east-1.amazonaws.com"),
            id="dir-as-website-endpoint",
        ),
    ],
)
def test_quick_origin_request_sees_the_body_and_the_origin_kind(
    start_edge: Any,
    origin: OriginServer,
    target: str,
    kind: str | None,
    expected: tuple[str, str],
) -> None:
    where = origin.url if target == "url" else str(EXAMPLES / "site" / "public")
    args = ["--origin", where, "--origin-request", f"{HOOKS}::echo_event_response"]
    if kind is not None:
        args += ["--origin-kind", kind]
    edge: EdgeProcess = start_edge(*args, "--include-body")
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        response = c.post("/form", content=b"name=edge")
    assert response.status_code == 200, response.text
    request = response.json()["Records"][0]["cf"]["request"]
    assert base64.b64decode(request["body"]["data"]) == b"name=edge"
    assert request["body"]["inputTruncated"] is False
    described, domain = expected
    assert list(request["origin"]) == [described]
    assert request["origin"][described]["domainName"] == domain


def test_quick_viewer_request_sees_the_body(start_edge: Any, origin: OriginServer) -> None:
    edge: EdgeProcess = start_edge(
        "--origin",
        origin.url,
        "--viewer-request",
        f"{HOOKS}::echo_event_response",
        "--include-body",
    )
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        response = c.put("/upload", content=b"\x00binary\xff")
    request = response.json()["Records"][0]["cf"]["request"]
    assert base64.b64decode(request["body"]["data"]) == b"\x00binary\xff"


def test_quick_s3_described_http_origin_is_still_reached(
    start_edge: Any, origin: OriginServer
) -> None:
    edge: EdgeProcess = start_edge(
        "--origin",
        origin.url,
        "--origin-kind",
        "s3",
        "--origin-request",
        f"{HOOKS}::tag_request",
    )
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        response = c.get("/bucket/key")
    assert response.status_code == 200
    assert dict(response.json()["headers"])["x-origin-request"] == "ran"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("--origin", "http://127.0.0.1:9", "--include-body"),
            "--include-body goes with --viewer-request or --origin-request",
            id="include-body-without-a-request-function",
        ),
        pytest.param(
            (
                "--origin",
                "http://127.0.0.1:9",
                "--origin-response",
                f"{HOOKS}::tag_response",
                "--include-body",
            ),
            "--include-body goes with --viewer-request or --origin-request",
            id="include-body-with-a-response-function",
        ),
        pytest.param(
            ("examples/edge.toml", "--origin-kind", "s3"),
            "--origin-kind goes with --origin",
            id="origin-kind-without-origin",
        ),
        pytest.param(
            ("--origin", "http://127.0.0.1:9", "--origin-kind", "S3"),
            "'S3' is not one of 'custom', 's3'",
            id="origin-kind-unknown",
        ),
    ],
)
def test_quick_flags_that_would_be_ignored_are_usage_errors(
    args: tuple[str, ...], message: str
) -> None:
    result = _edge("serve", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
