"""HTTP as CloudFront answers it, over raw sockets to the real `edge serve`: methods are
case-sensitive, obsolete line folding and hosts that are not hosts are refused, a refusal the
server's parser makes is answered and logged like the edge's own, long URLs are logged
bounded, and a function origin sees the length of the body it gets."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EdgeProcess
from tests.rawhttp import exchange, status_of


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, engine: str) -> Iterator[EdgeProcess]:
    root = tmp_path_factory.mktemp("strict")
    site = root / "site"
    site.mkdir()
    (site / "index.html").write_text("hello\n")
    process = EdgeProcess(["--origin", str(site), "--listen", "127.0.0.1:0"], engine=engine).start(
        root
    )
    yield process
    process.stop()


def _port(edge: EdgeProcess) -> int:
    return int(edge.url.rsplit(":", 1)[1])


def _send(edge: EdgeProcess, head: bytes) -> bytes:
    return exchange(_port(edge), head)


def _header(response: bytes, name: str) -> str | None:
    match = re.search(rb"\r\n" + name.encode() + rb": ([^\r]*)", response, re.IGNORECASE)
    return None if match is None else match.group(1).decode()


def _access_line(edge: EdgeProcess, request_id: str) -> str:
    """The access-log line of `request_id` (written once the answer is out)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in edge.access_lines():
            if request_id in line:
                return line
        time.sleep(0.02)
    raise AssertionError(f"no access-log line for {request_id}:\n{edge.access_lines()}")


def test_an_upper_case_method_is_served(edge: EdgeProcess) -> None:
    response = _send(edge, b"GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(response) == 200
    assert response.endswith(b"hello\n")


@pytest.mark.parametrize("method", [b"get", b"Get", b"hEAD"])
def test_a_method_is_case_sensitive(edge: EdgeProcess, method: bytes) -> None:
    response = _send(edge, method + b" /index.html HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(response) == 400
    assert _header(response, "x-edge-error") == "InvalidMethod"
    assert b"hello" not in response


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", id="space"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", id="tab"),
        pytest.param(b"GET / HTTP/1.1\r\nX-A: b\r\n  c\r\nHost: a\r\n\r\n", id="before-host"),
    ],
)
def test_obsolete_line_folding_is_refused(edge: EdgeProcess, head: bytes) -> None:
    response = _send(edge, head)
    assert status_of(response) == 400
    assert _header(response, "connection") == "close"
    if edge.engine == "hypercorn":  # under granian hyper refuses it: see _HYPER_REFUSES
        assert _header(response, "x-edge-error") == "ObsoleteLineFolding"


def test_a_value_with_inner_spaces_is_not_folding(edge: EdgeProcess) -> None:
    response = _send(
        edge, b"GET /index.html HTTP/1.1\r\nHost: a\r\nX-A: b  c\r\nConnection: close\r\n\r\n"
    )
    assert status_of(response) == 200


@pytest.mark.parametrize("host", [b"exa mple.com", b"a b", b"a\tb"])
def test_a_host_with_spaces_is_refused(edge: EdgeProcess, host: bytes) -> None:
    response = _send(edge, b"GET /index.html HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert status_of(response) == 400
    assert _header(response, "x-edge-error") == "InvalidHost"


# What granian's parser (hyper) refuses before the edge sees the request, and its status: a
# bare answer with no body, no X-Edge-Error and no access-log line (granian has no hook for
# it). hyper cannot tell a request line longer than its buffer from a header section that is.
_HYPER_REFUSES = {"ws-name": 400, "ctl": 400, "line-longer-than-the-parser-reads": 431}


@pytest.mark.parametrize(
    ("head", "status", "detail"),
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "MalformedRequest", id="ws-name"),
        pytest.param(b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "MalformedRequest", id="ctl"),
        pytest.param(b"get / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "InvalidMethod", id="method"),
        pytest.param(
            b"GET /" + b"a" * 9_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
            414,
            "UrlTooLong",
            id="long-url",
        ),
        pytest.param(
            b"GET /" + b"a" * 300_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
            414,
            "UrlTooLong",
            id="line-longer-than-the-parser-reads",
        ),
    ],
)
def test_a_parser_refusal_has_the_error_page_and_an_access_log_line(
    request: pytest.FixtureRequest, edge: EdgeProcess, head: bytes, status: int, detail: str
) -> None:
    response = _send(edge, head)
    hyper = _HYPER_REFUSES.get(request.node.callspec.id.partition("-")[2])
    if edge.engine == "granian" and hyper is not None:
        assert status_of(response) == hyper
        assert b"content-length: 0\r\n" in response
        return
    assert status_of(response) == status
    assert _header(response, "x-edge-error") == detail
    request_id = _header(response, "x-amz-cf-id")
    assert request_id
    body = response.split(b"\r\n\r\n", 1)[1]
    assert f"{status} ERROR".encode() in body
    assert request_id.encode() in body
    assert int(_header(response, "content-length") or -1) == len(body)
    line = _access_line(edge, request_id)
    assert f" {status} " in line
    assert len(line) < 1500


def test_a_long_url_is_logged_bounded(edge: EdgeProcess) -> None:
    path = b"/" + b"q" * 6011
    response = _send(edge, b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(response) == 404
    line = _access_line(edge, _header(response, "x-amz-cf-id") or "?")
    assert "q" * 1000 in line
    assert "q" * 2000 not in line
    assert "(6012 chars)" in line


_ECHO = """
import json

def handler(event, context):
    body = {"headers": event["headers"], "body": event["body"], "b64": event["isBase64Encoded"]}
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(body)}
"""


def test_a_function_origin_sees_the_length_of_a_chunked_body(
    tmp_path: Path, start_edge: object
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "echo.py").write_text(_ECHO)
    code.chmod(0o755)
    config = f"""
[origins.fn]
function = "echo"

[[behaviors]]
path = "*"
origin = "fn"

[functions.echo]
code = "{code}"
handler = "echo.handler"
"""
    edge = start_edge(config=config)  # type: ignore[operator]
    response = exchange(
        _port(edge),
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    assert status_of(response) == 200, response
    seen = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert seen["headers"]["content-length"] == "11"
    assert "transfer-encoding" not in seen["headers"]
