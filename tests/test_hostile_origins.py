"""Hostile origins and stalled viewer uploads, through the real `edge serve`.

The origin here is a raw-socket server that writes exactly the bytes a test wants (endless
header fields, a chunk size that is not one, an answer that never comes), so what is tested is
what the edge does with an origin it cannot trust: it bounds what it keeps, answers 502 while
it still can, and never lets slow viewers take every origin connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from edge.failures import failure_for
from origin_proxy import (
    HttpOrigin,
    OriginDisconnected,
    OriginError,
    OriginHeadersTooLarge,
    OriginInvalidResponse,
    OriginRequest,
)
from tests.conftest import EdgeProcess, vm_kib
from tests.rawhttp import read_response, status_of

MB = 1024 * 1024
# "Endless" for a test: far beyond any limit the edge should keep; the origin stops there so a
# broken edge fails the test instead of eating the machine's memory.
ENDLESS_BYTES = 64 * MB
# How much the edge's peak RSS may grow while it refuses one endless head: the head limit
# (64 KiB), one socket read (256 KiB), the parser's copies of a partial field, and allocator
# noise.
RSS_GROWTH_BOUND_KIB = 8 * 1024
# Connections the edge may open to the origin in these tests: small, so the limits show.
MAX_CONNECTIONS = 4

CONFIG = """
[server]
name = "edge-test"
max_body_bytes = 104857600

[origins.hostile]
url = "{origin}"
read_timeout = 10
connect_timeout = 3
max_connections = {max_connections}

[[behaviors]]
path = "*"
origin = "hostile"
"""


class HostileOrigin:
    """A raw HTTP/1.1 origin on 127.0.0.1: each connection serves one request, by path."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.changed = threading.Condition()
        self.sent: dict[str, int] = {}  # bytes written, per path, once its script ended
        self.cut: dict[str, bool] = {}  # whether the edge hung up before the script ended
        self.uploads_seen = 0
        self.uploads_closed = 0
        self._scripts: dict[str, Callable[[socket.socket], int]] = {
            "/ping": lambda conn: _send(conn, b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\npong"),
            "/endless-fields": _endless_fields,
            "/endless-field": _endless_field,
            "/many-fields": _many_fields,
            "/big-field": _big_field,
            "/bad-chunk": lambda conn: _send(
                conn, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
            ),
            "/closes-before-body": lambda conn: _send(
                conn, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
            ),
        }
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()

    def wait(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout), "the origin never saw it"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            head = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
            if b"\r\n\r\n" not in head:
                return
            path = head.split(b" ", 2)[1].decode()
            if path == "/upload":
                self._hold_upload(conn)
                return
            try:
                sent = self._scripts[path](conn)
                cut = False
            except OSError as exc:
                sent, cut = getattr(exc, "sent", -1), True
            if not cut and path != "/closes-before-body":
                # Wait for the edge to hang up (a reset too) or to ask again on this connection.
                try:
                    cut = conn.recv(1) == b""
                except OSError:
                    cut = True
            with self.changed:
                self.sent[path] = sent
                self.cut[path] = cut
                self.changed.notify_all()

    def _hold_upload(self, conn: socket.socket) -> None:
        """Read a request body and never answer; count the connection until the edge drops it."""
        with self.changed:
            self.uploads_seen += 1
            self.changed.notify_all()
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass
        with self.changed:
            self.uploads_closed += 1
            self.changed.notify_all()


def _send(conn: socket.socket, data: bytes) -> int:
    conn.sendall(data)
    return len(data)


def _stream(conn: socket.socket, first: bytes, block: bytes, last: bytes = b"") -> int:
    """Write `first`, then `block` until ENDLESS_BYTES are out, then `last`."""
    sent = _send(conn, first)
    try:
        while sent < ENDLESS_BYTES:
            sent += _send(conn, block)
        return sent + _send(conn, last)
    except OSError as exc:
        exc.sent = sent  # type: ignore[attr-defined]
        raise


def _endless_fields(conn: socket.socket) -> int:
    line = b"x-pad: " + b"p" * 57 + b"\r\n"  # 66 bytes
    return _stream(conn, b"HTTP/1.1 200 OK\r\n", line * 1000)


def _endless_field(conn: socket.socket) -> int:
    return _stream(conn, b"HTTP/1.1 200 OK\r\nx-big: ", b"a" * 65536)


def _many_fields(conn: socket.socket) -> int:
    fields = b"".join(b"x-f%d: v\r\n" % i for i in range(100_000))
    head = b"HTTP/1.1 200 OK\r\n" + fields + b"content-length: 2\r\n\r\nok"
    try:
        return _send(conn, head)
    except OSError as exc:
        exc.sent = 0  # type: ignore[attr-defined]
        raise


def _big_field(conn: socket.socket) -> int:
    head = b"HTTP/1.1 200 OK\r\nx-big: " + b"b" * (8 * MB) + b"\r\ncontent-length: 2\r\n\r\nok"
    try:
        return _send(conn, head)
    except OSError as exc:
        exc.sent = 0  # type: ignore[attr-defined]
        raise


@pytest.fixture
def hostile() -> Iterator[HostileOrigin]:
    origin = HostileOrigin()
    yield origin
    origin.close()


@pytest.fixture
def edge(start_edge: Any, hostile: HostileOrigin) -> EdgeProcess:
    process: EdgeProcess = start_edge(
        config=CONFIG.format(origin=hostile.url, max_connections=MAX_CONNECTIONS)
    )
    return process


# -- finding 1: response heads are bounded while they arrive ---------------------------------


@pytest.mark.parametrize("path", ["/endless-fields", "/endless-field"])
def test_an_endless_head_is_cut_with_a_502_and_bounded_memory(
    edge: EdgeProcess, hostile: HostileOrigin, path: str
) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        assert client.get("/ping").text == "pong"  # warm: what one request costs is paid
        before = vm_kib(edge.pid, "VmHWM")
        response = client.get(path)
        growth = vm_kib(edge.pid, "VmHWM") - before
    assert response.status_code == 502
    assert response.headers["x-edge-error"] == "OriginHeadersTooLarge"
    hostile.wait(lambda: path in hostile.sent)
    assert hostile.cut[path], "the edge kept the connection to the origin"
    assert hostile.sent[path] < ENDLESS_BYTES
    assert growth < RSS_GROWTH_BOUND_KIB, f"the edge's peak RSS grew by {growth} KiB"
    edge.wait_for("OriginHeadersTooLarge")  # the log is read from the edge's pipe meanwhile


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/many-fields", id="100000-fields"),
        pytest.param("/big-field", id="one-8MB-field"),
    ],
)
def test_an_oversized_head_is_not_relayed(
    edge: EdgeProcess, hostile: HostileOrigin, path: str
) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        response = client.get(path)
    assert response.status_code == 502
    assert response.headers["x-edge-error"] == "OriginHeadersTooLarge"
    assert len(response.headers.raw) < 20
    hostile.wait(lambda: path in hostile.sent)
    assert hostile.cut[path]


# -- finding 2: a body that breaks before its first byte ---------------------------------------


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        pytest.param("/bad-chunk", "OriginInvalidResponseError", id="invalid-chunk-size"),
        pytest.param("/closes-before-body", "OriginReadError", id="closed-before-body"),
    ],
)
def test_a_body_broken_before_its_first_byte_is_a_502(
    edge: EdgeProcess, path: str, detail: str
) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        response = client.get(path)
    assert response.status_code == 502
    assert response.headers["x-edge-error"] == detail


# -- finding 3: stalled uploads never take every origin connection ----------------------------


def test_stalled_uploads_leave_a_connection_for_other_requests(
    edge: EdgeProcess, hostile: HostileOrigin
) -> None:
    uploads: list[socket.socket] = []
    try:
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", int(edge.url.rsplit(":", 1)[1])))
            sock.settimeout(30)
            sock.sendall(
                b"POST /upload HTTP/1.1\r\nhost: edge\r\ncontent-length: 1000000\r\n\r\nab"
            )
            uploads.append(sock)
        # Uploads may hold all connections but one (a quarter of 4, rounded up, is kept).
        hostile.wait(lambda: hostile.uploads_seen >= MAX_CONNECTIONS - 1)
        with httpx.Client(base_url=edge.url, timeout=30) as client:
            response = client.get("/ping")
        assert response.status_code == 200
        assert response.text == "pong"
        assert hostile.uploads_seen == MAX_CONNECTIONS - 1
    finally:
        for sock in uploads:
            sock.close()
    # A viewer that goes away mid-upload takes its origin connection with it.
    hostile.wait(lambda: hostile.uploads_closed == hostile.uploads_seen)


def test_uploads_that_never_send_a_byte_take_no_origin_connection(
    edge: EdgeProcess, hostile: HostileOrigin
) -> None:
    port = int(edge.url.rsplit(":", 1)[1])
    silent = []
    try:
        for _ in range(2 * MAX_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /upload HTTP/1.1\r\nhost: edge\r\ncontent-length: 10\r\n\r\n")
            silent.append(sock)
        with httpx.Client(base_url=edge.url, timeout=30) as client:
            assert client.get("/ping").text == "pong"
        assert hostile.uploads_seen == 0
    finally:
        for sock in silent:
            sock.close()


def test_a_small_upload_is_answered(edge: EdgeProcess) -> None:
    """A complete small upload still reaches the origin and its answer comes back."""
    port = int(edge.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /ping HTTP/1.1\r\nhost: edge\r\ncontent-length: 2\r\n\r\nab")
        answer = read_response(sock)
    assert status_of(answer) == 200
    assert answer.endswith(b"pong")


# -- the origin client: every failure is an OriginError with its cause -------------------------


async def _fetch_all(url: str, target: bytes) -> bytes:
    origin = HttpOrigin("hostile", url, read_timeout=10)
    try:
        response = await origin.fetch(OriginRequest("GET", target, [(b"host", b"hostile")]))
        try:
            return b"".join([chunk async for chunk in response.body])
        finally:
            await response.close()
    finally:
        await origin.aclose()


@pytest.mark.parametrize(
    ("path", "error", "detail", "cause"),
    [
        pytest.param(
            "/bad-chunk",
            OriginInvalidResponse,
            "OriginInvalidResponseError",
            "invalid HTTP response",
            id="invalid-chunk-size",
        ),
        pytest.param(
            "/closes-before-body",
            OriginDisconnected,
            "OriginReadError",
            "closed the connection mid-body",
            id="closed-before-body",
        ),
        pytest.param(
            "/endless-field",
            OriginHeadersTooLarge,
            "OriginHeadersTooLarge",
            "response head over 65536 bytes",
            id="endless-head",
        ),
        pytest.param(
            "/many-fields",
            OriginHeadersTooLarge,
            "OriginHeadersTooLarge",
            "over 100 header fields",
            id="many-fields",
        ),
    ],
)
def test_a_hostile_answer_is_an_origin_error_with_its_cause(
    hostile: HostileOrigin, path: str, error: type[OriginError], detail: str, cause: str
) -> None:
    with pytest.raises(error) as raised:
        asyncio.run(_fetch_all(hostile.url, path.encode()))
    assert cause in raised.value.cause
    failure = failure_for(raised.value)
    assert (failure.status, failure.detail) == (502, detail)


class ViewerGoneError(Exception):
    """Raised by a viewer's request body, as the pipeline's body reader does."""


@pytest.mark.parametrize("sent", [b"", b"ab"], ids=["before-the-first-chunk", "mid-upload"])
def test_an_error_from_the_viewers_body_passes_through_unchanged(
    hostile: HostileOrigin, sent: bytes
) -> None:
    gone = ViewerGoneError("idle for too long")

    async def body() -> AsyncIterator[bytes]:
        if sent:
            yield sent
            # The origin has the request: its connection is held until this raises.
            await asyncio.to_thread(hostile.wait, lambda: hostile.uploads_seen == 1)
        raise gone

    async def main() -> None:
        origin = HttpOrigin("hostile", hostile.url, read_timeout=10)
        request = OriginRequest(
            "POST", b"/upload", [(b"host", b"hostile")], body=body(), content_length=10
        )
        try:
            with pytest.raises(ViewerGoneError) as raised:
                await origin.fetch(request)
            assert raised.value is gone
        finally:
            await origin.aclose()

    asyncio.run(main())
    hostile.wait(lambda: hostile.uploads_closed == hostile.uploads_seen)
    assert hostile.uploads_seen == (1 if sent else 0)
