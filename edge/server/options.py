"""What to serve on: listen addresses, listening sockets, and the server's settings."""

from __future__ import annotations

import socket
from dataclasses import dataclass

__all__ = ["Listen", "ServerOptions", "bind_socket", "parse_listen"]


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
    """How to serve: addresses, processes and the protocol limits hypercorn enforces."""

    listen: Listen = Listen("127.0.0.1", 8080)
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


def bind_socket(listen: Listen, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket on `listen`."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((listen.host, listen.port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock
