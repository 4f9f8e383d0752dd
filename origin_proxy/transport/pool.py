"""The transport: keep-alive pools per origin, connection and upload slots, the request path."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterable, Iterable, Mapping

import httpx

from origin_proxy.limits import (
    DEFAULT_MAX_RESPONSE_HEADER_BYTES,
    DEFAULT_MAX_RESPONSE_HEADER_FIELDS,
    default_upload_connections,
)
from origin_proxy.transport.bodies import (
    BufferedBody,
    RawResponse,
    StreamedBody,
    StreamedRequestBody,
)
from origin_proxy.transport.connection import Connection, Key
from origin_proxy.transport.errors import StaleConnectionError
from origin_proxy.transport.framing import CRLF, LAST_CHUNK, make_headers

__all__ = ["PooledTransport"]


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
        self._idle: dict[Key, list[Connection]] = {}
        self._idle_count = 0
        self._open = 0  # connections open or being opened, counted against max_connections
        self._connections: set[Connection] = set()
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    # -- the request path ------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        port = url.port
        if port is None:
            port = 443 if scheme == b"https" else 80
        extensions = request.extensions
        stream = request.stream
        body: bytes | None = None
        body_stream: AsyncIterable[bytes] | None = None
        if isinstance(stream, httpx.ByteStream):
            body = b"".join(stream)
        else:
            assert isinstance(stream, httpx.AsyncByteStream)
            body_stream = stream
        raw = await self.send(
            (scheme, url.raw_host, port),
            request.method,
            extensions.get("target") or url.raw_path,
            request.headers.raw,
            body=body,
            body_stream=body_stream,
            timeouts=extensions.get("timeout"),
            netloc=url.netloc,
        )
        return httpx.Response(
            raw.status,
            headers=make_headers(raw.headers),
            stream=raw.stream,
            extensions={"reason_phrase": raw.reason, "http_version": raw.http_version},
        )

    async def send(
        self,
        key: Key,
        method: str,
        target: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        *,
        body: bytes | None = None,
        body_stream: AsyncIterable[bytes] | None = None,
        timeouts: Mapping[str, float | None] | None = None,
        netloc: bytes | None = None,
    ) -> RawResponse:
        """Send one request to the origin `key` (scheme, host, port) and wait for its head.

        The request goes as given: `target` as the request target, `headers` as they are (a
        Host is added from `netloc` when there is none), `body` in memory or `body_stream`
        streamed (Content-Length when given, else chunked). The answer's head comes with its
        body as a stream that gives the connection back once read or closed. This is the
        path without httpx's request and response objects (`handle_async_request` is this
        under httpx's interface); it raises httpx's exceptions all the same.
        """
        if self._closed:
            raise RuntimeError("PooledTransport is closed")
        if timeouts is None:
            read_timeout: float | None = self._read_timeout
        else:
            read_timeout = timeouts.get("read", self._read_timeout)

        # The request head, with the body inline when it is already in memory.
        lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        header_lines = 0
        has_host = False
        length: int | None = None
        chunked = False
        for name, value in headers:
            lines += (name, b": ", value, CRLF)
            header_lines += 1
            size = len(name)
            if size == 4:
                has_host = has_host or name.lower() == b"host"
            elif size == 14:
                if name.lower() == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        raise httpx.LocalProtocolError("invalid Content-Length") from None
            elif size == 17 and name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not has_host:
            if netloc is None:
                scheme, host, port = key
                if b":" in host:
                    host = b"[" + host + b"]"  # an IPv6 address
                default = 443 if scheme == b"https" else 80
                netloc = host if port == default else b"%b:%d" % (host, port)
            lines += (b"host: ", netloc, CRLF)
            header_lines += 1
        if body is None:
            body = b""
        elif chunked:
            body = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if body else LAST_CHUNK
        elif body and length is None:
            # The whole body is known: Content-Length suits more origins than chunked.
            lines.append(b"content-length: %d\r\n" % len(body))
            header_lines += 1
        lines.append(CRLF)
        head = b"".join(lines)
        # RFC 9112 §2.2: a CR or LF inside a field would split it into forged header lines.
        if head.count(b"\n") != header_lines + 2 or head.count(b"\r") != header_lines + 2:
            raise httpx.LocalProtocolError("CR or LF inside the request line or a header field")
        streamed = None
        if body_stream is not None:
            # No connection is taken before there is something to send: how long the first
            # chunk takes is the sender's to bound (the edge times out a silent viewer).
            streamed = await StreamedRequestBody.start(body_stream)
            if not streamed.first:
                streamed = None  # the stream was empty: the request has no body
                if chunked:
                    body = LAST_CHUNK
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
        is_head = method == "HEAD"
        try:
            return await self._exchange(
                conn, is_head, head, streamed, chunked, length, read_timeout, timeouts
            )
        except StaleConnectionError:
            # The origin closed an idle connection as we reused it: nothing was received, so
            # a request with no body is safe to send again on a fresh connection, once.
            if streamed is not None or body:
                raise httpx.RemoteProtocolError(
                    "origin closed a kept-alive connection before answering"
                ) from None
        conn = await self._acquire(key, timeouts, fresh=True)
        try:
            return await self._exchange(
                conn, is_head, head, None, chunked, length, read_timeout, timeouts
            )
        except StaleConnectionError:  # pragma: no cover - a fresh connection is never reused
            raise httpx.RemoteProtocolError("origin closed the connection") from None

    async def _exchange(
        self,
        conn: Connection,
        is_head: bool,
        head: bytes,
        streamed: StreamedRequestBody | None,
        chunked: bool,
        length: int | None,
        read_timeout: float | None,
        timeouts: Mapping[str, float | None] | None,
    ) -> RawResponse:
        waiter: asyncio.Future[None] = conn._loop.create_future()
        conn.head_waiter = waiter
        conn.in_exchange = True
        conn.is_head = is_head
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
                    conn.watch_head(read_timeout)
                    try:
                        await waiter
                    finally:
                        conn.head_deadline = None
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
        if conn.complete:
            response = RawResponse(
                conn.status, conn.reason, conn.http_version, conn.headers, BufferedBody(conn.chunks)
            )
            self._release(conn)
            return response
        return RawResponse(
            conn.status,
            conn.reason,
            conn.http_version,
            conn.headers,
            StreamedBody(conn, read_timeout),
        )

    # -- the pool --------------------------------------------------------------------------

    def _take_idle(self, key: Key) -> Connection | None:
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
        self, key: Key, timeouts: Mapping[str, float | None] | None, *, fresh: bool = False
    ) -> Connection:
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
        self, key: Key, timeout_seconds: float | None, loop: asyncio.AbstractEventLoop
    ) -> Connection:
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
        conn = Connection(self, key, loop)
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

    def _release(self, conn: Connection) -> None:
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

    def _discard(self, conn: Connection) -> None:
        """Close a connection (idempotent) and free its slot."""
        conn.keep_alive = False
        if not conn.lost:
            conn.lost = True  # closing: never handed out again, even before connection_lost
            conn.stop_head_timer()
            if conn.transport is not None:
                conn.transport.close()
        self._forget(conn)

    def _forget(self, conn: Connection) -> None:
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
