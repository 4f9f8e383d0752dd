"""What to serve on: listen addresses, listening sockets, and the server's settings."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "Engine",
    "Listen",
    "ListenError",
    "ServerOptions",
    "bind_socket",
    "bind_sockets",
    "parse_listen",
]

Engine = Literal["granian", "hypercorn"]


@dataclass(frozen=True, slots=True)
class Listen:
    """A host and port to listen on (port 0: the kernel picks one)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """`HOST:PORT`, `[V6]:PORT` or `:PORT` -> Listen; ValueError with a clear message otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"expected HOST:PORT (for example 127.0.0.1:8080), found {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return Listen(host, int(port_text))


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """How to serve: addresses, processes, the engine and the protocol limits it enforces."""

    listen: Listen = Listen("127.0.0.1", 8080)
    # The viewer listener's server; the admin listener is always served by hypercorn.
    engine: Engine = "granian"
    # A second viewer listener, over TLS (HTTP/2 by ALPN), with these PEM files.
    https_listen: Listen | None = None
    certificate: Path | None = None
    private_key: Path | None = None
    workers: int = 1
    admin: Listen | None = None
    graceful_timeout_seconds: float = 30.0
    keep_alive_timeout_seconds: float = 60.0
    # Request line plus headers; beyond it the viewer gets 431 (h11's status hint).
    max_header_bytes: int = 20 * 1024
    backlog: int = 2048
    use_uvloop: bool = True
    # The first app served is the edge's proxy, which sets Date itself (the CLI says so).
    proxy_first: bool = False


class ListenError(Exception):
    """A listener could not be opened. `key` is which one (`listen`, `https_listen`, `admin`)."""

    def __init__(self, key: str, listen: Listen, reason: str) -> None:
        super().__init__(f"{key} {listen}: {reason}")
        self.key = key
        self.listen = listen
        self.reason = reason


def bind_socket(listen: Listen, *, reuse_port: bool, key: str = "listen") -> socket.socket:
    """A listening TCP socket on `listen`; ListenError saying why there is none."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(2048)
    except socket.gaierror as exc:
        sock.close()
        reason = f"cannot resolve the host {listen.host!r} ({exc.strerror})"
        raise ListenError(key, listen, reason) from None
    except OSError as exc:
        sock.close()
        raise ListenError(key, listen, (exc.strerror or str(exc)).lower()) from None
    sock.setblocking(False)
    return sock


def bind_sockets(listen: Listen, count: int, *, key: str = "listen") -> list[socket.socket]:
    """`count` listening sockets on one address, one per worker process (SO_REUSEPORT when
    several: the kernel spreads connections across them)."""
    if count == 1:
        return [bind_socket(listen, reuse_port=False, key=key)]
    if listen.port:
        # SO_REUSEPORT would let a second server on this address take a share of the traffic
        # without a word: a plain bind first fails when anyone listens here already.
        bind_socket(listen, reuse_port=False, key=key).close()
    first = bind_socket(listen, reuse_port=True, key=key)
    actual = Listen(listen.host, first.getsockname()[1])
    return [first] + [bind_socket(actual, reuse_port=True, key=key) for _ in range(count - 1)]
