"""X-Amzn-Trace-Id: every viewer request's trace reaches its origin and its functions
(`_X_AMZN_TRACE_ID`), a viewer's own trace is kept, a malformed or oversized one replaced; the
Invoke API and function origins pass theirs on as Lambda and a load balancer do."""

from __future__ import annotations

import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.traces import viewer_trace
from tests.conftest import EdgeProcess
from tests.invoke_functions.harness import lambda_client
from tests.origin_app import OriginServer

FUNCTIONS = Path(__file__).resolve().parent / "trace_functions"
ROOT = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$")
VIEWER_TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
HAS_NODE = shutil.which("node") is not None

CONFIG = """
[origins.app]
url = "{origin}"

[origins.fn]
function = "alb"

[[behaviors]]
path = "/py/*"
origin = "app"
cache = "disabled"
viewer-request = "viewer"
origin-request = "shows"

[[behaviors]]
path = "/node/*"
origin = "app"
cache = "disabled"
viewer-request = "{node}"

[[behaviors]]
path = "/fn/*"
origin = "fn"
cache = "disabled"

[[behaviors]]
path = "*"
origin = "app"
cache = "disabled"

[functions.viewer]
handler = "{functions}/traced.viewer_request"

[functions.shows]
handler = "{functions}/traced.origin_request"

[functions.alb]
handler = "{functions}/traced.alb"

[functions.invoked]
handler = "{functions}/traced.invoked"
"""

NODE_FUNCTION = """
[functions.node]
runtime = "nodejs"
handler = "{functions}/traced.handler"
"""


@pytest.fixture(scope="module")
def edge(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("traces")
    config = CONFIG.format(
        origin=origin.url, functions=FUNCTIONS, node="node" if HAS_NODE else "viewer"
    )
    if HAS_NODE:
        config += NODE_FUNCTION.format(functions=FUNCTIONS)
    path = tmp / "edge.toml"
    path.write_text(config)
    process = EdgeProcess([str(path), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]).start(
        tmp
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


def _origin_saw(origin: OriginServer, target: str) -> dict[str, str]:
    entry = origin.log.wait_for_target(target)
    return dict(entry["headers"])


def test_a_request_without_a_trace_reaches_the_origin_with_a_new_one(
    client: httpx.Client, edge: EdgeProcess, origin: OriginServer
) -> None:
    client.get(f"{edge.url}/plain/new").raise_for_status()
    client.get(f"{edge.url}/plain/other").raise_for_status()
    first = _origin_saw(origin, "/plain/new")["x-amzn-trace-id"]
    second = _origin_saw(origin, "/plain/other")["x-amzn-trace-id"]
    assert ROOT.match(first)
    assert ROOT.match(second)
    assert first != second


def test_a_viewers_trace_is_kept(
    client: httpx.Client, edge: EdgeProcess, origin: OriginServer
) -> None:
    client.get(f"{edge.url}/plain/kept", headers={"x-amzn-trace-id": VIEWER_TRACE})
    assert _origin_saw(origin, "/plain/kept")["x-amzn-trace-id"] == VIEWER_TRACE


@pytest.mark.parametrize(
    "sent",
    [
        "Root=nonsense",
        "Parent=53995c3f42cd8ad8",
        "Root=1-5759e988-" + "a" * 24 + ";x=" + "y" * 1100,
    ],
    ids=["malformed-root", "no-root", "oversized"],
)
def test_a_viewers_malformed_or_oversized_trace_is_replaced(
    client: httpx.Client, edge: EdgeProcess, origin: OriginServer, sent: str
) -> None:
    target = f"/plain/replaced-{len(sent)}"
    client.get(f"{edge.url}{target}", headers={"x-amzn-trace-id": sent})
    assert ROOT.match(_origin_saw(origin, target)["x-amzn-trace-id"])


def test_a_python_function_runs_under_the_requests_trace(
    client: httpx.Client, edge: EdgeProcess, origin: OriginServer
) -> None:
    client.get(f"{edge.url}/py/one", headers={"x-amzn-trace-id": VIEWER_TRACE})
    client.get(f"{edge.url}/py/two")
    kept = _origin_saw(origin, "/py/one")
    assert kept["x-function-trace"] == VIEWER_TRACE
    made = _origin_saw(origin, "/py/two")
    # The one the origin got; origin-request's event shows only what the viewer sent.
    assert made["x-function-trace"] == made["x-amzn-trace-id"]
    assert ROOT.match(made["x-amzn-trace-id"])
    assert made["x-event-shows-trace"] == "no"
    assert kept["x-event-shows-trace"] == "yes"


@pytest.mark.skipif(not HAS_NODE, reason="`node` is not installed")
def test_a_nodejs_function_runs_under_the_requests_trace(
    client: httpx.Client, edge: EdgeProcess, origin: OriginServer
) -> None:
    client.get(f"{edge.url}/node/one", headers={"x-amzn-trace-id": VIEWER_TRACE})
    client.get(f"{edge.url}/node/two")
    assert _origin_saw(origin, "/node/one")["x-function-trace"] == VIEWER_TRACE
    made = _origin_saw(origin, "/node/two")
    assert made["x-function-trace"] == made["x-amzn-trace-id"]


def test_a_function_origin_sees_the_load_balancers_hop_on_the_edges_trace(
    client: httpx.Client,
    edge: EdgeProcess,
) -> None:
    seen = client.get(f"{edge.url}/fn/x", headers={"x-amzn-trace-id": VIEWER_TRACE}).json()
    assert seen["environment"] == seen["event"]
    fields = dict(part.split("=", 1) for part in seen["event"].split(";"))
    assert fields["Root"] == "1-5759e988-bd862e3fe1be46a994272793"  # the viewer's trace
    assert re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{24}", fields["Self"])  # the balancer's hop


def test_the_invoke_api_passes_the_callers_trace_or_makes_one(
    client: httpx.Client, edge: EdgeProcess
) -> None:
    url = f"{edge.admin_url}/2015-03-31/functions/invoked/invocations"
    passed = client.post(url, content=b"{}", headers={"x-amzn-trace-id": VIEWER_TRACE})
    assert passed.json() == {"trace": VIEWER_TRACE}
    lambda_api: Any = lambda_client(edge)
    made = lambda_api.invoke(FunctionName="invoked", Payload=b"{}")["Payload"].read()
    assert ROOT.match(httpx.Response(200, content=made).json()["trace"])


def test_viewer_trace_takes_the_last_header() -> None:
    other = "Root=1-00000000-" + "0" * 24
    headers = [(b"x-amzn-trace-id", other.encode()), (b"x-amzn-trace-id", VIEWER_TRACE.encode())]
    assert viewer_trace(headers) == VIEWER_TRACE


# -- OpenTelemetry spans ([tracing]) ---------------------------------------------------------

TRACED_CONFIG = """
[origins.app]
url = "{origin}"

[[behaviors]]
path = "*"
origin = "app"
viewer-request = "viewer"

[functions.viewer]
handler = "{functions}/traced.viewer_request"

[tracing]
otlp_endpoint = "{collector}/v1/traces"
service_name = "edge-under-test"
"""


class Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint on 127.0.0.1: keeps every span it is sent."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.spans: list[tuple[str, Any]] = []  # (service.name, span)
        self.changed = threading.Condition()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 15) -> list[Any]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.spans) >= count, timeout):
                raise AssertionError(f"{len(self.spans)} spans arrived, expected {count}")
            return [span for _, span in self.spans]


class _CollectorHandler(http.server.BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers["content-length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.server.changed:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.server.spans.append((attributes.get("service.name", ""), span))
            self.server.changed.notify_all()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.shutdown()
    server.server_close()


def test_spans_reach_a_collector_in_the_viewers_trace(
    client: httpx.Client, origin: OriginServer, collector: Collector, tmp_path: Path
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        TRACED_CONFIG.format(origin=origin.url, functions=FUNCTIONS, collector=collector.url)
    )
    edge = EdgeProcess(
        [str(config), "--listen", "127.0.0.1:0"], env={"OTEL_BSP_SCHEDULE_DELAY": "100"}
    ).start(tmp_path)
    try:
        response = client.get(f"{edge.url}/traced/one", headers={"x-amzn-trace-id": VIEWER_TRACE})
        assert response.status_code == 200
        spans = {span.name: span for span in collector.wait_for(4)}
    finally:
        edge.stop()
    request = spans["GET *"]
    assert request.trace_id.hex() == "5759e988bd862e3fe1be46a994272793"  # the viewer's Root
    assert request.parent_span_id.hex() == "53995c3f42cd8ad8"  # the viewer's Parent
    attributes = {a.key: a.value for a in request.attributes}
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["edge.x_cache"].string_value == "Miss"
    for child in ("viewer-request viewer", "cache lookup", "origin app"):
        assert spans[child].trace_id == request.trace_id
        assert spans[child].parent_span_id == request.span_id
    assert {service for service, _ in collector.spans} == {"edge-under-test"}


def test_a_new_trace_is_the_span_trace(
    client: httpx.Client, origin: OriginServer, collector: Collector, tmp_path: Path
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        TRACED_CONFIG.format(origin=origin.url, functions=FUNCTIONS, collector=collector.url)
    )
    edge = EdgeProcess(
        [str(config), "--listen", "127.0.0.1:0"], env={"OTEL_BSP_SCHEDULE_DELAY": "100"}
    ).start(tmp_path)
    try:
        client.get(f"{edge.url}/traced/new")
        spans = {span.name: span for span in collector.wait_for(4)}
    finally:
        edge.stop()
    sent = _origin_saw(origin, "/traced/new")["x-amzn-trace-id"]
    root = sent.removeprefix("Root=1-").replace("-", "")
    assert spans["GET *"].trace_id.hex() == root
    assert not spans["GET *"].parent_span_id
