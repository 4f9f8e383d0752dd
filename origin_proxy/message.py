"""The request sent to an origin and the response it gives back: plain data, no I/O.

Headers are ASGI-style pairs of bytes with lower-case names, so a request goes from the
server to the origin without being re-encoded. Bodies are async iterators of raw bytes:
nothing on the forward path holds a whole body in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _nothing_to_close() -> None:
    return None


def empty_body() -> AsyncIterator[bytes]:
    """A body with no bytes."""
    return _no_body()


async def single_chunk(data: bytes) -> AsyncIterator[bytes]:
    """A body made of one in-memory chunk (for small generated answers)."""
    if data:
        yield data


@dataclass(slots=True)
class OriginRequest:
    """What is sent to an origin.

    `target` is the request target exactly as it goes on the wire: the percent-encoded path
    (already including any origin path prefix) plus `?query` when there is one. `headers` are
    the complete headers to send, `host` included. A `body` of None means the request has none;
    otherwise `content_length` gives its size, or None when it is sent chunked.
    """

    method: str
    target: bytes
    headers: Headers
    body: AsyncIterator[bytes] | None = None
    content_length: int | None = None
    # Who asked, for origins that present the viewer themselves (function origins).
    client_ip: str = ""
    scheme: str = "http"
    listener_port: int = 80


@dataclass(slots=True)
class OriginResponse:
    """What an origin answered. The caller must await `close()` once it is done with `body`."""

    status: int
    headers: Headers
    body: AsyncIterator[bytes] = field(default_factory=empty_body)
    reason: bytes = b""
    close: Callable[[], Awaitable[None]] = _nothing_to_close

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None
