"""Origins an origin-request function switches to and nobody configured: a client of their own,
a few kept for reuse, and the one pushed out closed once its last answer is done."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EdgeProcess

HOOKS = Path(__file__).resolve().parent / "edge_functions" / "hooks"
KEPT = 32  # edge.origins keeps this many switched-to origins

CONFIG = """
[origins.app]
url = "http://127.0.0.1:{dead_port}"

[[behaviors]]
path = "*"
origin = "app"
cache = "disabled"
origin-request = "switch-origin"

[functions.switch-origin]
handler = "{hooks}.switch_origin"
"""


class HeldOrigin(socketserver.ThreadingTCPServer):
    """An HTTP/1.1 origin on 127.0.0.1:0 that answers every request with b"first " and, once
    `go_on` is set, b"second"; `closed` is set when the edge closes a connection to it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HeldAnswer)
        self.port: int = self.server_address[1]
        self.go_on = threading.Event()
        self.closed = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.go_on.set()
        self.shutdown()
        self.server_close()


class _HeldAnswer(socketserver.BaseRequestHandler):
    server: HeldOrigin

    def handle(self) -> None:
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = self.request.recv(65536)
                if not data:
                    self.server.closed.set()
                    return
                pending += data
            pending = pending.partition(b"\r\n\r\n")[2]
            self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nfirst ")
            self.server.go_on.wait(30)
            self.request.sendall(b"second")


def _dead_ports(count: int) -> list[int]:
    """Ports nothing listens on (bound, then closed): a connection there is refused."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeProcess]:
    config = tmp_path / "edge.toml"
    config.write_text(CONFIG.format(dead_port=_dead_ports(1)[0], hooks=HOOKS))
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"]).start(tmp_path)
    yield process
    process.stop()


def test_a_pushed_out_origin_is_closed_once_its_answer_is_done(edge: EdgeProcess) -> None:
    held = HeldOrigin()
    try:
        with (
            httpx.Client(base_url=edge.url, timeout=30) as viewer,
            viewer.stream(
                "GET", "/held", headers={"X-Switch-To": f"127.0.0.1:{held.port}"}
            ) as answer,
        ):
            assert answer.status_code == 200
            # Enough other switched-to origins to push the held one out of those kept.
            with httpx.Client(base_url=edge.url, timeout=30) as others:
                for port in _dead_ports(KEPT):
                    refused = others.get("/other", headers={"X-Switch-To": f"127.0.0.1:{port}"})
                    assert refused.status_code == 502
            assert not held.closed.is_set()  # its answer is still being read
            held.go_on.set()
            assert answer.read() == b"first second"
        # The answer is done: nothing uses the pushed-out origin's client any more.
        assert held.closed.wait(10), "the pushed-out origin's connection was never closed"
    finally:
        held.close()
