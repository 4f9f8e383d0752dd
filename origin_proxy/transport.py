"""A lean HTTP/1.1 transport for httpx: keep-alive connection pools on asyncio protocols.

`PooledTransport` speaks HTTP/1.1 to origins over plain asyncio transports (so it runs the same
under uvloop and the default loop) and parses responses with httptools' C parser. It exists
because httpx's default transport (httpcore) costs several times more CPU per request than the
network does; see shared/PERFORMANCE.md. The edge calls `handle_async_request` directly with a
prebuilt `httpx.Request` and gets back an `httpx.Response` whose stream yields the raw
(de-chunked, still content-encoded) body with flow control in both directions.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, cast

import httptools
import httpx

from origin_proxy.limits import (
    DEFAULT_MAX_RESPONSE_HEADER_BYTES,
    DEFAULT_MAX_RESPONSE_HEADER_FIELDS,
    default_upload_connections,
)

__all__ = ["PooledTransport", "ResponseBodyIncomplete", "ResponseHeadTooLarge"]

# Unread response body bytes held per connection before the socket stops being read, and the
# level the consumer must drain to before reading resumes: a slow consumer never makes us
# buffer a whole body.
_PAUSE_READING_ABOVE: Final = 512 * 1024
_RESUME_READING_BELOW: Final = 64 * 1024

_HTTP_11: Final = b"HTTP/1.1"
_HTTP_10: Final = b"HTTP/1.0"
_LAST_CHUNK: Final = b"0\r\n\r\n"
_CRLF: Final = b"\r\n"
_HEADER_END: Final = b"\r\n\r\n"

_Key = tuple[bytes, bytes, int]
_Headers = list[tuple[bytes, bytes]]


def _make_headers_plain(raw: _Headers) -> httpx.Headers:
    return httpx.Headers(raw)


def _make_headers_fast(raw: _Headers) -> httpx.Headers:
    # httpx.Headers() re-checks and re-encodes every pair (the largest single cost of building
    # a Response); the parser's bytes need none of it, so the private list is filled directly.
    headers = httpx.Headers.__new__(httpx.Headers)
    headers._list = [(name, name.lower(), value) for name, value in raw]
    headers._encoding = None
    return headers


def _fast_headers_work() -> bool:
    """Whether this httpx keeps headers the way `_make_headers_fast` assumes (0.28 does)."""
    raw = [(b"X-A", b"1"), (b"x-b", b"2")]
    try:
        headers = _make_headers_fast(raw)
        return (
            headers.raw == raw
            and headers["x-a"] == "1"
            and dict(headers) == dict(httpx.Headers(raw))
        )
    except Exception:  # noqa: BLE001 - any failure means: use the public constructor
        return False


_make_headers = _make_headers_fast if _fast_headers_work() else _make_headers_plain


class ResponseHeadTooLarge(httpx.RemoteProtocolError):
    """The origin's response head (or its chunk framing and trailer section) passed the
    transport's limits; the connection is dropped without reading further."""


class ResponseBodyIncomplete(httpx.RemoteProtocolError):
    """The origin closed the connection before the end of the body its framing announced."""


class _HeadResponseEndError(Exception):
    """Raised from the parser callback to stop parsing after the headers of a HEAD response."""


class _UnexpectedMessageError(Exception):
    """Raised from the parser callback when the origin sends a second, unrequested response."""


class _StaleConnectionError(Exception):
    """A reused keep-alive connection died before a single response byte arrived."""


def _closes_connection(headers: _Headers, http_version: str) -> bool:
    """Whether a response without a body leaves the connection unusable (RFC 9112 §9.3)."""
    close = http_version != "1.1"
    for name, value in headers:
        if name.lower() == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                return True
            if b"keep-alive" in tokens:
                close = False
    return close


def _head_size(reason: bytes, headers: _Headers) -> int:
    """The size of a response head as written: status line, fields, blank line."""
    return (
        len(b"HTTP/1.1 200 \r\n") + len(reason) + sum(4 + len(n) + len(v) for n, v in headers) + 2
    )


def _has_body_framing(headers: _Headers) -> bool:
    """Whether a response delimits its body itself, rather than by closing (RFC 9112 §6.3):
    a Transfer-Encoding whose final coding is chunked, or else a Content-Length. A response
    whose Transfer-Encoding ends in another coding is read until the connection closes."""
    codings = [value for name, value in headers if name.lower() == b"transfer-encoding"]
    if codings:
        final = b",".join(codings).rsplit(b",", 1)[-1]
        return final.strip(b" \t").lower() == b"chunked"
    return any(name.lower() == b"content-length" for name, _ in headers)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to an origin and the state of its current exchange."""

    __slots__ = (
        "_loop",
        "_max_head_bytes",
        "_max_header_fields",
        "_pool",
        "body_waiter",
        "buffered",
        "chunks",
        "complete",
        "drain_waiter",
        "error",
        "framing_bytes",
        "got_data",
        "head_bytes",
        "head_waiter",
        "headers",
        "headers_done",
        "http_version",
        "idle_since",
        "in_exchange",
        "interim_bytes",
        "is_head",
        "keep_alive",
        "key",
        "lost",
        "parser",
        "reading_paused",
        "reason",
        "request_sent",
        "reused",
        "status",
        "transport",
        "writing_paused",
    )

    def __init__(self, pool: PooledTransport, key: _Key, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop
        self._max_head_bytes = pool._max_response_header_bytes
        self._max_header_fields = pool._max_response_header_fields
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpResponseParser(self)
        self.lost = False
        self.reused = False
        self.idle_since = 0.0
        self.reading_paused = False
        self.writing_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self.in_exchange = False
        self.head_waiter: asyncio.Future[None] | None = None
        self.body_waiter: asyncio.Future[None] | None = None
        self.is_head = False
        self.status = 0
        self.reason = b""
        self.http_version = _HTTP_11
        self.headers: _Headers = []
        self.headers_done = False
        # Bytes read before the final head ended (interim heads included), the exact size of
        # the interim heads, and bytes since the last read that carried body data.
        self.head_bytes = 0
        self.interim_bytes = 0
        self.framing_bytes = 0
        self.got_data = False
        self.complete = False
        self.keep_alive = False
        self.request_sent = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.error: httpx.TransportError | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_exchange:
            # Bytes on an idle connection (often a 408 just before the origin closes it):
            # nothing can be trusted on this connection any more.
            self._pool._discard(self)
            return
        self.got_data = True
        limit = self._max_head_bytes
        if self.headers_done:
            # Body bytes are bounded by flow control (on_body). What is neither head nor body
            # (chunk framing, a trailer section the parser keeps until a field ends) is counted
            # from the last read that carried body data.
            buffered = self.buffered
            if self._feed(data) and self.buffered == buffered and not self.complete:
                self.framing_bytes += len(data)
                if self.framing_bytes > limit:
                    self._fail(
                        ResponseHeadTooLarge(
                            f"origin sent over {limit} bytes of chunk framing or trailer fields"
                        )
                    )
            else:
                self.framing_bytes = 0
            return
        # Before the head ends every byte read belongs to a head, so counting reads bounds
        # what the parser holds, a field it has not seen the end of included.
        self.head_bytes += len(data)
        if self._feed(data) and not self.headers_done and self.head_bytes > limit:
            self._fail(ResponseHeadTooLarge(f"origin sent a response head over {limit} bytes"))

    def _feed(self, data: bytes) -> bool:
        """Parse `data`; False when that ended the exchange."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadResponseEndError):
                self._finish_head_response(data)
            elif isinstance(cause, _UnexpectedMessageError):
                self.keep_alive = False
                self._pool._discard(self)
            elif isinstance(cause, ResponseHeadTooLarge):
                self._fail(cause)
            else:
                self._fail(httpx.RemoteProtocolError(f"invalid HTTP response from origin: {exc}"))
        except httptools.HttpParserUpgrade:
            # 101 Switching Protocols: this transport does not tunnel other protocols.
            self._fail(httpx.RemoteProtocolError("origin switched protocols (101), unsupported"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response from origin: {exc}"))
        else:
            return True
        return False

    def eof_received(self) -> bool | None:
        return None  # let the transport close itself; connection_lost does the bookkeeping

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._pool._forget(self)
        drain = self.drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)
        if not self.in_exchange or self.complete:
            return
        if not self.headers_done:
            waiter = self.head_waiter
            if waiter is None or waiter.done():
                return
            if self.reused and not self.got_data:
                waiter.set_exception(_StaleConnectionError())
            elif exc is not None:
                waiter.set_exception(httpx.ReadError(f"origin connection broke: {exc!r}"))
            else:
                waiter.set_exception(
                    httpx.RemoteProtocolError("origin closed the connection without a response")
                )
            return
        if self.error is not None:
            pass  # the exchange already failed (and closed the connection) for a reason
        elif exc is None and not self.is_head and not _has_body_framing(self.headers):
            # RFC 9112 §6.3 (8): a body with no framing ends when the connection closes.
            self.complete = True
        elif exc is not None:
            self.error = httpx.ReadError(f"origin connection broke mid-body: {exc!r}")
        else:
            self.error = ResponseBodyIncomplete("origin closed the connection mid-body")
        self._wake_body()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        drain = self.drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise _UnexpectedMessageError
        self.headers = []
        self.reason = b""

    def on_status(self, reason: bytes) -> None:
        self.reason += reason  # the parser passes a reason split over reads in parts

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers_done:
            return  # a trailer field (RFC 9110 §6.5): not forwarded; counted as framing
        headers = self.headers
        headers.append((name, value))
        if len(headers) > self._max_header_fields:
            raise ResponseHeadTooLarge(
                f"origin sent over {self._max_header_fields} header fields in a response head"
            )

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if self.head_bytes > self._max_head_bytes:
            # The reads passed the limit, perhaps only with body bytes: measure the heads.
            size = self.interim_bytes + _head_size(self.reason, self.headers)
            if size > self._max_head_bytes:
                raise ResponseHeadTooLarge(
                    f"origin sent a response head over {self._max_head_bytes} bytes"
                )
        if status < 200:
            # RFC 9110 §15.2: interim responses (100 Continue, 103 Early Hints) are skipped;
            # they count against the head limit, so an endless series of them ends too.
            self.interim_bytes += _head_size(self.reason, self.headers)
            return
        self.status = status
        self.headers_done = True
        if parser.get_http_version() != "1.1":
            self.http_version = _HTTP_10
        waiter = self.head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        drain = self.drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)  # an early answer stops the upload
        if self.is_head:
            # RFC 9110 §9.3.2: a HEAD response has no body whatever its framing headers say;
            # httptools cannot be told so, so parsing stops here.
            raise _HeadResponseEndError

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_READING_ABOVE and not self.reading_paused:
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        waiter = self.body_waiter
        if waiter is not None:
            self.body_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake_body()

    # -- exchange helpers ------------------------------------------------------------------

    def _finish_head_response(self, data: bytes) -> None:
        self.complete = True
        # The parser is unusable after being stopped; the connection is only reused when the
        # read ended exactly at the end of the headers, i.e. no stray body bytes were sent.
        self.parser = httptools.HttpResponseParser(self)
        version = "1.1" if self.http_version == _HTTP_11 else "1.0"
        self.keep_alive = data.endswith(_HEADER_END) and not _closes_connection(
            self.headers, version
        )

    def _fail(self, error: httpx.TransportError) -> None:
        """Abort the exchange with `error` and drop the connection."""
        waiter = self.head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        elif self.error is None and not self.complete:
            self.error = error
            self._wake_body()
        self._pool._discard(self)

    def _wake_body(self) -> None:
        waiter = self.body_waiter
        if waiter is not None:
            self.body_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _on_head_timeout(self) -> None:
        waiter = self.head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(httpx.ReadTimeout("origin sent no response headers in time"))
        self._pool._discard(self)

    def _on_body_timeout(self) -> None:
        if self.error is None and not self.complete:
            self.error = httpx.ReadTimeout("origin stopped sending the body")
            self._wake_body()
        self._pool._discard(self)

    def _on_write_timeout(self) -> None:
        drain = self.drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(httpx.WriteTimeout("origin stopped reading the request body"))

    async def wait_body(self, timeout_seconds: float | None) -> None:
        """Wait until more body bytes, the end of the body, or an error arrive."""
        waiter = self._loop.create_future()
        self.body_waiter = waiter
        timer = (
            None
            if timeout_seconds is None
            else self._loop.call_later(timeout_seconds, self._on_body_timeout)
        )
        try:
            await waiter
        finally:
            self.body_waiter = None
            if timer is not None:
                timer.cancel()

    def resume_reading(self) -> None:
        self.reading_paused = False
        if not self.lost:
            assert self.transport is not None
            self.transport.resume_reading()

    async def _drain(self, timeout_seconds: float | None) -> None:
        waiter = self._loop.create_future()
        self.drain_waiter = waiter
        timer = (
            None
            if timeout_seconds is None
            else self._loop.call_later(timeout_seconds, self._on_write_timeout)
        )
        try:
            await waiter
        finally:
            self.drain_waiter = None
            if timer is not None:
                timer.cancel()

    async def send_body(
        self,
        head: bytes,
        first: bytes,
        rest: AsyncIterator[bytes],
        chunked: bool,
        length: int | None,
        timeout_seconds: float | None,
    ) -> None:
        """Send `head`, the body's `first` chunk and the `rest` of it, waiting whenever the
        socket's write buffer is full (for at most `timeout_seconds` each time).

        A body with neither Content-Length nor chunked framing goes chunked (RFC 9112 §6.1).
        Stops early (leaving `request_sent` false, so the connection is not reused) when the
        origin answers or disconnects before the whole body was sent. An exception from `rest`
        (the viewer's side) propagates unchanged.
        """
        transport = self.transport
        assert transport is not None
        if length is None and not chunked:
            chunked = True
            head = head[:-2] + b"transfer-encoding: chunked\r\n\r\n"
        transport.write(head)
        sent = 0
        chunk = first
        try:
            while chunk:
                if self.lost or self.headers_done:
                    return
                sent += len(chunk)
                if chunked:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    if length is not None and sent > length:
                        raise httpx.LocalProtocolError(
                            "request body longer than its Content-Length"
                        )
                    transport.write(chunk)
                if self.writing_paused:
                    await self._drain(timeout_seconds)
                chunk = await _next_chunk(rest)
            if length is not None and sent != length:
                raise httpx.LocalProtocolError("request body shorter than its Content-Length")
            if chunked and not self.lost:
                transport.write(_LAST_CHUNK)
            self.request_sent = True
        finally:
            if not self.request_sent:
                await _close_body(rest)


async def _next_chunk(body: AsyncIterator[bytes]) -> bytes:
    """The next chunk of a request body that is not empty; b"" at its end."""
    async for chunk in body:
        if chunk:
            return chunk
    return b""


async def _close_body(body: AsyncIterator[bytes]) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


class _StreamedRequestBody:
    """A request body from a stream: its first chunk, already read, and the rest to come."""

    __slots__ = ("_slot_of", "first", "rest")

    def __init__(self, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self.first = first
        self.rest = rest
        self._slot_of: PooledTransport | None = None

    @classmethod
    async def start(cls, stream: httpx.AsyncByteStream) -> _StreamedRequestBody:
        """Wait for the first chunk that is not empty (b"" if the stream ends first)."""
        rest = stream.__aiter__()
        try:
            first = await _next_chunk(rest)
        except BaseException:
            await _close_body(rest)
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
        await _close_body(self.rest)


class _BufferedBody(httpx.AsyncByteStream):
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


class _StreamedBody(httpx.AsyncByteStream):
    """A body read from its connection as the consumer asks for it."""

    __slots__ = ("_conn", "_done", "_timeout")

    def __init__(self, conn: _Connection, timeout: float | None) -> None:
        self._conn = conn
        self._timeout = timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        chunks = conn.chunks
        while not self._done:
            if chunks:
                chunk = chunks.popleft()
                conn.buffered -= len(chunk)
                if conn.reading_paused and conn.buffered < _RESUME_READING_BELOW:
                    conn.resume_reading()
                yield chunk
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


class PooledTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive pools per (scheme, host, port), for `handle_async_request` calls.

    `max_connections` bounds the open connections over all origins (a request waits up to the
    pool timeout for one, then fails with `httpx.PoolTimeout`); at most `max_keepalive` idle
    ones are kept, each for `keepalive_expiry` seconds. https is supported through `ssl_context`
    (default: `ssl.create_default_context()`, created on first use).

    A request whose body streams (an `httpx.AsyncByteStream`) takes no connection before the
    stream yields its first chunk, and until that body is sent it holds one of
    `max_upload_connections` (default: `limits.default_upload_connections`, three quarters of
    `max_connections`): the pace of an upload is the sender's, and stalled uploads must not
    take the connections that other requests need. A response head over
    `max_response_header_bytes` or `max_response_header_fields` fails with
    `ResponseHeadTooLarge` as soon as the bytes read pass the limit.
    """

    def __init__(
        self,
        *,
        max_connections: int = 256,
        max_keepalive: int = 64,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        max_upload_connections: int | None = None,
        max_response_header_bytes: int = DEFAULT_MAX_RESPONSE_HEADER_BYTES,
        max_response_header_fields: int = DEFAULT_MAX_RESPONSE_HEADER_FIELDS,
    ) -> None:
        if max_connections < 1 or max_keepalive < 0:
            raise ValueError("max_connections must be >= 1 and max_keepalive >= 0")
        if max_upload_connections is None:
            max_upload_connections = default_upload_connections(max_connections)
        if max_upload_connections < 1:
            raise ValueError("max_upload_connections must be >= 1")
        if max_response_header_bytes < 1 or max_response_header_fields < 1:
            raise ValueError("the response head limits must be >= 1")
        self._max_connections = max_connections
        self._max_uploads = min(max_upload_connections, max_connections)
        self._uploads = 0  # upload slots held
        self._upload_waiters: deque[asyncio.Future[None]] = deque()
        self._max_response_header_bytes = max_response_header_bytes
        self._max_response_header_fields = max_response_header_fields
        self._max_keepalive = max_keepalive
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[_Key, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0  # connections open or being opened, counted against max_connections
        self._connections: set[_Connection] = set()
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    # -- the request path ------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("PooledTransport is closed")
        url = request.url
        scheme = url.raw_scheme
        port = url.port
        if port is None:
            port = 443 if scheme == b"https" else 80
        key = (scheme, url.raw_host, port)
        extensions = request.extensions
        target = extensions.get("target") or url.raw_path
        timeouts: Mapping[str, float | None] | None = extensions.get("timeout")
        if timeouts is None:
            read_timeout: float | None = self._read_timeout
        else:
            read_timeout = timeouts.get("read", self._read_timeout)

        # The request head, with the body inline when it is already in memory.
        lines = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        header_lines = 0
        has_host = False
        length: int | None = None
        chunked = False
        for name, value in request.headers.raw:
            lines += (name, b": ", value, _CRLF)
            header_lines += 1
            if len(name) == 4:
                has_host = has_host or name.lower() == b"host"
            elif len(name) == 14:
                if name.lower() == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        raise httpx.LocalProtocolError("invalid Content-Length") from None
            elif len(name) == 17 and name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not has_host:
            lines += (b"host: ", url.netloc, _CRLF)
            header_lines += 1
        stream = request.stream
        body_stream: httpx.AsyncByteStream | None = None
        if isinstance(stream, httpx.ByteStream):
            body = b"".join(stream)
            if chunked:
                body = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if body else _LAST_CHUNK
            elif body and length is None:
                # The whole body is known: Content-Length suits more origins than chunked.
                lines.append(b"content-length: %d\r\n" % len(body))
                header_lines += 1
        else:
            body = b""
            assert isinstance(stream, httpx.AsyncByteStream)
            body_stream = stream
        lines.append(_CRLF)
        head = b"".join(lines)
        # RFC 9112 §2.2: a CR or LF inside a field would split it into forged header lines.
        if head.count(b"\n") != header_lines + 2 or head.count(b"\r") != header_lines + 2:
            raise httpx.LocalProtocolError("CR or LF inside the request line or a header field")
        streamed = None
        if body_stream is not None:
            # No connection is taken before there is something to send: how long the first
            # chunk takes is the sender's to bound (the edge times out a silent viewer).
            streamed = await _StreamedRequestBody.start(body_stream)
            if not streamed.first:
                streamed = None  # the stream was empty: the request has no body
                if chunked:
                    body = _LAST_CHUNK
                elif length:
                    raise httpx.LocalProtocolError("request body shorter than its Content-Length")
        if body:
            head += body

        try:
            if streamed is not None and (length is None or len(streamed.first) < length):
                # More is to come, at the sender's pace: hold an upload slot meanwhile.
                await streamed.take_upload_slot(self, timeouts)
            conn = self._take_idle(key)
            if conn is None:
                conn = await self._acquire(key, timeouts)
        except BaseException:
            if streamed is not None:
                streamed.release_upload_slot()
                await streamed.close()
            raise
        try:
            return await self._exchange(
                conn, request, head, streamed, chunked, length, read_timeout, timeouts
            )
        except _StaleConnectionError:
            # The origin closed an idle connection as we reused it: nothing was received, so
            # a request with no body is safe to send again on a fresh connection, once.
            if streamed is not None or body:
                raise httpx.RemoteProtocolError(
                    "origin closed a kept-alive connection before answering"
                ) from None
        conn = await self._acquire(key, timeouts, fresh=True)
        try:
            return await self._exchange(
                conn, request, head, None, chunked, length, read_timeout, timeouts
            )
        except _StaleConnectionError:  # pragma: no cover - a fresh connection is never reused
            raise httpx.RemoteProtocolError("origin closed the connection") from None

    async def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        head: bytes,
        streamed: _StreamedRequestBody | None,
        chunked: bool,
        length: int | None,
        read_timeout: float | None,
        timeouts: Mapping[str, float | None] | None,
    ) -> httpx.Response:
        loop = conn._loop
        waiter: asyncio.Future[None] = loop.create_future()
        conn.head_waiter = waiter
        conn.in_exchange = True
        conn.is_head = request.method == "HEAD"
        transport = conn.transport
        assert transport is not None
        try:
            if streamed is None:
                transport.write(head)
                conn.request_sent = True
            else:
                write_timeout = read_timeout if timeouts is None else timeouts.get("write")
                try:
                    await conn.send_body(
                        head, streamed.first, streamed.rest, chunked, length, write_timeout
                    )
                finally:
                    streamed.release_upload_slot()
            if not waiter.done():
                if read_timeout is None:
                    await waiter
                else:
                    timer = loop.call_later(read_timeout, conn._on_head_timeout)
                    try:
                        await waiter
                    finally:
                        timer.cancel()
            else:
                waiter.result()
        except BaseException:
            # Includes cancellation: the connection is mid-exchange, so it cannot be reused.
            conn.in_exchange = False
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: this failure is reported by what is raised
            self._discard(conn)
            raise
        conn.head_waiter = None
        extensions = {"reason_phrase": conn.reason, "http_version": conn.http_version}
        if conn.complete:
            stream: httpx.AsyncByteStream = _BufferedBody(conn.chunks)
            response = httpx.Response(
                conn.status,
                headers=_make_headers(conn.headers),
                stream=stream,
                extensions=extensions,
            )
            self._release(conn)
            return response
        return httpx.Response(
            conn.status,
            headers=_make_headers(conn.headers),
            stream=_StreamedBody(conn, read_timeout),
            extensions=extensions,
        )

    # -- the pool --------------------------------------------------------------------------

    def _take_idle(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            if conn.lost or now - conn.idle_since >= self._keepalive_expiry:
                self._discard(conn)
                continue
            conn.reused = True
            return conn
        return None

    async def _acquire(
        self, key: _Key, timeouts: Mapping[str, float | None] | None, *, fresh: bool = False
    ) -> _Connection:
        connect_timeout = self._connect_timeout if timeouts is None else timeouts.get("connect")
        pool_timeout = self._connect_timeout if timeouts is None else timeouts.get("pool")
        loop = asyncio.get_running_loop()
        deadline = None if pool_timeout is None else loop.time() + pool_timeout
        while True:
            if self._closed:
                raise RuntimeError("PooledTransport is closed")
            conn = None if fresh else self._take_idle(key)
            if conn is not None:
                return conn
            if self._open >= self._max_connections and self._idle_count:
                self._close_one_idle()
            if self._open < self._max_connections:
                return await self._connect(key, connect_timeout, loop)
            waiter: asyncio.Future[None] = loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    async with asyncio.timeout_at(deadline):
                        await waiter
            except TimeoutError:
                raise httpx.PoolTimeout("no connection to the origin became free") from None
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_slot_waiter()  # pass on the wake-up this task will not use
                raise
            finally:
                if not waiter.done():
                    self._slot_waiters.remove(waiter)

    async def _connect(
        self, key: _Key, timeout_seconds: float | None, loop: asyncio.AbstractEventLoop
    ) -> _Connection:
        scheme, raw_host, port = key
        if scheme == b"https":
            context = self._ssl_context
            if context is None:
                context = self._ssl_context = ssl.create_default_context()
                context.set_alpn_protocols(["http/1.1"])
        elif scheme == b"http":
            context = None
        else:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme.decode()!r}")
        host = raw_host.decode("ascii")
        conn = _Connection(self, key, loop)
        self._open += 1
        try:
            async with asyncio.timeout(timeout_seconds):
                await loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            self._open -= 1
            self._wake_slot_waiter()
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            self._open -= 1
            self._wake_slot_waiter()
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        except BaseException:
            self._open -= 1
            self._wake_slot_waiter()
            raise
        if conn.lost:  # pragma: no cover - closed between connect and now
            raise httpx.ConnectError(f"connection to {host}:{port} closed at once")
        self._connections.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        """Return a connection whose exchange ended cleanly; keep it if it can be reused."""
        reusable = conn.keep_alive and conn.request_sent and not conn.lost and not self._closed
        if not reusable or self._idle_count >= self._max_keepalive:
            self._discard(conn)
            return
        conn._reset_exchange()
        conn.idle_since = conn._loop.time()
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = []
        idle.append(conn)
        self._idle_count += 1
        if self._slot_waiters:
            self._wake_slot_waiter()

    def _discard(self, conn: _Connection) -> None:
        """Close a connection (idempotent) and free its slot."""
        conn.keep_alive = False
        if not conn.lost:
            conn.lost = True  # closing: never handed out again, even before connection_lost
            if conn.transport is not None:
                conn.transport.close()
        self._forget(conn)

    def _forget(self, conn: _Connection) -> None:
        if conn in self._connections:
            self._connections.remove(conn)
            self._open -= 1
            self._wake_slot_waiter()

    def _close_one_idle(self) -> None:
        """Close the oldest idle connection of any origin to make room for a new one."""
        for idle in self._idle.values():
            while idle:
                conn = idle.pop(0)
                self._idle_count -= 1
                live = conn in self._connections
                self._discard(conn)
                if live:
                    return

    async def _take_upload_slot(self, timeouts: Mapping[str, float | None] | None) -> None:
        """Wait up to the pool timeout until fewer than `max_upload_connections` requests are
        sending a streamed body, and count this one."""
        if self._uploads < self._max_uploads and not self._upload_waiters:
            self._uploads += 1
            return
        pool_timeout = self._connect_timeout if timeouts is None else timeouts.get("pool")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._upload_waiters.append(waiter)
        try:
            async with asyncio.timeout(pool_timeout):
                await waiter  # a slot given back is handed over: the count stays
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_back_upload_slot()  # handed over too late: pass it on
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout(
                    "every connection that uploads may use is busy sending a body"
                ) from None
            raise
        finally:
            if not waiter.done():
                self._upload_waiters.remove(waiter)

    def _give_back_upload_slot(self) -> None:
        waiters = self._upload_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._uploads -= 1

    def _wake_slot_waiter(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close every connection, idle or busy; later requests raise RuntimeError."""
        self._closed = True
        for conn in list(self._connections):
            self._discard(conn)
        self._idle.clear()
        self._idle_count = 0
        for waiters in (self._slot_waiters, self._upload_waiters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(RuntimeError("PooledTransport is closed"))
