"""Raw HTTP/1.1 over a socket, for requests an HTTP client would refuse or normalise."""

from __future__ import annotations

import socket


def exchange(port: int, raw: bytes, *, timeout: float = 10) -> bytes:
    """Send `raw` and read until the server closes or a full response with a body arrives."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        return read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    """One response from `sock` (Content-Length or close-delimited bodies; no chunked)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if head.split(b" ")[1] in (b"304", b"204") or b"HEAD" in head[:0]:
        length = 0
    while length is None or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
