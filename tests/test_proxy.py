"""The proxy end to end: the real `edge serve` in front of a real origin server."""

from __future__ import annotations

import hashlib
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EdgeProcess, vm_kib
from tests.origin_app import OriginServer
from tests.rawhttp import exchange, read_response, status_of

CONFIG = """
[server]
name = "edge-test"
max_body_bytes = 1048576
admin = "127.0.0.1:0"

[origins.app]
url = "{origin}/prefix"
headers = {{ X-Origin-Secret = "s3cret" }}
read_timeout = 1.5
connect_timeout = 2

[origins.keep]
url = "{origin}"
keep_host = true

[origins.dead]
url = "http://127.0.0.1:{dead_port}"

[[behaviors]]
path = "/readonly/*"
origin = "app"
methods = "get-head"

[[behaviors]]
path = "/options/*"
origin = "app"
methods = "get-head-options"

[[behaviors]]
path = "/keep/*"
origin = "keep"

[[behaviors]]
path = "/dead/*"
origin = "dead"

[[behaviors]]
path = "*"
origin = "app"
"""


def _dead_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def edge(
    origin: OriginServer, tmp_path_factory: pytest.TempPathFactory, engine: str
) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("edge")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(origin=origin.url, dead_port=_dead_port()))
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"], engine=engine).start(tmp)
    yield process
    process.stop()


@pytest.fixture
def client(edge: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        yield c


def _headers(echo: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        out.setdefault(name, []).append(value)
    return out


def test_forwards_path_query_and_body_under_the_origin_prefix(client: httpx.Client) -> None:
    response = client.post("/api/items?b=2&a=%20x", content=b"hello")
    assert response.status_code == 200
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["target"] == "/prefix/api/items?b=2&a=%20x"
    assert echo["body_size"] == 5
    assert echo["body_sha256"] == hashlib.sha256(b"hello").hexdigest()


def test_request_headers_are_rewritten_for_the_origin(
    client: httpx.Client, origin: OriginServer
) -> None:
    response = client.get(
        "/h",
        headers={
            "Host": "viewer.example",
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "secret",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic Zm9v",
            "X-Origin-Secret": "viewer-tries",
            "X-Kept": "yes",
        },
    )
    headers = _headers(response.json())
    assert headers["host"] == [f"127.0.0.1:{origin.port}"]
    assert headers["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-host"] == ["viewer.example"]
    assert headers["via"] == ["1.1 edge-test"]
    assert headers["x-origin-secret"] == ["s3cret"]
    assert headers["x-kept"] == ["yes"]
    for hop in ("x-drop-me", "keep-alive", "te", "proxy-authorization", "connection"):
        assert hop not in headers, hop


def test_keep_host_sends_the_viewers_host(client: httpx.Client) -> None:
    echo = client.get("/keep/x", headers={"Host": "viewer.example"}).json()
    assert _headers(echo)["host"] == ["viewer.example"]
    assert echo["target"] == "/keep/x"


def test_response_headers_lose_hop_by_hop_and_gain_via_and_x_cache(client: httpx.Client) -> None:
    response = client.get("/hop")
    assert response.status_code == 200
    assert response.text == "ok"
    assert "x-secret-hop" not in response.headers
    assert "keep-alive" not in response.headers
    assert "proxy-authenticate" not in response.headers
    assert "upgrade" not in response.headers
    assert response.headers["x-end-to-end"] == "kept"
    assert response.headers["via"] == "1.1 origin-cache, 1.1 edge-test"
    assert response.headers["x-cache"] == "Miss from edge-test"
    assert re.fullmatch(r"[A-Za-z0-9_-]{56}", response.headers["x-amz-cf-id"])


def test_origin_errors_pass_through_with_error_x_cache(client: httpx.Client) -> None:
    response = client.get("/status/503")
    assert response.status_code == 503
    assert response.text == "status 503"
    assert response.headers["x-cache"] == "Error from edge-test"


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        pytest.param("/readonly/a", "GET", 200, id="get-head-allows-get"),
        pytest.param("/readonly/a", "HEAD", 200, id="get-head-allows-head"),
        pytest.param("/readonly/a", "OPTIONS", 403, id="get-head-refuses-options"),
        pytest.param("/readonly/a", "POST", 403, id="get-head-refuses-post"),
        pytest.param("/options/a", "OPTIONS", 200, id="get-head-options-allows-options"),
        pytest.param("/options/a", "DELETE", 403, id="get-head-options-refuses-delete"),
        pytest.param("/any", "PATCH", 200, id="all-allows-patch"),
        pytest.param("/any", "DELETE", 200, id="all-allows-delete"),
        pytest.param("/any", "PUT", 200, id="all-allows-put"),
        pytest.param("/any", "TRACE", 403, id="all-refuses-trace"),
    ],
)
def test_allowed_method_sets(client: httpx.Client, path: str, method: str, status: int) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    if status == 403:
        assert response.headers["x-cache"] == "Error from edge-test"


def test_head_forwards_head_and_sends_no_body(client: httpx.Client, origin: OriginServer) -> None:
    response = client.head("/head-check")
    assert response.status_code == 200
    assert response.content == b""
    assert origin.log.requests[-1]["method"] == "HEAD"


def test_dead_origin_gives_502_with_a_log_line_naming_it(
    client: httpx.Client, edge: EdgeProcess
) -> None:
    response = client.get("/dead/x")
    assert response.status_code == 502
    assert response.headers["x-cache"] == "Error from edge-test"
    assert response.headers["x-edge-error"] == "OriginConnectError"
    request_id = response.headers["x-amz-cf-id"]
    line = edge.wait_for(
        rf"request {re.escape(request_id)} GET /dead/x: Error -> 502 OriginConnectError: "
        r"origin 'dead': .*"
    )
    assert "cannot connect" in line.group(0)


def test_slow_origin_gives_504(client: httpx.Client, edge: EdgeProcess) -> None:
    response = client.get("/slow/5")
    assert response.status_code == 504
    assert response.headers["x-cache"] == "Error from edge-test"
    assert response.headers["x-edge-error"] == "OriginCommError"
    request_id = re.escape(response.headers["x-amz-cf-id"])
    edge.wait_for(
        rf"request {request_id} GET /slow/5: Error -> 504 OriginCommError: "
        r"origin 'app': no read within 1.5 s"
    )


def test_body_over_the_limit_gets_413(client: httpx.Client) -> None:
    too_big = b"x" * (1048576 + 1)
    assert client.post("/upload", content=too_big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"y" * 65536  # 1.25 MiB, sent chunked (no Content-Length)

    assert client.post("/upload", content=chunks()).status_code == 413


def test_headers_over_the_limit_get_431(edge: EdgeProcess) -> None:
    port = int(edge.url.rsplit(":", 1)[1])
    big = b"X-Big: " + b"a" * 30000 + b"\r\n"
    response = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert status_of(response) == 431


def test_url_over_the_limit_gets_414(client: httpx.Client) -> None:
    assert client.get("/" + "a" * 9000).status_code == 414


def test_keep_alive_serves_several_requests_on_one_connection(edge: EdgeProcess) -> None:
    port = int(edge.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for n in range(3):
            sock.sendall(f"GET /ka/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            response = read_response(sock)
            assert status_of(response) == 200
            assert f'"/prefix/ka/{n}"'.encode() in response


def test_access_log_has_one_line_per_request(client: httpx.Client, edge: EdgeProcess) -> None:
    response = client.get("/logged/path?q=1")
    request_id = response.headers["x-amz-cf-id"]
    # The line is written once the request is complete; the next request on the same
    # kept-alive connection is only read after that.
    client.get("/logged/next")
    lines = [line for line in edge.access_lines() if request_id in line]
    assert len(lines) == 1
    assert re.search(
        r"Z 127\.0\.0\.1 GET /logged/path 200 \d+ [\d.]+ms behavior=\* origin=app result=Miss",
        lines[0],
    )


def test_admin_health_and_metrics(edge: EdgeProcess, client: httpx.Client) -> None:
    client.get("/metrics-probe")
    client.get("/metrics-probe")  # the first is counted before the second is read
    with httpx.Client(base_url=edge.admin_url) as admin:
        assert admin.get("/healthz").text == "ok\n"
        metrics = admin.get("/metrics").text
    assert re.search(r'edge_requests_total\{behavior="\*",status="200"\} [1-9]', metrics)
    assert 'edge_origin_latency_seconds_bucket{le="0.005",origin="app"}' in metrics


def test_streams_200_mb_down_and_up_without_holding_them(
    start_edge: Any, origin: OriginServer, engine: str
) -> None:
    edge: EdgeProcess = start_edge("--origin", origin.url, "--no-access-log", "--engine", engine)
    size = 200 * 1024 * 1024
    with httpx.Client(base_url=edge.url, timeout=60) as client:
        client.get("/warm-up")
        before = vm_kib(edge.pid, "VmHWM")
        received = 0
        with client.stream("GET", f"/bytes/{size}") as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                received += len(chunk)
        assert received == size

        block = b"u" * 65536

        def upload() -> Iterator[bytes]:
            for _ in range(size // len(block)):
                yield block

        echo = client.post("/upload", content=upload()).json()
    assert echo["body_size"] == size
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)
    assert echo["body_sha256"] == expected.hexdigest()
    growth_mb = (vm_kib(edge.pid, "VmHWM") - before) / 1024
    assert growth_mb < 50, f"the edge's peak RSS grew by {growth_mb:.1f} MB"


def test_graceful_shutdown_finishes_in_flight_requests(
    start_edge: Any, origin: OriginServer, engine: str
) -> None:
    edge: EdgeProcess = start_edge("--origin", origin.url, "--engine", engine)
    result: dict[str, Any] = {}

    def slow_request() -> None:
        with httpx.Client(timeout=30) as c:
            result["response"] = c.get(f"{edge.url}/slow/1?{engine}")

    thread = threading.Thread(target=slow_request)
    thread.start()
    # Wait until the origin has the request, so it is truly in flight at the edge.
    origin.log.wait_for_target(f"/slow/1?{engine}")
    assert edge.stop(signal.SIGTERM) == 0
    thread.join(30)
    assert result["response"].status_code == 200
    assert result["response"].text == "slow answer"


def test_two_workers_serve_and_stop_cleanly(
    start_edge: Any, origin: OriginServer, engine: str
) -> None:
    edge: EdgeProcess = start_edge(
        "--origin", origin.url, "--workers", "2", "--admin", "127.0.0.1:0", "--engine", engine
    )
    with httpx.Client(base_url=edge.url) as c:
        for n in range(20):
            assert c.get(f"/w/{n}", headers={"Connection": "close"}).status_code == 200
    counted = re.compile(r'edge_requests_total\{behavior="\*",status="200"\} 20\.0')
    with httpx.Client(base_url=edge.admin_url) as admin:
        # Workers publish their counts every half second: read until both have (bounded).
        deadline = time.monotonic() + 10
        metrics = admin.get("/metrics").text
        while not counted.search(metrics) and time.monotonic() < deadline:
            metrics = admin.get("/metrics").text
    assert counted.search(metrics), metrics
    assert edge.stop() == 0


def test_one_line_proxy_to_a_directory(start_edge: Any, tmp_path: Path, engine: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>home</h1>")
    edge: EdgeProcess = start_edge("--origin", str(site), "--engine", engine)
    with httpx.Client(base_url=edge.url) as c:
        response = c.get("/")
    assert response.status_code == 200
    assert response.text == "<h1>home</h1>"
    assert response.headers["via"] == "1.1 edge"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(b"/../secret.txt", id="dot-dot"),
        pytest.param(b"/sub/../../secret.txt", id="dot-dot-after-dir"),
        pytest.param(b"/%2e%2e/secret.txt", id="encoded-dots"),
        pytest.param(b"/%2E%2e/secret.txt", id="encoded-dots-mixed-case"),
        pytest.param(b"/..%2fsecret.txt", id="encoded-slash"),
        pytest.param(b"/..%5csecret.txt", id="encoded-backslash"),
        pytest.param(b"/..\\secret.txt", id="backslash"),
        pytest.param(b"/secret.txt%00.html", id="nul-byte"),
        pytest.param(b"/outside-link", id="symlink-out-of-root"),
        pytest.param(b"/sub/%2e%2e/%2e%2e/secret.txt", id="encoded-dots-nested"),
    ],
)
def test_directory_origin_never_serves_outside_its_root(
    target: bytes, site_edge: EdgeProcess
) -> None:
    port = int(site_edge.url.rsplit(":", 1)[1])
    response = exchange(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) in (400, 403, 404)
    assert b"top secret" not in response


@pytest.fixture(scope="module")
def site_edge(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("site")
    (tmp / "secret.txt").write_text("top secret")
    root = tmp / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("home")
    (root / "outside-link").symlink_to(tmp / "secret.txt")
    process = EdgeProcess(["--origin", str(root), "--listen", "127.0.0.1:0"], engine=engine).start(
        tmp
    )
    yield process
    process.stop()


def test_directory_origin_through_the_edge(site_edge: EdgeProcess) -> None:
    with httpx.Client(base_url=site_edge.url) as c:
        home = c.get("/")
        assert home.text == "home"
        etag = home.headers["etag"]
        assert c.get("/", headers={"If-None-Match": etag}).status_code == 304
        partial = c.get("/index.html", headers={"Range": "bytes=1-2"})
        assert partial.status_code == 206
        assert partial.text == "om"
        assert c.get("/index.html", headers={"Range": "bytes=9-"}).status_code == 416
        assert c.head("/index.html").headers["content-length"] == "4"


def test_exactly_one_date_header(client: httpx.Client, edge: EdgeProcess) -> None:
    # The origin sends a Date; the edge forwards it and adds none of its own (RFC 9110 §6.6.1).
    forwarded = client.get("/status/200")
    assert len(forwarded.headers.get_list("date")) == 1
    refused = client.request("TRACE", "/x")
    assert len(refused.headers.get_list("date")) == 1
