"""What edge/server/hypercorn_patches guarantees, shown on raw bytes through the real server
(hypercorn serving on 127.0.0.1:0, as `edge serve` does), with each row also run unpatched to
show what hypercorn does on its own.

The server runs on the default asyncio loop in a thread, behind a listening socket whose
accepted connections record every send: one send is one write of the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypercorn.protocol.h11 import H11Protocol
from packaging.requirements import Requirement
from packaging.version import Version

from edge.server import ServerOptions, hypercorn_patches
from edge.server.hypercorn_engine import serve_sockets
from tests.conftest import REPO
from tests.rawhttp import read_response, status_of

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RecordingSocket(socket.socket):
    """An accepted connection that keeps the bytes of each send, in order."""

    writes: list[bytes]

    def send(self, data: Any, flags: int = 0) -> int:
        # Kept before the send: the peer may read the bytes the moment they are sent.
        self.writes.append(bytes(data))
        try:
            sent = super().send(data, flags)
        except BlockingIOError:
            self.writes.pop()
            raise
        if sent < len(data):
            self.writes[-1] = self.writes[-1][:sent]
        return sent


class RecordingListener(socket.socket):
    """A listening socket whose accepted connections are `RecordingSocket`s."""

    def __init__(self) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.accepted: list[RecordingSocket] = []
        self.bind(("127.0.0.1", 0))
        self.listen(16)
        self.setblocking(False)

    def accept(self) -> tuple[socket.socket, Any]:
        conn, address = super().accept()
        recording = RecordingSocket(conn.family, conn.type, conn.proto, fileno=conn.detach())
        recording.writes = []
        self.accepted.append(recording)
        return recording, address


class Server:
    """`serve_sockets` with `app` in a thread, on the default loop (whose transports call the
    socket's `send`; uvloop's do not)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.listener = RecordingListener()
        self.port = self.listener.getsockname()[1]
        self._app = app
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        self._loop.call_soon(self._ready.set)
        options = ServerOptions(graceful_timeout_seconds=1.0)
        await serve_sockets([(self._app, self.listener)], options, self._shutdown)

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._shutdown is not None
        self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(10)
        assert not self._thread.is_alive()
        self.listener.close()

    def writes(self) -> list[bytes]:
        """What the server wrote on its one connection, a send per item."""
        (conn,) = self.listener.accepted
        return list(conn.writes)

    def exchange(self, raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(raw)
            return read_response(sock)


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """/small: 5 bytes in one body message; /streamed: two chunks, no Content-Length;
    /empty: no body at all; /wait-for-disconnect: no answer until the viewer is gone."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path = scope["path"]
    await receive()  # the request (its empty body)
    if path == "/wait-for-disconnect":
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    if path == "/streamed":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b"second"})
        return
    body = b"" if path == "/empty" else b"hello"
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(params=[True, False], ids=["patched", "unpatched"])
def patched(request: pytest.FixtureRequest) -> Iterator[bool]:
    if request.param:
        assert hypercorn_patches.apply()
    else:
        hypercorn_patches.remove()
    try:
        yield request.param
    finally:
        hypercorn_patches.remove()


def _head_write(writes: list[bytes]) -> tuple[int, bytes]:
    (index,) = [i for i, data in enumerate(writes) if data.startswith(b"HTTP/1.1 200")]
    return index, writes[index]


@pytest.mark.parametrize(
    ("target", "first_body_bytes"),
    [
        pytest.param(b"/small", b"hello", id="whole-body"),
        pytest.param(b"/streamed", b"5\r\nfirst\r\n", id="first-chunk-of-a-stream"),
        pytest.param(b"/empty", b"", id="no-body"),
    ],
)
def test_the_head_goes_out_with_the_first_body_bytes(
    patched: bool, target: bytes, first_body_bytes: bytes
) -> None:
    with Server(app) as server:
        # Connection: close, so the end of the chunked stream is the end of the reading.
        response = server.exchange(
            b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        writes = server.writes()
    assert status_of(response) == 200
    index, head = _head_write(writes)
    assert head.endswith(b"\r\n\r\n" + first_body_bytes) is (patched or first_body_bytes == b"")
    if not patched:
        # hypercorn alone: the head is a write of its own.
        assert head.endswith(b"\r\n\r\n")
        assert writes[index + 1 :][:1] == ([first_body_bytes] if first_body_bytes else [])


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", id="close"),
        pytest.param(b"GET /small HTTP/1.0\r\nHost: x\r\n\r\n", id="http-1.0"),
    ],
)
def test_bytes_after_a_request_that_closes_are_ignored(request_head: bytes) -> None:
    assert hypercorn_patches.apply()
    try:
        with Server(app) as server:
            response = server.exchange(request_head + b"GARBAGE AFTER THE REQUEST\r\n\r\n")
    finally:
        hypercorn_patches.remove()
    assert status_of(response) == 200
    assert response.endswith(b"\r\n\r\nhello")


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(b"GET /wait-for-disconnect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     id="close"),
        pytest.param(b"GET /wait-for-disconnect HTTP/1.0\r\nHost: x\r\n\r\n", id="http-1.0"),
    ],
)  # fmt: skip
def test_unpatched_the_bytes_after_cost_the_answer(request_head: bytes) -> None:
    # The app answers only once the viewer is gone, so whatever comes is hypercorn's own.
    hypercorn_patches.remove()
    with Server(app) as server:
        response = server.exchange(request_head + b"GARBAGE AFTER THE REQUEST\r\n\r\n")
    assert status_of(response) == 400


@pytest.mark.parametrize(
    ("raw", "patched_status", "unpatched_status"),
    [
        pytest.param(b"GET /" + b"a" * 70_000, 414, 431, id="request-line-over-the-buffer"),
        pytest.param(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000, 431, 431,
                     id="header-section-over-the-buffer"),
    ],
)  # fmt: skip
def test_a_request_line_over_the_buffer_is_414(
    patched: bool, raw: bytes, patched_status: int, unpatched_status: int
) -> None:
    with Server(app) as server:
        response = server.exchange(raw)
    assert status_of(response) == (patched_status if patched else unpatched_status)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"get /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     id="lower-case-method"),
        pytest.param(b"GET /small HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n"
                     b"Connection: close\r\n\r\n", id="obsolete-line-folding"),
    ],
)  # fmt: skip
def test_strict_heads_are_refused(patched: bool, raw: bytes) -> None:
    with Server(app) as server:
        response = server.exchange(raw)
    # Unpatched, hypercorn serves `get` as GET and h11 joins the folded line.
    assert status_of(response) == (400 if patched else 200)


def test_an_untested_hypercorn_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    before = {name: H11Protocol.__dict__[name] for name in ("__init__", "_send_h11_event")}
    with caplog.at_level(logging.WARNING, logger="edge.server"):
        assert not hypercorn_patches.apply(version="0.19.0")
    assert not hypercorn_patches.is_applied()
    assert {name: H11Protocol.__dict__[name] for name in before} == before
    assert "hypercorn 0.19.0 is not a version" in caplog.text


def test_apply_is_idempotent_and_remove_restores() -> None:
    original = H11Protocol.__dict__["_send_h11_event"]
    try:
        assert hypercorn_patches.apply(version="0.18.0")
        patched_method = H11Protocol.__dict__["_send_h11_event"]
        assert hypercorn_patches.apply()
        assert H11Protocol.__dict__["_send_h11_event"] is patched_method is not original
    finally:
        hypercorn_patches.remove()
    assert H11Protocol.__dict__["_send_h11_event"] is original


def test_the_pin_admits_the_tested_versions_only() -> None:
    # hypercorn's releases from 0.17.3 to 0.18.0 are those two: the pin admits nothing else.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (pin,) = [Requirement(spec) for spec in project["dependencies"] if spec.startswith("hypercorn")]
    bounds = {Version(spec.version) for spec in pin.specifier}
    tested = {Version(version) for version in hypercorn_patches.TESTED_VERSIONS}
    assert {spec.operator for spec in pin.specifier} == {">=", "<="}
    assert bounds == {min(tested), max(tested)}
