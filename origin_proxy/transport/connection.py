"""One connection to an origin: an asyncio protocol that parses its responses with httptools.

It holds the state of the current exchange (head, buffered body chunks, errors), applies the
response head limits and flow control, and sends a streamed request body. The pool that owns it
decides when it is reused or closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final, cast

import httptools
import httpx

from origin_proxy.transport.bodies import close_body, next_chunk
from origin_proxy.transport.errors import (
    ResponseBodyIncomplete,
    ResponseHeadTooLarge,
    StaleConnectionError,
)
from origin_proxy.transport.framing import (
    HEADER_END,
    HTTP_10,
    HTTP_11,
    LAST_CHUNK,
    RawHeaders,
    closes_connection,
    has_body_framing,
    head_size,
)

if TYPE_CHECKING:
    from origin_proxy.transport.pool import PooledTransport

__all__ = ["Connection", "Key"]

# Unread response body bytes held per connection before the socket stops being read, and the
# level the consumer must drain to before reading resumes: a slow consumer never makes us
# buffer a whole body.
_PAUSE_READING_ABOVE: Final = 512 * 1024
_RESUME_READING_BELOW: Final = 64 * 1024

Key = tuple[bytes, bytes, int]


class _HeadResponseEndError(Exception):
    """Raised from the parser callback to stop parsing after the headers of a HEAD response."""


class _UnexpectedMessageError(Exception):
    """Raised from the parser callback when the origin sends a second, unrequested response."""


class Connection(asyncio.Protocol):
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
        "head_deadline",
        "head_timer",
        "head_timer_at",
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

    def __init__(self, pool: PooledTransport, key: Key, loop: asyncio.AbstractEventLoop) -> None:
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
        # The head timeout, kept lazily: one timer outlives the exchanges of a kept-alive
        # connection and is moved on when it fires early (a timer per request costs more than
        # the rest of a request's bookkeeping).
        self.head_deadline: float | None = None
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_timer_at = 0.0
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self.in_exchange = False
        self.head_waiter: asyncio.Future[None] | None = None
        self.body_waiter: asyncio.Future[None] | None = None
        self.is_head = False
        self.status = 0
        self.reason = b""
        self.http_version = HTTP_11
        self.headers: RawHeaders = []
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
        self.stop_head_timer()
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
                waiter.set_exception(StaleConnectionError())
            elif exc is not None:
                waiter.set_exception(httpx.ReadError(f"origin connection broke: {exc!r}"))
            else:
                waiter.set_exception(
                    httpx.RemoteProtocolError("origin closed the connection without a response")
                )
            return
        if self.error is not None:
            pass  # the exchange already failed (and closed the connection) for a reason
        elif exc is None and not self.is_head and not has_body_framing(self.headers):
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
            size = self.interim_bytes + head_size(self.reason, self.headers)
            if size > self._max_head_bytes:
                raise ResponseHeadTooLarge(
                    f"origin sent a response head over {self._max_head_bytes} bytes"
                )
        if status < 200:
            # RFC 9110 §15.2: interim responses (100 Continue, 103 Early Hints) are skipped;
            # they count against the head limit, so an endless series of them ends too.
            self.interim_bytes += head_size(self.reason, self.headers)
            return
        self.status = status
        self.headers_done = True
        if parser.get_http_version() != "1.1":
            self.http_version = HTTP_10
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
        version = "1.1" if self.http_version == HTTP_11 else "1.0"
        self.keep_alive = data.endswith(HEADER_END) and not closes_connection(self.headers, version)

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

    def watch_head(self, timeout_seconds: float) -> None:
        """Time out the exchange's head after `timeout_seconds` (until `head_deadline` is set
        back to None: the head came, or the exchange ended otherwise)."""
        loop = self._loop
        deadline = loop.time() + timeout_seconds
        self.head_deadline = deadline
        timer = self.head_timer
        if timer is not None:
            if self.head_timer_at <= deadline:
                return  # it fires first and moves itself on to the deadline
            timer.cancel()
        self.head_timer_at = deadline
        self.head_timer = loop.call_at(deadline, self._head_timer_fired)

    def stop_head_timer(self) -> None:
        self.head_deadline = None
        timer = self.head_timer
        if timer is not None:
            self.head_timer = None
            timer.cancel()

    def _head_timer_fired(self) -> None:
        self.head_timer = None
        deadline = self.head_deadline
        if deadline is None or self.lost:
            return  # no head awaited: the next exchange starts a timer again
        if self._loop.time() < deadline:
            self.head_timer_at = deadline
            self.head_timer = self._loop.call_at(deadline, self._head_timer_fired)
            return
        self.head_deadline = None
        self._on_head_timeout()

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

    def take_chunk(self) -> bytes:
        """The oldest body chunk not yet consumed; reading resumes once the consumer has
        drained the buffer."""
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.reading_paused and self.buffered < _RESUME_READING_BELOW:
            self.resume_reading()
        return chunk

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
                chunk = await next_chunk(rest)
            if length is not None and sent != length:
                raise httpx.LocalProtocolError("request body shorter than its Content-Length")
            if chunked and not self.lost:
                transport.write(LAST_CHUNK)
            self.request_sent = True
        finally:
            if not self.request_sent:
                await close_body(rest)
