"""Hostile viewers: every spelling of a path runs its behavior's functions, framing that could be
smuggled is refused, and the cache shares only what is shareable.

Pure tables first (`edge.uri`, `edge.viewer`), then the real `edge serve` over raw sockets in
front of real origins: a scriptable one (`tests.cache_origin`) and, for broken responses, a
socket server that writes exactly the bytes a hostile origin would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.uri import TargetRefused, normalize_host, normalize_path, parse_target
from edge.viewer import Refused, ViewerLimits, admit
from tests.cache_origin import CacheOrigin, Reply, running_cache_origin
from tests.conftest import REPO, EdgeProcess
from tests.rawhttp import exchange, read_response, status_of

HOOKS = REPO / "tests" / "edge_functions" / "hooks"

# -- the tables ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        pytest.param(b"/private.html", b"/private.html", id="already-normal"),
        pytest.param(b"/%70rivate.html", b"/private.html", id="unreserved-decoded-s6.2.2.2"),
        pytest.param(b"/%7Euser/%41", b"/~user/A", id="tilde-and-letter"),
        pytest.param(b"/a%2cb", b"/a%2Cb", id="reserved-kept-upper-hex-s6.2.2.1"),
        pytest.param(b"/x/../private", b"/private", id="dot-dot-s5.2.4"),
        pytest.param(b"/./private", b"/private", id="dot"),
        pytest.param(b"/public/%2e%2e/private", b"/private", id="encoded-dot-dot"),
        pytest.param(b"/public/%2E%2e/private", b"/private", id="encoded-dot-dot-mixed-case"),
        pytest.param(b"//private", b"/private", id="leading-double-slash"),
        pytest.param(b"/a///b//c", b"/a/b/c", id="repeated-slashes-merged"),
        pytest.param(b"/../../private", b"/private", id="dot-dot-above-root"),
        pytest.param(b"/a/b/..", b"/a/", id="trailing-dot-dot-keeps-slash"),
        pytest.param(b"/a/.", b"/a/", id="trailing-dot"),
        pytest.param(b"/a/.hidden", b"/a/.hidden", id="dot-file-is-a-name"),
        pytest.param(b"/a/..b", b"/a/..b", id="dot-dot-prefix-is-a-name"),
        pytest.param(b"/a//../b", b"/b", id="slashes-merged-before-dots"),
    ],
)
def test_normalized_paths(path: bytes, normal: bytes) -> None:
    assert normalize_path(path) == normal


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        pytest.param(b"/a%2Fb", "InvalidPath", id="encoded-slash"),
        pytest.param(b"/a%2fb", "InvalidPath", id="encoded-slash-lower"),
        pytest.param(b"/a%5Cb", "InvalidPath", id="encoded-backslash"),
        pytest.param(b"/a\\b", "InvalidPath", id="backslash"),
        pytest.param(b"/a%00.html", "InvalidPath", id="encoded-nul"),
        pytest.param(b"/a%0d%0aSet-Cookie:x", "InvalidPath", id="encoded-crlf"),
        pytest.param(b"/a%7f", "InvalidPath", id="encoded-del"),
        pytest.param(b"/a%zz", "InvalidPath", id="bad-percent-encoding"),
        pytest.param(b"/a%2", "InvalidPath", id="truncated-percent-encoding"),
    ],
)
def test_refused_paths(path: bytes, detail: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        normalize_path(path)
    assert refused.value.detail == detail


def test_escaped_slashes_can_be_kept() -> None:
    assert normalize_path(b"/a%2fb", escaped_slashes="keep") == b"/a%2Fb"


@pytest.mark.parametrize(
    ("raw", "path", "normal", "authority"),
    [
        pytest.param(b"/x", b"/x", b"/x", None, id="origin-form"),
        pytest.param(b"http://a/private", b"/private", b"/private", b"a", id="absolute-form"),
        pytest.param(b"HTTPS://a:8443", b"/", b"/", b"a:8443", id="absolute-form-no-path"),
        pytest.param(b"http://a//%70x", b"//%70x", b"/px", b"a", id="absolute-form-normalised"),
    ],
)
def test_target_forms(raw: bytes, path: bytes, normal: bytes, authority: bytes | None) -> None:
    target = parse_target(raw, b"q=1")
    assert (target.path, target.normal_path, target.authority, target.query) == (
        path,
        normal,
        authority,
        b"q=1",
    )


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"*", id="asterisk-form"),
        pytest.param(b"example.com:443", id="authority-form"),
        pytest.param(b"ftp://a/x", id="other-scheme"),
        pytest.param(b"http:///x", id="no-authority"),
        pytest.param(b"http://user@a/x", id="userinfo-s4.2.4"),
    ],
)
def test_refused_targets(raw: bytes) -> None:
    with pytest.raises(TargetRefused):
        parse_target(raw, b"")


@pytest.mark.parametrize(
    ("host", "scheme", "normal"),
    [
        pytest.param(b"Example.COM", "http", b"example.com", id="lower-case"),
        pytest.param(b"example.com.", "http", b"example.com", id="trailing-dot"),
        pytest.param(b"example.com:80", "http", b"example.com", id="default-port"),
        pytest.param(b"example.com:443", "https", b"example.com", id="default-https-port"),
        pytest.param(b"example.com:8080", "http", b"example.com:8080", id="other-port"),
        pytest.param(b"example.com:080", "http", b"example.com", id="leading-zero-port"),
        pytest.param(b"[::1]:8080", "http", b"[::1]:8080", id="ipv6"),
        pytest.param(b"127.0.0.1", "http", b"127.0.0.1", id="ipv4"),
    ],
)
def test_normalized_hosts(host: bytes, scheme: str, normal: bytes) -> None:
    assert normalize_host(host, scheme=scheme) == normal


@pytest.mark.parametrize(
    "host",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"a b", id="space"),
        pytest.param(b"a/b", id="slash"),
        pytest.param(b"evil.com:99999", id="port-out-of-range"),
        pytest.param(b"a:b", id="port-not-a-number"),
        pytest.param(b"a@b", id="userinfo"),
    ],
)
def test_refused_hosts(host: bytes) -> None:
    with pytest.raises(TargetRefused):
        normalize_host(host, scheme="http")


_LIMITS = ViewerLimits(max_url_bytes=8192, max_header_bytes=20480)


def _admit(
    method: str = "GET",
    path: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    http_version: str = "1.1",
) -> int:
    try:
        admit(
            method,
            path,
            b"",
            [(b"host", b"x")] if headers is None else headers,
            scheme="http",
            limits=_LIMITS,
            http_version=http_version,
        )
    except Refused as refused:
        return refused.failure.status
    return 200


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        pytest.param({}, 200, id="plain"),
        pytest.param({"path": b"/" + b"a" * 70_000}, 414, id="long-url-is-414-not-431"),
        pytest.param(
            {"headers": [(b"host", b"x"), (b"x-big", b"a" * 21_000)]}, 431, id="big-headers"
        ),
        pytest.param(
            {
                "method": "POST",
                "headers": [
                    (b"host", b"x"),
                    (b"content-length", b"4"),
                    (b"transfer-encoding", b"chunked"),
                ],
            },
            400,
            id="content-length-and-transfer-encoding-rfc9112-s6.1",
        ),
        pytest.param({"method": "CONNECT", "path": b"a:443"}, 403, id="connect"),
        pytest.param({"method": "TRACE"}, 403, id="trace"),
        pytest.param({"headers": []}, 400, id="no-host-rfc9112-s3.2"),
        pytest.param({"headers": [(b"host", b"a"), (b"host", b"b")]}, 400, id="two-hosts"),
        pytest.param({"headers": [], "http_version": "1.0"}, 200, id="http-1.0-without-host"),
        pytest.param(
            {"headers": [(b"host", b"")], "http_version": "1.0"}, 200, id="http-1.0-empty-host"
        ),
        pytest.param({"path": b"/a%2fb"}, 400, id="encoded-slash"),
    ],
)
def test_admission(kwargs: dict[str, object], status: int) -> None:
    assert _admit(**kwargs) == status  # type: ignore[arg-type]


def test_absolute_form_authority_becomes_the_host() -> None:
    admitted = admit(
        "GET",
        b"http://Other.Example/x",
        b"",
        [(b"host", b"ignored")],
        scheme="http",
        limits=_LIMITS,
    )
    assert admitted.headers == [(b"host", b"other.example")]
    assert admitted.path == b"/x"


# -- the real server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def origin(engine: str) -> Iterator[CacheOrigin]:
    """A fresh origin for each engine's edge: the tests count what reaches it."""
    with running_cache_origin() as server:
        yield server


CONFIG = """
[server]
client_body_timeout = 1
send_timeout = 1

[origins.o]
url = "{url}"
max_connections = 4

[origins.site]
directory = "{site}"

[origins.narrow]
url = "{url}"
max_connections = 1

[origins.kept]
url = "{url}"
keep_host = true

[[behaviors]]
path = "/private*"
origin = "o"
methods = "any"
viewer-request = "tag"

[[behaviors]]
path = "/static/members*"
origin = "site"
viewer-request = "tag-site"

[[behaviors]]
path = "/static/*"
origin = "site"

[[behaviors]]
path = "/show/*"
origin = "o"
viewer-request = "show"

[[behaviors]]
path = "/cf-none/*"
origin = "o"
cache = {{ cookies = "none" }}

[[behaviors]]
path = "/cf-list/*"
origin = "o"
cache = {{ cookies = ["session"] }}

[[behaviors]]
path = "/cf-replay/*"
origin = "o"
cache = {{ cookies = ["session"], cache_set_cookie = true }}

[[behaviors]]
path = "/cf-host/*"
origin = "o"
cache = {{ headers = ["host"] }}

[[behaviors]]
path = "/optimized/*"
origin = "o"
cache = "caching-optimized"

[[behaviors]]
path = "/narrow/*"
origin = "narrow"

[[behaviors]]
path = "/kept/*"
origin = "kept"

[[behaviors]]
path = "*"
origin = "o"
methods = "any"

[functions.tag]
handler = "{hooks}.tag_request"

[functions.tag-site]
handler = "{hooks}.generate"

[functions.show]
handler = "{hooks}.echo_event_response"
"""


@pytest.fixture(scope="module")
def edge(
    origin: CacheOrigin, tmp_path_factory: pytest.TempPathFactory, engine: str
) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("hostile-viewers")
    site = tmp / "site"
    (site / "static").mkdir(parents=True)
    (site / "static" / "members.txt").write_text("members only\n")
    (site / "static" / "open.txt").write_text("open\n")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(url=origin.url, site=site, hooks=HOOKS))
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"], engine=engine).start(tmp)
    yield process
    process.stop()


def _port(edge: EdgeProcess) -> int:
    return int(edge.url.rsplit(":", 1)[1])


def _get(edge: EdgeProcess, target: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    if not any(h.lower().startswith(b"host:") for h in headers):
        head = b"Host: edge.test\r\n" + head
    return exchange(_port(edge), method + b" " + target + b" HTTP/1.1\r\n" + head + b"\r\n")


def _header(response: bytes, name: bytes) -> bytes | None:
    head = response.partition(b"\r\n\r\n")[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _body(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(b"/private/a", id="plain"),
        pytest.param(b"/%70rivate/a", id="percent-encoded-letter"),
        pytest.param(b"/x/../private/a", id="dot-dot"),
        pytest.param(b"/./private/a", id="dot"),
        pytest.param(b"/public/%2e%2e/private/a", id="encoded-dot-dot"),
        pytest.param(b"//private/a", id="double-slash"),
        pytest.param(b"http://a/private/a", id="absolute-form"),
    ],
)
def test_every_spelling_runs_the_behaviors_function(
    edge: EdgeProcess, origin: CacheOrigin, target: bytes
) -> None:
    """The `/private*` behavior's viewer-request function runs whatever the spelling: every
    request the origin receives for it carries the header the function adds, and it receives
    the path as the viewer spelt it (CloudFront sends the raw path on)."""
    origin.script("/private/a", Reply(200, [("Cache-Control", "no-store")], b"private"))
    before = len(origin.seen_all())
    response = _get(edge, target)
    reached = origin.seen_all()[before:]
    assert len(reached) == 1
    assert reached[0].headers.get("x-viewer-request") == "ran"
    expected = target.partition(b"//a")[2] if target.startswith(b"http:") else target
    assert reached[0].target == expected.decode()
    assert status_of(response) in (200, 404)  # the origin's answer for that spelling


def test_directory_origin_spelling_runs_the_behaviors_function(edge: EdgeProcess) -> None:
    """`/static/%6Dembers.txt` is `/static/members.txt`: its behavior's function answers."""
    for target in (b"/static/members.txt", b"/static/%6Dembers.txt", b"/static//members.txt"):
        response = _get(edge, target)
        assert status_of(response) == 200, target
        assert _body(response) == b"generated at viewer-request", target
    assert _body(_get(edge, b"/static/open.txt")) == b"open\n"


def test_event_uri_is_the_path_as_sent(edge: EdgeProcess) -> None:
    """Functions see the path as the viewer sent it (as on CloudFront), and the normalised
    absolute-form path without its scheme and authority."""
    import json

    event = json.loads(_body(_get(edge, b"/show//%61?x=1")))
    request = event["Records"][0]["cf"]["request"]
    assert request["uri"] == "/show//%61"
    assert request["querystring"] == "x=1"
    event = json.loads(_body(_get(edge, b"http://Evil.Example/show/x")))
    request = event["Records"][0]["cf"]["request"]
    assert request["uri"] == "/show/x"
    assert request["headers"]["host"] == [{"key": "Host", "value": _absolute_form_host(edge)}]


def _absolute_form_host(edge: EdgeProcess) -> str:
    """The Host an absolute-form request (`GET http://evil.example/x`, `Host: edge.test`) goes
    on. RFC 9112 §3.2.2 has the target's authority win, as under hypercorn. granian's ASGI
    scope does not carry that authority (hyper parses it, granian passes on the path alone),
    so under granian the Host header decides: one host, used alike for the cache key, the
    functions and the origin."""
    return "evil.example" if edge.engine == "hypercorn" else "edge.test"


def test_absolute_form_never_reaches_the_origin(edge: EdgeProcess, origin: CacheOrigin) -> None:
    origin.script("/abs/x", Reply(200, [], b"ok"))
    response = _get(edge, b"http://evil.example/abs/x?q=1")
    assert status_of(response) == 200
    seen = origin.seen("/abs/x")[-1]
    assert seen.target == "/abs/x?q=1"
    assert seen.headers["x-forwarded-host"] == _absolute_form_host(edge)


@pytest.mark.parametrize(
    "transfer_encoding",
    [
        pytest.param(b"chunked", id="plain"),
        pytest.param(b" chunked", id="leading-space"),
        pytest.param(b"Chunked", id="capitalised"),
        pytest.param(b"\tchunked", id="tab"),
    ],
)
def test_content_length_with_transfer_encoding_is_refused_and_closed(
    edge: EdgeProcess, origin: CacheOrigin, transfer_encoding: bytes
) -> None:
    """RFC 9112 §6.1: such a request is refused (or, as the RFC allows, read by its
    Transfer-Encoding alone) and the connection closed, so the bytes after the chunked body
    never reach the origin as a second request.

    Under granian, hyper takes the second way before the edge sees the request (it drops the
    Content-Length), so the edge cannot refuse it: the request goes on with an empty chunked
    body, and the connection is closed after its answer."""
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (
        b"POST /te HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding:"
        + transfer_encoding
        + b"\r\n\r\n0\r\n\r\n"
        + smuggled
    )
    with socket.create_connection(("127.0.0.1", _port(edge)), timeout=10) as sock:
        sock.sendall(raw)
        response = read_response(sock)
        if edge.engine == "hypercorn":
            assert status_of(response) == 400
        assert _header(response, b"connection") == b"close"
        assert sock.recv(65536) == b""  # closed: nothing else is answered
    assert origin.count("/smuggled") == 0
    if edge.engine == "hypercorn":
        assert origin.count("/te") == 0


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", id="close"),
        pytest.param(b"GET /after HTTP/1.0\r\nHost: x\r\n\r\n", id="http-1.0"),
    ],
)
def test_bytes_after_the_last_request_do_not_cost_its_answer(
    edge: EdgeProcess, origin: CacheOrigin, request_head: bytes
) -> None:
    origin.script("/after", Reply(200, [("Cache-Control", "no-store")], b"the answer"))
    with socket.create_connection(("127.0.0.1", _port(edge)), timeout=10) as sock:
        sock.sendall(request_head + b"GARBAGE AFTER THE REQUEST\r\n\r\n")
        response = read_response(sock)
    assert status_of(response) == 200
    assert _body(response) == b"the answer"


@pytest.mark.parametrize("method", [b"CONNECT", b"TRACE"])
def test_connect_and_trace_are_never_forwarded(
    edge: EdgeProcess, origin: CacheOrigin, method: bytes
) -> None:
    target = b"/tunnel" if method == b"TRACE" else b"origin.example:443"
    before = len(origin.seen_all())
    response = _get(edge, target, method=method)
    assert status_of(response) == 403
    assert _header(response, b"x-edge-error") == b"MethodNotAllowed"
    assert len(origin.seen_all()) == before


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_get_or_head_with_a_body_is_refused(
    edge: EdgeProcess, origin: CacheOrigin, method: bytes
) -> None:
    path = f"/with-body/{method.decode()}"
    origin.script(path, Reply(200, [("Cache-Control", "max-age=600")], b"stored"))
    raw = method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    with socket.create_connection(("127.0.0.1", _port(edge)), timeout=10) as sock:
        sock.sendall(raw)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
    assert status_of(head) == 403
    assert origin.count(path) == 0
    # Nothing was stored either: a plain GET goes to the origin.
    assert _header(_get(edge, path.encode()), b"x-cache") == b"Miss from edge"


_MANY_HEADERS = b"".join(b"X-H%d: v\r\n" % n for n in range(150))


@pytest.mark.parametrize(
    ("head", "hypercorn", "granian"),
    [
        pytest.param(b"GET /static/open.txt HTTP/1.0\r\n", 200, 200, id="http-1.0-without-host"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n", 400, 400, id="space-colon"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n", 400, 400, id="bad-cl"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
            400,
            400,
            id="two-content-lengths",
        ),
        # obs-fold (RFC 9112 §5.2): refused by hyper, and by the edge's patch under h11.
        pytest.param(
            b"GET /static/open.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n", 400, 400, id="obs-fold"
        ),
        # Where the parsers differ, each answer is one RFC 9112 allows: an unknown transfer
        # coding (§6.1) gets 501 from h11 and 400 from hyper.
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n", 501, 400, id="te-gzip"
        ),
        # hyper takes at most 100 header fields (431 past that); h11 has no count, only the
        # size limit.
        pytest.param(
            b"GET /static/open.txt HTTP/1.1\r\nHost: x\r\n" + _MANY_HEADERS,
            200,
            431,
            id="150-fields",
        ),
    ],
)
def test_malformed_heads(edge: EdgeProcess, head: bytes, hypercorn: int, granian: int) -> None:
    response = exchange(_port(edge), head + b"Connection: close\r\n\r\n")
    assert status_of(response) == (hypercorn if edge.engine == "hypercorn" else granian)


def test_long_urls_get_414(edge: EdgeProcess) -> None:
    assert status_of(_get(edge, b"/" + b"a" * 9_000)) == 414  # over max_url_bytes
    # Over the parser's buffer the edge never sees the request: hypercorn's (patched) answer
    # is 414; hyper, under granian, cannot tell a long request line from long headers and
    # answers 431 (with no body) for either.
    beyond_buffer = 414 if edge.engine == "hypercorn" else 431
    assert status_of(_get(edge, b"/" + b"a" * 70_000)) == beyond_buffer
    big = b"X-Big: " + b"a" * 30_000
    assert status_of(_get(edge, b"/short", big)) == 431


def test_a_stalled_request_body_times_out_and_frees_the_origin(
    edge: EdgeProcess, origin: CacheOrigin
) -> None:
    """Uploads that stop after 2 bytes get 408 once the body timeout passes (1 s here), and
    the origin's connections (4 here) serve other viewers afterwards."""
    origin.script("/upload", Reply(200, [], b"stored"))
    origin.script("/after-stall", Reply(200, [("Cache-Control", "no-store")], b"fine"))
    socks = []
    for _ in range(6):
        sock = socket.create_connection(("127.0.0.1", _port(edge)), timeout=20)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhi")
        socks.append(sock)
    try:
        for sock in socks:
            response = read_response(sock)
            assert status_of(response) == 408
            assert _header(response, b"connection") == b"close"
    finally:
        for sock in socks:
            sock.close()
    assert _body(_get(edge, b"/after-stall")) == b"fine"


def test_a_viewer_that_stops_reading_frees_the_origin(
    edge: EdgeProcess, origin: CacheOrigin
) -> None:
    """A viewer that asks for a large response and reads nothing does not hold the origin's
    only connection beyond the send timeout (1 s here): another viewer is served after it."""
    big = b"x" * (16 * 1024 * 1024)
    origin.script("/narrow/big", Reply(200, [("Cache-Control", "no-store")], big))
    origin.script("/narrow/small", Reply(200, [("Cache-Control", "no-store")], b"small"))
    stalled = socket.create_connection(("127.0.0.1", _port(edge)), timeout=20)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stalled.sendall(b"GET /narrow/big HTTP/1.1\r\nHost: x\r\n\r\n")
        origin.wait_for_count("/narrow/big", 1)
        assert _body(_get(edge, b"/narrow/small")) == b"small"
    finally:
        stalled.close()
    edge.wait_for(r"the viewer read nothing for 1 s")


# -- a hostile origin ----------------------------------------------------------------------------


class _RawOrigin:
    """Answers every connection with the same bytes, then closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(self.answer)
                time.sleep(0.2)

    def close(self) -> None:
        self.sock.close()


def test_invalid_first_chunk_from_the_origin_is_a_502(start_edge: object, tmp_path: Path) -> None:
    """The head has not gone to the viewer when the first chunk is unreadable: a clean 502."""
    bad = _RawOrigin(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n")
    try:
        edge = start_edge("--origin", f"http://127.0.0.1:{bad.port}")  # type: ignore[operator]
        response = _get(edge, b"/broken")
        assert status_of(response) == 502
        assert _header(response, b"x-cache") == b"Error from edge"
    finally:
        bad.close()


# -- the cache -----------------------------------------------------------------------------------


def _cookie_reply(body: bytes) -> Reply:
    return Reply(
        200, [("Cache-Control", "max-age=600"), ("Set-Cookie", "session=alice-secret")], body
    )


def test_set_cookie_is_never_replayed_to_another_viewer(
    edge: EdgeProcess, origin: CacheOrigin
) -> None:
    """The default policy passes a response with Set-Cookie to the viewer who asked, and does
    not store it: the next viewer gets its own answer from the origin, not Alice's cookie."""
    origin.script("/cookie/a", _cookie_reply(b"for alice"), Reply(200, [], b"for bob"))
    first = _get(edge, b"/cookie/a")
    assert _header(first, b"set-cookie") == b"session=alice-secret"
    second = _get(edge, b"/cookie/a")
    assert _header(second, b"set-cookie") is None
    assert _body(second) == b"for bob"
    assert origin.count("/cookie/a") == 2


def test_policy_without_cookies_strips_them_both_ways(
    edge: EdgeProcess, origin: CacheOrigin
) -> None:
    """CloudFront, forwarding no cookie: the viewer's Cookie does not reach the origin and the
    origin's Set-Cookie reaches neither the cache nor any viewer; the object is cached."""
    origin.script("/cf-none/a", _cookie_reply(b"object"))
    first = _get(edge, b"/cf-none/a", b"Cookie: session=alice; theme=dark")
    assert _header(first, b"set-cookie") is None
    assert "cookie" not in origin.seen("/cf-none/a")[-1].headers
    second = _get(edge, b"/cf-none/a")
    assert _header(second, b"x-cache") == b"Hit from edge"
    assert _header(second, b"set-cookie") is None


def test_policy_with_keyed_cookies_forwards_only_those(
    edge: EdgeProcess, origin: CacheOrigin
) -> None:
    origin.script("/cf-list/a", _cookie_reply(b"one"), Reply(200, [], b"two"))
    first = _get(edge, b"/cf-list/a", b"Cookie: session=s1; tracking=t1")
    assert origin.seen("/cf-list/a")[-1].headers["cookie"] == "session=s1"
    assert _header(first, b"set-cookie") == b"session=alice-secret"
    # Not stored (it carried Set-Cookie): the same keyed cookie still goes to the origin.
    second = _get(edge, b"/cf-list/a", b"Cookie: session=s1")
    assert _header(second, b"set-cookie") is None
    assert _body(second) == b"two"


def test_cache_set_cookie_replays_as_cloudfront_does(
    edge: EdgeProcess, origin: CacheOrigin
) -> None:
    """Opted in: the stored Set-Cookie goes to the next viewer with the same keyed cookie."""
    origin.script("/cf-replay/a", _cookie_reply(b"one"))
    _get(edge, b"/cf-replay/a", b"Cookie: session=s1")
    again = _get(edge, b"/cf-replay/a", b"Cookie: session=s1")
    assert _header(again, b"x-cache") == b"Hit from edge"
    assert _header(again, b"set-cookie") == b"session=alice-secret"
    other = _get(edge, b"/cf-replay/a", b"Cookie: session=s2")
    assert _header(other, b"x-cache") == b"Miss from edge"


def _host_reply(path: str, origin: CacheOrigin) -> None:
    origin.script(path, *(Reply(200, [("Cache-Control", "max-age=600")], b"") for _ in range(4)))


def test_host_cannot_poison_the_cache(edge: EdgeProcess, origin: CacheOrigin) -> None:
    """The viewer's Host reaches the origin (X-Forwarded-Host) only when it is part of the
    key: an attacker's Host never decides what another viewer is served."""
    path = "/poison/a"
    origin.script(
        path,
        Reply(200, [("Cache-Control", "max-age=600")], b"evil"),
        Reply(200, [("Cache-Control", "max-age=600")], b"good"),
    )
    evil = _get(edge, path.encode(), b"Host: evil.example")
    assert _body(evil) == b"evil"
    assert origin.seen(path)[-1].headers["x-forwarded-host"] == "evil.example"
    good = _get(edge, path.encode(), b"Host: good.example")
    assert _body(good) == b"good"
    # One host spelled two ways is one key.
    again = _get(edge, path.encode(), b"Host: GOOD.example.:80")
    assert _header(again, b"x-cache") == b"Hit from edge"
    assert _body(again) == b"good"


def test_cloudfront_policies_send_no_forwarded_host(edge: EdgeProcess, origin: CacheOrigin) -> None:
    """CloudFront's policies do not key on Host unless told: the origin is not told it."""
    origin.script("/optimized/a", Reply(200, [("Cache-Control", "max-age=600")], b"x"))
    _get(edge, b"/optimized/a", b"Host: evil.example")
    assert "x-forwarded-host" not in origin.seen("/optimized/a")[-1].headers
    hit = _get(edge, b"/optimized/a", b"Host: good.example")
    assert _header(hit, b"x-cache") == b"Hit from edge"
    # Listed in the policy: keyed, and told.
    origin.script(
        "/cf-host/a",
        Reply(200, [("Cache-Control", "max-age=600")], b"evil"),
        Reply(200, [("Cache-Control", "max-age=600")], b"good"),
    )
    _get(edge, b"/cf-host/a", b"Host: evil.example")
    assert origin.seen("/cf-host/a")[-1].headers["x-forwarded-host"] == "evil.example"
    assert _body(_get(edge, b"/cf-host/a", b"Host: good.example")) == b"good"


def test_keep_host_keys_on_the_host(edge: EdgeProcess, origin: CacheOrigin) -> None:
    origin.script(
        "/kept/a",
        Reply(200, [("Cache-Control", "max-age=600")], b"evil"),
        Reply(200, [("Cache-Control", "max-age=600")], b"good"),
    )
    _get(edge, b"/kept/a", b"Host: evil.example")
    assert origin.seen("/kept/a")[-1].headers["host"] == "evil.example"
    assert _body(_get(edge, b"/kept/a", b"Host: good.example")) == b"good"


def test_the_demo_asks_for_credentials_whatever_the_spelling(
    tmp_path: Path,
) -> None:
    """The bundled demo's members-only page: every spelling gets the Basic-auth challenge."""
    demo = EdgeProcess(["--listen", "127.0.0.1:0"]).start(tmp_path)
    try:
        for target in (
            b"/private.html",
            b"/%70rivate.html",
            b"/x/../private.html",
            b"/./private.html",
            b"/public/%2e%2e/private.html",
            b"//private.html",
            b"http://a/private.html",
        ):
            response = _get(demo, target)
            assert status_of(response) == 401, target
            assert _header(response, b"www-authenticate") is not None, target
    finally:
        demo.stop()
