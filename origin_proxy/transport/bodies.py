"""The bodies of an exchange: a streamed request body, and a response body either buffered
(it came whole with the head) or read from its connection as the consumer asks for it; and the
response head they come with."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from origin_proxy.transport.connection import Connection
    from origin_proxy.transport.pool import PooledTransport

__all__ = [
    "BufferedBody",
    "RawResponse",
    "StreamedBody",
    "StreamedRequestBody",
    "close_body",
    "next_chunk",
]


async def next_chunk(body: AsyncIterator[bytes]) -> bytes:
    """The next chunk of a request body that is not empty; b"" at its end."""
    async for chunk in body:
        if chunk:
            return chunk
    return b""


async def close_body(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


class StreamedRequestBody:
    """A request body from a stream: its first chunk, already read, and the rest to come."""

    __slots__ = ("_slot_of", "first", "rest")

    def __init__(self, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self.first = first
        self.rest = rest
        self._slot_of: PooledTransport | None = None

    @classmethod
    async def start(cls, stream: AsyncIterable[bytes]) -> StreamedRequestBody:
        """Wait for the first chunk that is not empty (b"" if the stream ends first)."""
        rest = stream.__aiter__()
        try:
            first = await next_chunk(rest)
        except BaseException:
            await close_body(rest)
            raise
        return cls(first, rest)

    async def take_upload_slot(
        self, pool: PooledTransport, timeouts: Mapping[str, float | None] | None
    ) -> None:
        """Hold one of `pool`'s upload slots until `release_upload_slot`."""
        await pool._take_upload_slot(timeouts)
        self._slot_of = pool

    def release_upload_slot(self) -> None:
        if self._slot_of is not None:
            self._slot_of._give_back_upload_slot()
            self._slot_of = None

    async def close(self) -> None:
        await close_body(self.rest)


class BufferedBody(httpx.AsyncByteStream):
    """A body that arrived whole with its headers; its connection is already back in the pool."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: deque[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._chunks
        while chunks:
            yield chunks.popleft()

    async def aclose(self) -> None:
        self._chunks.clear()


class StreamedBody(httpx.AsyncByteStream):
    """A body read from its connection as the consumer asks for it."""

    __slots__ = ("_conn", "_done", "_timeout")

    def __init__(self, conn: Connection, timeout: float | None) -> None:
        self._conn = conn
        self._timeout = timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        chunks = conn.chunks
        while not self._done:
            if chunks:
                yield conn.take_chunk()
            elif conn.complete:
                self._done = True
                conn._pool._release(conn)
            elif conn.error is not None:
                self._done = True
                conn._pool._discard(conn)
                raise conn.error
            else:
                await conn.wait_body(self._timeout)

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        conn = self._conn
        if conn.complete and conn.error is None:
            # Every byte already came off the socket, so the connection is clean.
            conn.chunks.clear()
            conn._pool._release(conn)
        else:
            conn._pool._discard(conn)


class RawResponse:
    """A response head as the origin sent it, and its body.

    `headers` are the fields in the origin's order and casing (a list of its own); `stream`
    gives the connection back once read to the end or closed."""

    __slots__ = ("headers", "http_version", "reason", "status", "stream")

    def __init__(
        self,
        status: int,
        reason: bytes,
        http_version: bytes,
        headers: list[tuple[bytes, bytes]],
        stream: BufferedBody | StreamedBody,
    ) -> None:
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.stream = stream
