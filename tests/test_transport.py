"""PooledTransport against real origins on 127.0.0.1: framing, reuse, flow control, errors."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import httpx
import pytest
import uvloop

from origin_proxy.transport import PooledTransport, ResponseBodyIncomplete, ResponseHeadTooLarge
from origin_proxy.transport.connection import Connection

MB = 1024 * 1024


def run(coro: Coroutine[Any, Any, None], loop: str = "asyncio") -> None:
    if loop == "uvloop":
        uvloop.run(coro)
    else:
        asyncio.run(coro)


LOOPS = [pytest.param("asyncio", id="asyncio"), pytest.param("uvloop", id="uvloop")]


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# -- a scripted origin ---------------------------------------------------------------------


@dataclass
class Received:
    """A request as the origin saw it (bodies over 1 MB are only counted and hashed)."""

    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    body_size: int = 0
    body_sha256: str = ""
    connection: int = 0

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


@dataclass
class _RequestParser:
    slow_read: bool = False
    done: list[Received] = field(default_factory=list)
    current: Received | None = None
    digest: Any = None

    def __post_init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.current = Received("", b"", [])
        self.digest = hashlib.sha256()

    def on_url(self, url: bytes) -> None:
        assert self.current is not None
        self.current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.current is not None
        self.current.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        assert self.current is not None
        self.current.body_size += len(body)
        self.digest.update(body)
        if self.current.body_size <= MB:
            self.current.body += body

    def on_message_complete(self) -> None:
        assert self.current is not None
        self.current.method = self.parser.get_method().decode()
        self.current.body_sha256 = self.digest.hexdigest()
        self.done.append(self.current)
        self.current = None


Handler = Callable[[Received, asyncio.StreamWriter], Awaitable[bool]]


class Origin:
    """An HTTP/1.1 origin in the test's own loop; `handler` writes raw answers.

    The handler returns whether to keep the connection open for another request.
    """

    def __init__(self, handler: Handler, *, slow_read: bool = False) -> None:
        self.handler = handler
        self.slow_read = slow_read
        self.connections = 0
        self.requests: list[Received] = []
        self.closed_by_client = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Origin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    def url(self, path: str = "/") -> httpx.URL:
        return httpx.URL(f"http://127.0.0.1:{self.port}{path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        number = self.connections
        parser = _RequestParser(self.slow_read)
        try:
            while True:
                while not parser.done:
                    data = await reader.read(65536)
                    if not data:
                        self.closed_by_client += 1
                        return
                    parser.parser.feed_data(data)
                    if self.slow_read:
                        for _ in range(8):
                            await asyncio.sleep(0)  # a slow reader, not a synchronisation
                request = parser.done.pop(0)
                request.connection = number
                self.requests.append(request)
                if not await self.handler(request, writer):
                    return
        except (ConnectionError, httptools.HttpParserError):
            self.closed_by_client += 1
        finally:
            writer.close()
            self._tasks.discard(task)


def response(body: bytes = b"", status: str = "200 OK", *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 " + status.encode(), b"content-length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def echo_target(request: Received, writer: asyncio.StreamWriter) -> bool:
    writer.write(response(request.target, "200 OK", b"x-method: " + request.method.encode()))
    return True


def get(url: httpx.URL, *, method: str = "GET", **kwargs: Any) -> httpx.Request:
    headers = kwargs.pop("headers", [(b"host", url.netloc)])
    stream = kwargs.pop("stream", httpx.ByteStream(b""))
    return httpx.Request(method, url, headers=headers, stream=stream, **kwargs)


async def read_all(response: httpx.Response) -> bytes:
    chunks = [chunk async for chunk in response.aiter_raw()]
    await response.aclose()
    return b"".join(chunks)


@contextlib.asynccontextmanager
async def pooled(**kwargs: Any) -> AsyncIterator[PooledTransport]:
    transport = PooledTransport(**kwargs)
    try:
        yield transport
    finally:
        await transport.aclose()


# -- framing and reuse ---------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_keep_alive_reuses_one_connection(loop: str) -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            for i in range(5):
                answer = await transport.handle_async_request(get(origin.url(f"/n/{i}?q=1")))
                assert answer.status_code == 200
                assert await read_all(answer) == f"/n/{i}?q=1".encode()
            assert origin.connections == 1

    run(main(), loop)


def test_target_extension_and_headers_sent_as_given() -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            request = get(
                origin.url("/ignored"),
                headers=[(b"Host", b"example.org"), (b"X-Two", b"a"), (b"x-two", b"b")],
                extensions={"target": b"/raw%2Fpath?a=1&a=2"},
            )
            answer = await transport.handle_async_request(request)
            assert await read_all(answer) == b"/raw%2Fpath?a=1&a=2"
            seen = origin.requests[0]
            assert seen.headers == [(b"Host", b"example.org"), (b"X-Two", b"a"), (b"x-two", b"b")]

    run(main())


def test_host_derived_when_missing() -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            answer = await transport.handle_async_request(get(origin.url("/"), headers=[]))
            await read_all(answer)
            assert origin.requests[0].header(b"host") == f"127.0.0.1:{origin.port}".encode()

    run(main())


def test_response_metadata_and_raw_headers() -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 201 Made It\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\n"
            b"Set-Cookie: b=2\r\nContent-Encoding: gzip\r\n\r\nhi"
        )
        return True

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url()))
            assert result.status_code == 201
            assert result.extensions["reason_phrase"] == b"Made It"
            assert result.extensions["http_version"] == b"HTTP/1.1"
            assert result.headers.raw == [
                (b"Content-Length", b"2"),
                (b"Set-Cookie", b"a=1"),
                (b"Set-Cookie", b"b=2"),
                (b"Content-Encoding", b"gzip"),
            ]
            assert result.headers.get_list("set-cookie") == ["a=1", "b=2"]
            # The body is passed through as received: not decompressed.
            assert await read_all(result) == b"hi"

    run(main())


def test_chunked_response_is_dechunked_and_connection_reused() -> None:
    async def chunked(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: t\r\n\r\n"
        )
        return True

    async def main() -> None:
        async with Origin(chunked) as origin, pooled() as transport:
            for _ in range(3):
                answer = await transport.handle_async_request(get(origin.url()))
                assert await read_all(answer) == b"hello world"
            assert origin.connections == 1

    run(main())


@pytest.mark.parametrize(
    ("method", "status", "extra"),
    [
        # RFC 9110 §9.3.2: HEAD answers carry the GET framing headers but never a body.
        pytest.param("HEAD", "200 OK", b"content-length: 5000", id="head-with-length"),
        pytest.param("HEAD", "200 OK", b"transfer-encoding: chunked", id="head-chunked"),
        # RFC 9110 §15.3.5 and §15.4.5: 204 and 304 never have a body.
        pytest.param("GET", "204 No Content", b"x-a: 1", id="204"),
        pytest.param("GET", "304 Not Modified", b"content-length: 5000", id="304-with-length"),
    ],
)
def test_bodyless_responses_keep_the_connection(method: str, status: str, extra: bytes) -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        if request.target == b"/after":
            writer.write(response(b"next"))
        else:
            writer.write(b"HTTP/1.1 " + status.encode() + b"\r\n" + extra + b"\r\n\r\n")
        return True

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            first = await transport.handle_async_request(get(origin.url("/"), method=method))
            assert first.status_code == int(status[:3])
            assert await read_all(first) == b""
            second = await transport.handle_async_request(get(origin.url("/after")))
            assert await read_all(second) == b"next"
            assert origin.connections == 1

    run(main())


def test_interim_100_continue_is_skipped() -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n")
        writer.write(response(b"final", "200 OK", b"x-final: yes"))
        return True

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url()))
            assert result.status_code == 200
            assert result.headers.raw == [(b"content-length", b"5"), (b"x-final", b"yes")]
            assert await read_all(result) == b"final"

    run(main())


def test_body_read_until_close_and_connection_not_reused() -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        # RFC 9112 §6.3: no Content-Length, not chunked: the body ends when the origin closes.
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
        return False

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            for _ in range(2):
                result = await transport.handle_async_request(get(origin.url()))
                assert await read_all(result) == b"until the end"
            assert origin.connections == 2

    run(main())


@pytest.mark.parametrize(
    "coding", [b"gzip", b"x-custom-coding", b"chunked, gzip"], ids=["gzip", "unknown", "gzip-last"]
)
def test_body_with_a_final_coding_other_than_chunked_is_read_until_close(coding: bytes) -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        # RFC 9112 §6.3: Transfer-Encoding without chunked last: the body ends at the close.
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: " + coding + b"\r\n\r\nuntil the end")
        return False

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url()))
            assert await read_all(result) == b"until the end"

    run(main())


def test_http10_origin_without_keep_alive_gets_a_new_connection() -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold")
        return True  # the origin would keep it; HTTP/1.0 without keep-alive means close

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            for _ in range(2):
                result = await transport.handle_async_request(get(origin.url()))
                assert result.extensions["http_version"] == b"HTTP/1.0"
                assert await read_all(result) == b"old"
            assert origin.connections == 2

    run(main())


# -- request bodies ------------------------------------------------------------------------


class Streamed(httpx.AsyncByteStream):
    """A request body of unknown length, produced by an async iterator."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self.source = source

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.source:
            yield chunk


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize(
    ("headers", "stream_kind", "expect_length", "expect_chunked"),
    [
        pytest.param([(b"content-length", b"11")], "async", b"11", False, id="length-given"),
        pytest.param([(b"transfer-encoding", b"chunked")], "async", None, True, id="chunked-given"),
        pytest.param([], "async", None, True, id="unknown-length-goes-chunked"),
        pytest.param([], "bytes", b"11", False, id="known-bytes-get-length"),
        pytest.param(
            [(b"Transfer-Encoding", b"chunked")], "bytes", None, True, id="bytes-chunked-given"
        ),
    ],
)
def test_request_body_framing(
    headers: list[tuple[bytes, bytes]],
    stream_kind: str,
    expect_length: bytes | None,
    expect_chunked: bool,
) -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            stream: httpx.AsyncByteStream
            if stream_kind == "bytes":
                stream = httpx.ByteStream(b"hello world")
            else:
                stream = Streamed(_chunks(b"hello", b"", b" world"))
            request = get(
                origin.url("/upload"),
                method="POST",
                headers=[(b"host", b"h"), *headers],
                stream=stream,
            )
            await read_all(await transport.handle_async_request(request))
            seen = origin.requests[0]
            assert seen.body == b"hello world"
            assert seen.header(b"content-length") == expect_length
            assert (seen.header(b"transfer-encoding") == b"chunked") is expect_chunked
            # The connection stays usable after a streamed body.
            await read_all(await transport.handle_async_request(get(origin.url("/next"))))
            assert origin.connections == 1

    run(main())


def test_empty_stream_without_framing_sends_no_body() -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            request = get(origin.url(), method="POST", stream=Streamed(_chunks()))
            await read_all(await transport.handle_async_request(request))
            seen = origin.requests[0]
            assert seen.body == b""
            assert seen.header(b"transfer-encoding") is None

    run(main())


def test_header_injection_is_refused() -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            request = get(origin.url(), headers=[(b"host", b"h"), (b"x-a", b"1\r\nx-evil: 1")])
            with pytest.raises(httpx.LocalProtocolError):
                await transport.handle_async_request(request)
            assert origin.connections == 0

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_large_upload_is_streamed_not_buffered(loop: str) -> None:
    total = 200 * MB
    block = bytes(range(256)) * 256  # 64 KiB

    async def main() -> None:
        async with (
            Origin(echo_target, slow_read=True) as origin,
            pooled(read_timeout=60.0) as transport,
        ):
            baseline = rss_bytes()
            peak = baseline
            sent = 0

            async def produce() -> AsyncIterator[bytes]:
                nonlocal peak, sent
                while sent < total:
                    sent += len(block)
                    if sent % (4 * MB) == 0:
                        peak = max(peak, rss_bytes())
                    yield block

            request = get(
                origin.url("/upload"),
                method="PUT",
                headers=[(b"host", b"h")],
                stream=Streamed(produce()),
            )
            await read_all(await transport.handle_async_request(request))
            expected = hashlib.sha256()
            for _ in range(total // len(block)):
                expected.update(block)
            seen = origin.requests[0]
            assert seen.body_size == total
            assert seen.body_sha256 == expected.hexdigest()
            assert peak - baseline < 48 * MB, f"RSS grew by {(peak - baseline) // MB} MB"

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_large_download_is_streamed_with_back_pressure(loop: str) -> None:
    total = 200 * MB
    block = b"z" * (256 * 1024)
    written = 0

    async def big(request: Received, writer: asyncio.StreamWriter) -> bool:
        nonlocal written
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        while written < total:
            writer.write(block)
            written += len(block)
            await writer.drain()
        return True

    async def main() -> None:
        nonlocal written
        async with Origin(big) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url()))
            baseline = rss_bytes()
            peak = baseline
            received = 0
            lead = 0
            count = 0
            async for chunk in result.aiter_raw():
                received += len(chunk)
                count += 1
                lead = max(lead, written - received)
                if count % 64 == 0:
                    peak = max(peak, rss_bytes())
                for _ in range(4):
                    await asyncio.sleep(0)  # a slow consumer, not a synchronisation
            await result.aclose()
            assert received == total
            # The origin can only run ahead by what the socket buffers and the pause level hold.
            assert lead < 32 * MB, f"origin ran {lead // MB} MB ahead of the consumer"
            assert peak - baseline < 48 * MB, f"RSS grew by {(peak - baseline) // MB} MB"
            # Fully read with keep-alive: the same connection serves the next request.
            written = total  # the handler answers the next request with headers only
            follow = await transport.handle_async_request(get(origin.url(), method="HEAD"))
            await read_all(follow)
            assert origin.connections == 1

    run(main(), loop)


# -- early close, errors, retries ----------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_early_close_does_not_reuse_the_connection(loop: str) -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        if request.target == b"/big":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (64 * MB))
            for _ in range(64):
                writer.write(b"b" * MB)
                await writer.drain()
        else:
            writer.write(response(b"small"))
        return True

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url("/big")))
            async for chunk in result.aiter_raw():
                assert chunk
                break
            await result.aclose()
            follow = await transport.handle_async_request(get(origin.url("/small")))
            assert await read_all(follow) == b"small"
            assert origin.connections == 2

    run(main(), loop)


def test_closing_a_fully_received_unread_body_keeps_the_connection() -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url("/one")))
            await result.aclose()  # never read, but it all arrived with the headers
            follow = await transport.handle_async_request(get(origin.url("/two")))
            assert await read_all(follow) == b"/two"
            assert origin.connections == 1

    run(main())


def test_connection_refused_is_connect_error() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with pooled() as transport:
            with pytest.raises(httpx.ConnectError):
                await transport.handle_async_request(get(httpx.URL(f"http://127.0.0.1:{port}/")))

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_slow_origin_is_read_timeout(loop: str) -> None:
    async def stall(request: Received, writer: asyncio.StreamWriter) -> bool:
        await asyncio.Event().wait()  # never answers; cancelled when the origin stops
        return False

    async def main() -> None:
        async with Origin(stall) as origin, pooled(read_timeout=0.2) as transport:
            with pytest.raises(httpx.ReadTimeout):
                await transport.handle_async_request(get(origin.url()))

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_origin_silent_on_a_reused_connection_is_read_timeout(loop: str) -> None:
    # One timer serves a kept-alive connection's exchanges: the second request's head must
    # still time out, whether the first exchange's timer is still pending or long gone, and
    # whatever the timeout of the exchange before it.
    async def first_then_stall(request: Received, writer: asyncio.StreamWriter) -> bool:
        if request.target == b"/slow-answer":
            await asyncio.sleep(0.15)  # answered after part of the read timeout has gone
        elif request.target != b"/answered":
            await asyncio.Event().wait()
        writer.write(response(b"ok"))
        return True

    async def main() -> None:
        async with Origin(first_then_stall) as origin, pooled(read_timeout=0.3) as transport:
            for first in ("/slow-answer", "/answered"):
                assert (
                    await read_all(await transport.handle_async_request(get(origin.url(first))))
                    == b"ok"
                )
                with pytest.raises(httpx.ReadTimeout):
                    await transport.handle_async_request(get(origin.url("/never")))
            # A timer far away is pending when a request with a short timeout comes: the
            # short one ends it (else the test would hang until pytest's own timeout).
            longer = {"connect": 5.0, "read": 600.0, "write": 5.0, "pool": 5.0}
            shorter = {"connect": 5.0, "read": 0.1, "write": 5.0, "pool": 5.0}
            answered = get(origin.url("/answered"), extensions={"timeout": longer})
            await read_all(await transport.handle_async_request(answered))
            with pytest.raises(httpx.ReadTimeout):
                await transport.handle_async_request(
                    get(origin.url("/never"), extensions={"timeout": shorter})
                )
            assert origin.connections == 3  # a connection that timed out is never reused

    run(main(), loop)


def test_per_request_timeout_overrides_the_default() -> None:
    async def stall(request: Received, writer: asyncio.StreamWriter) -> bool:
        await asyncio.Event().wait()
        return False

    async def main() -> None:
        async with Origin(stall) as origin, pooled(read_timeout=600.0) as transport:
            timeouts = {"connect": 5.0, "read": 0.1, "write": 5.0, "pool": 5.0}
            with pytest.raises(httpx.ReadTimeout):
                await transport.handle_async_request(
                    get(origin.url(), extensions={"timeout": timeouts})
                )

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_body_gap_is_read_timeout(loop: str) -> None:
    async def half(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        await asyncio.Event().wait()
        return False

    async def main() -> None:
        async with Origin(half) as origin, pooled(read_timeout=0.2) as transport:
            result = await transport.handle_async_request(get(origin.url()))
            with pytest.raises(httpx.ReadTimeout):
                await read_all(result)

    run(main(), loop)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", httpx.RemoteProtocolError, id="not-http"),
        pytest.param(b"HTTP/1.1 abc\r\n\r\n", httpx.RemoteProtocolError, id="bad-status"),
        pytest.param(b"", httpx.RemoteProtocolError, id="closed-without-answer"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            httpx.RemoteProtocolError,
            id="conflicting-lengths",
        ),
    ],
)
def test_garbage_response_is_an_error(raw: bytes, error: type[Exception]) -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        return False

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            with pytest.raises(error):
                await read_all(await transport.handle_async_request(get(origin.url())))

    run(main())


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", id="length"),
        pytest.param(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab", id="chunked"),
    ],
)
def test_origin_closing_mid_body_is_an_error(raw: bytes) -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        return False

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url()))
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await read_all(result)

    run(main())


def _closes_on_second_request() -> Handler:
    """An origin that, like one whose idle timer just fired, drops a reused connection."""

    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        if sum(1 for _ in range(request.connection)) and getattr(writer, "_served", False):
            return False  # close without answering
        writer._served = True  # type: ignore[attr-defined]
        writer.write(response(request.target))
        return True

    return answer


@pytest.mark.parametrize("loop", LOOPS)
def test_stale_kept_alive_connection_is_retried_transparently(loop: str) -> None:
    async def main() -> None:
        async with Origin(_closes_on_second_request()) as origin, pooled() as transport:
            first = await transport.handle_async_request(get(origin.url("/a")))
            assert await read_all(first) == b"/a"
            second = await transport.handle_async_request(get(origin.url("/b")))
            assert await read_all(second) == b"/b"
            assert origin.connections == 2

    run(main(), loop)


def test_stale_connection_is_not_retried_with_a_body() -> None:
    async def main() -> None:
        async with Origin(_closes_on_second_request()) as origin, pooled() as transport:
            await read_all(await transport.handle_async_request(get(origin.url("/a"))))
            request = get(origin.url("/b"), method="POST", stream=httpx.ByteStream(b"data"))
            with pytest.raises(httpx.RemoteProtocolError):
                await transport.handle_async_request(request)
            assert origin.connections == 1

    run(main())


def test_pool_limit_waits_then_times_out() -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\npart")
        await asyncio.Event().wait()
        return False

    async def main() -> None:
        async with Origin(answer) as origin, pooled(max_connections=1) as transport:
            held = await transport.handle_async_request(get(origin.url()))
            timeouts = {"connect": 1.0, "read": 1.0, "write": 1.0, "pool": 0.1}
            with pytest.raises(httpx.PoolTimeout):
                await transport.handle_async_request(
                    get(origin.url(), extensions={"timeout": timeouts})
                )
            await held.aclose()
            assert origin.connections == 1

    run(main())


def test_keepalive_expiry_zero_never_reuses() -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled(keepalive_expiry=0.0) as transport:
            for _ in range(3):
                await read_all(await transport.handle_async_request(get(origin.url())))
            assert origin.connections == 3

    run(main())


def test_aclose_closes_idle_connections() -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin:
            transport = PooledTransport()
            await read_all(await transport.handle_async_request(get(origin.url())))
            await transport.aclose()
            while origin.closed_by_client == 0:
                await asyncio.sleep(0)  # the origin notices the close on its next read
            assert origin.closed_by_client == 1
            with pytest.raises(RuntimeError):
                await transport.handle_async_request(get(origin.url()))

    run(main())


def test_unsupported_scheme() -> None:
    async def main() -> None:
        async with pooled() as transport:
            with pytest.raises(httpx.UnsupportedProtocol):
                await transport.handle_async_request(get(httpx.URL("ftp://127.0.0.1/")))

    run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_200_concurrent_requests_all_answered(loop: str) -> None:
    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0)
        body = request.target * 50
        writer.write(response(body))
        return True

    async def main() -> None:
        async with Origin(answer) as origin, pooled(max_connections=50) as transport:

            async def one(i: int) -> None:
                result = await transport.handle_async_request(get(origin.url(f"/r/{i}")))
                assert await read_all(result) == f"/r/{i}".encode() * 50

            async with asyncio.TaskGroup() as group:
                for i in range(200):
                    group.create_task(one(i))
            assert origin.connections <= 50
            assert len(origin.requests) == 200

    run(main(), loop)


# -- https ---------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_origin(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip

    async def main() -> None:
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        origin = Origin(echo_target)
        origin.server = await asyncio.start_server(
            origin._serve, "127.0.0.1", 0, ssl=server_context
        )
        port = origin.server.sockets[0].getsockname()[1]
        client_context = ssl.create_default_context(cafile=str(cert))
        try:
            async with pooled(ssl_context=client_context) as transport:
                url = httpx.URL(f"https://127.0.0.1:{port}/secure")
                for _ in range(2):
                    result = await transport.handle_async_request(get(url))
                    assert await read_all(result) == b"/secure"
                assert origin.connections == 1
        finally:
            await origin.__aexit__()

    run(main())


# -- hostile origins: heads and trailers are bounded while they arrive ---------------------

HEAD_LIMIT = 4096
FIELD_LIMIT = 20
# How much a hostile script writes at most: far beyond the limits above.
ENDLESS = 16 * MB


class RawOrigin:
    """Answers the first request on each connection with what `script` writes, then waits for
    the client to hang up (`hung_up` is set once it has, by a close or a reset)."""

    def __init__(self, script: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.script = script
        self.connections = 0
        self.hung_up = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawOrigin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    def url(self, path: str = "/") -> httpx.URL:
        return httpx.URL(f"http://127.0.0.1:{self.port}{path}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            await self.script(writer)
            while await reader.read(65536):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            return  # torn down with the test (asyncio logs a cancelled connection task)
        finally:
            self.hung_up.set()
            writer.close()
            self._tasks.discard(task)


def endless(first: bytes, block: bytes) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    async def script(writer: asyncio.StreamWriter) -> None:
        writer.write(first)
        for _ in range(ENDLESS // len(block)):
            writer.write(block)
            await writer.drain()

    return script


def once(raw: bytes) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    async def script(writer: asyncio.StreamWriter) -> None:
        writer.write(raw)  # one write: the head and what follows arrive together

    return script


FIELD = b"x-pad: " + b"p" * 57 + b"\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(endless(b"HTTP/1.1 200 OK\r\n", FIELD * 1000), id="endless-fields"),
        pytest.param(endless(b"HTTP/1.1 200 OK\r\nx-big: ", b"a" * 65536), id="endless-field"),
        pytest.param(endless(b"HTTP/1.1 200 OK\r\nx-", b"n" * 65536), id="endless-name"),
        pytest.param(endless(b"HTTP/1.1 200 ", b"r" * 65536), id="endless-reason"),
        pytest.param(endless(b"", EARLY_HINTS * 100), id="endless-interim-responses"),
        pytest.param(
            once(b"HTTP/1.1 200 OK\r\n" + FIELD * (FIELD_LIMIT + 1) + b"content-length: 0\r\n\r\n"),
            id="too-many-fields",
        ),
        pytest.param(
            once(b"HTTP/1.1 200 OK\r\nx-big: " + b"b" * HEAD_LIMIT + b"\r\n\r\n"),
            id="one-field-over-the-limit",
        ),
        pytest.param(
            once(
                EARLY_HINTS * (HEAD_LIMIT // len(EARLY_HINTS))
                + b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
            ),
            id="interim-heads-count",
        ),
    ],
)
def test_an_oversized_response_head_is_refused_and_the_connection_dropped(
    script: Callable[[asyncio.StreamWriter], Awaitable[None]], loop: str
) -> None:
    async def main() -> None:
        async with (
            RawOrigin(script) as origin,
            pooled(
                max_response_header_bytes=HEAD_LIMIT, max_response_header_fields=FIELD_LIMIT
            ) as transport,
        ):
            with pytest.raises(ResponseHeadTooLarge, match="over"):
                await transport.handle_async_request(get(origin.url()))
            await origin.hung_up.wait()
            assert transport._open == 0

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_head_under_the_limits_is_accepted_whatever_arrives_with_it(loop: str) -> None:
    body = b"y" * (256 * 1024)
    value = b"v" * ((HEAD_LIMIT - 64) // (FIELD_LIMIT - 1) - 10)
    fields = b"".join(b"x-f%02d: %b\r\n" % (i, value) for i in range(FIELD_LIMIT - 1))
    head = b"HTTP/1.1 200 OK\r\n" + fields + b"content-length: %d\r\n\r\n" % len(body)
    assert HEAD_LIMIT - 256 < len(head) <= HEAD_LIMIT

    async def main() -> None:
        async with (
            RawOrigin(once(EARLY_HINTS + head + body)) as origin,
            pooled(max_response_header_bytes=HEAD_LIMIT + len(EARLY_HINTS)) as transport,
        ):
            result = await transport.handle_async_request(get(origin.url()))
            assert result.status_code == 200
            assert len(result.headers.raw) == FIELD_LIMIT
            assert await read_all(result) == body

    run(main(), loop)


def test_defaults_allow_a_large_but_sane_head() -> None:
    cookies = [b"set-cookie: c%d=%b" % (i, b"v" * 400) for i in range(90)]  # ~37 KB

    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(b"ok", "200 OK", *cookies))
        return True

    async def main() -> None:
        async with Origin(answer) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url()))
            assert len(result.headers.get_list("set-cookie")) == 90
            assert await read_all(result) == b"ok"

    run(main())


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(endless(CHUNKED_HEAD + b"2\r\nok\r\n0\r\nx-t: ", b"t" * 65536), id="field"),
        pytest.param(endless(CHUNKED_HEAD + b"2\r\nok\r\n0\r\n", FIELD * 1000), id="fields"),
    ],
)
def test_an_endless_trailer_section_is_cut(
    script: Callable[[asyncio.StreamWriter], Awaitable[None]], loop: str
) -> None:
    async def main() -> None:
        async with (
            RawOrigin(script) as origin,
            pooled(max_response_header_bytes=HEAD_LIMIT) as transport,
        ):
            result = await transport.handle_async_request(get(origin.url()))
            assert result.status_code == 200
            with pytest.raises(ResponseHeadTooLarge, match="trailer"):
                await read_all(result)
            await origin.hung_up.wait()
            assert transport._open == 0

    run(main(), loop)


def test_trailer_fields_are_dropped_and_the_connection_kept() -> None:
    trailers = b"".join(b"x-t%d: v\r\n" % i for i in range(3 * FIELD_LIMIT))

    async def answer(request: Received, writer: asyncio.StreamWriter) -> bool:
        if request.target == b"/trailers":
            writer.write(CHUNKED_HEAD + b"2\r\nok\r\n0\r\n" + trailers + b"\r\n")
        else:
            writer.write(response(b"next"))
        return True

    async def main() -> None:
        async with (
            Origin(answer) as origin,
            pooled(max_response_header_fields=FIELD_LIMIT) as transport,
        ):
            result = await transport.handle_async_request(get(origin.url("/trailers")))
            assert await read_all(result) == b"ok"
            assert result.headers.raw == [(b"transfer-encoding", b"chunked")]
            follow = await transport.handle_async_request(get(origin.url("/next")))
            assert await read_all(follow) == b"next"
            assert origin.connections == 1

    run(main())


# -- a body that breaks: the cause survives, whenever the bytes arrive ----------------------


async def _reset(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # SO_LINGER 0: the close is a reset


async def _close_after(raw: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(raw)
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    ("script", "error", "message"),
    [
        pytest.param(
            once(CHUNKED_HEAD + b"zz\r\n"),
            httpx.RemoteProtocolError,
            "invalid HTTP response",
            id="invalid-chunk-size-with-the-head",
        ),
        pytest.param(
            once(CHUNKED_HEAD + b"5\r\nhello\r\n-1\r\n"),
            httpx.RemoteProtocolError,
            "invalid HTTP response",
            id="invalid-chunk-size-after-data",
        ),
        pytest.param(
            functools.partial(_close_after, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"),
            ResponseBodyIncomplete,
            "closed the connection mid-body",
            id="closed-before-the-body",
        ),
        pytest.param(
            functools.partial(_close_after, CHUNKED_HEAD),
            ResponseBodyIncomplete,
            "closed the connection mid-body",
            id="closed-before-the-first-chunk",
        ),
        pytest.param(_reset, httpx.ReadError, "broke mid-body", id="reset-before-the-body"),
    ],
)
def test_a_broken_body_raises_its_cause_from_the_body(
    script: Callable[[asyncio.StreamWriter], Awaitable[None]],
    error: type[Exception],
    message: str,
    loop: str,
) -> None:
    async def main() -> None:
        async with RawOrigin(script) as origin, pooled() as transport:
            result = await transport.handle_async_request(get(origin.url()))
            assert result.status_code == 200
            # The connection is gone before the body is read: its end must not hide the cause.
            await origin.hung_up.wait()
            with pytest.raises(error, match=message):
                await read_all(result)
            assert transport._open == 0

    run(main(), loop)


# -- uploads: no connection before the first chunk, and never all of them ------------------


class ViewerGoneError(Exception):
    """What the viewer's side raises from a request body (a disconnect, an idle timeout)."""


@pytest.mark.parametrize("loop", LOOPS)
def test_an_upload_takes_no_connection_before_its_first_chunk(loop: str) -> None:
    async def main() -> None:
        asked = asyncio.Event()
        gate = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            asked.set()
            await gate.wait()
            yield b"late"

        async with Origin(echo_target) as origin, pooled(max_connections=1) as transport:
            timeouts = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
            upload = get(
                origin.url("/up"),
                method="POST",
                stream=Streamed(body()),
                extensions={"timeout": timeouts},
            )
            async with asyncio.TaskGroup() as tasks:
                pending = tasks.create_task(transport.handle_async_request(upload))
                await asyncio.wait_for(asked.wait(), 5)
                plain = get(origin.url("/get"), extensions={"timeout": timeouts})
                assert await read_all(await transport.handle_async_request(plain)) == b"/get"
                assert [r.target for r in origin.requests] == [b"/get"]
                gate.set()
                assert await read_all(await pending) == b"/up"

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_stalled_uploads_leave_connections_for_other_requests(loop: str) -> None:
    async def main() -> None:
        stall = asyncio.Event()
        holding = 0
        changed = asyncio.Condition()

        async def body() -> AsyncIterator[bytes]:
            nonlocal holding
            yield b"ab"
            async with changed:  # asked for more: the first chunk went out on a connection
                holding += 1
                changed.notify_all()
            await stall.wait()
            yield b"cd"

        async with Origin(echo_target) as origin, pooled(max_connections=4) as transport:
            timeouts = {"connect": 5.0, "read": 10.0, "write": 5.0, "pool": 10.0}

            def upload(i: int) -> httpx.Request:
                return get(
                    origin.url(f"/up{i}"),
                    method="POST",
                    headers=[(b"host", b"h"), (b"content-length", b"4")],
                    stream=Streamed(body()),
                    extensions={"timeout": timeouts},
                )

            async with asyncio.TaskGroup() as tasks:
                uploads = [
                    tasks.create_task(transport.handle_async_request(upload(i))) for i in range(8)
                ]
                async with changed:
                    await asyncio.wait_for(changed.wait_for(lambda: holding >= 3), 5)
                for path in ("/a", "/b"):
                    plain = get(origin.url(path), extensions={"timeout": timeouts})
                    assert await read_all(await transport.handle_async_request(plain)) == (
                        path.encode()
                    )
                assert holding == 3  # a quarter of 4 connections is kept from uploads
                stall.set()
                for i, task in enumerate(uploads):
                    assert await read_all(await task) == f"/up{i}".encode()

    run(main(), loop)


def test_upload_slot_wait_is_bounded_by_the_pool_timeout() -> None:
    async def main() -> None:
        stall = asyncio.Event()
        holding = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield b"ab"
            holding.set()
            await stall.wait()
            yield b"cd"

        async with (
            Origin(echo_target) as origin,
            pooled(max_connections=8, max_upload_connections=1) as transport,
        ):
            timeouts = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 0.2}

            def upload() -> httpx.Request:
                return get(
                    origin.url("/up"),
                    method="POST",
                    stream=Streamed(body()),
                    extensions={"timeout": timeouts},
                )

            async with asyncio.TaskGroup() as tasks:
                first = tasks.create_task(transport.handle_async_request(upload()))
                await asyncio.wait_for(holding.wait(), 5)
                with pytest.raises(httpx.PoolTimeout, match="upload"):
                    await transport.handle_async_request(upload())
                stall.set()
                await read_all(await first)

    run(main())


def _short_upload(origin: Origin) -> httpx.Request:
    """A streamed upload that must find an upload slot within a short pool timeout."""
    timeouts = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 0.5}
    return get(
        origin.url("/next"),
        method="POST",
        stream=Streamed(_chunks(b"a", b"b")),
        extensions={"timeout": timeouts},
    )


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("when", ["before-the-first-chunk", "mid-upload"])
def test_an_error_from_the_request_body_propagates_and_drops_the_connection(
    loop: str, when: str
) -> None:
    gone = ViewerGoneError("the viewer went away")

    async def body() -> AsyncIterator[bytes]:
        if when == "mid-upload":
            yield b"ab"
        raise gone

    async def main() -> None:
        async with (
            Origin(echo_target) as origin,
            pooled(max_upload_connections=1) as transport,
        ):
            upload = get(
                origin.url("/up"),
                method="POST",
                headers=[(b"host", b"h"), (b"content-length", b"10")],
                stream=Streamed(body()),
            )
            with pytest.raises(ViewerGoneError) as raised:
                await transport.handle_async_request(upload)
            assert raised.value is gone
            assert transport._open == 0
            # The upload slot is free again, and the next request gets a new connection.
            assert await read_all(await transport.handle_async_request(_short_upload(origin))) == (
                b"/next"
            )
            assert origin.connections == (2 if when == "mid-upload" else 1)

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_an_origin_that_stops_reading_an_upload_is_a_write_timeout(loop: str) -> None:
    async def never_read(writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    async def body() -> AsyncIterator[bytes]:
        block = b"u" * 65536
        for _ in range(ENDLESS // len(block)):
            yield block

    async def main() -> None:
        async with (
            RawOrigin(never_read) as origin,
            Origin(echo_target) as other,
            pooled(max_upload_connections=1) as transport,
        ):
            timeouts = {"connect": 5.0, "read": 5.0, "write": 0.3, "pool": 5.0}
            upload = get(
                origin.url("/up"),
                method="POST",
                stream=Streamed(body()),
                extensions={"timeout": timeouts},
            )
            with pytest.raises(httpx.WriteTimeout):
                await transport.handle_async_request(upload)
            assert transport._open == 0
            assert await read_all(await transport.handle_async_request(_short_upload(other))) == (
                b"/next"
            )

    run(main(), loop)


@pytest.mark.parametrize(
    ("headers", "sent"),
    [
        pytest.param([(b"transfer-encoding", b"chunked")], b"0\r\n\r\n", id="chunked"),
        pytest.param([(b"content-length", b"0")], b"", id="length-0"),
    ],
)
def test_an_empty_streamed_body_keeps_its_framing(
    headers: list[tuple[bytes, bytes]], sent: bytes
) -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            request = get(
                origin.url(),
                method="POST",
                headers=[(b"host", b"h"), *headers],
                stream=Streamed(_chunks(b"", b"")),
            )
            await read_all(await transport.handle_async_request(request))
            assert origin.requests[0].body == b""
            assert origin.requests[0].headers[-1] == headers[0]

    run(main())


def test_an_empty_streamed_body_shorter_than_its_length_is_refused() -> None:
    async def main() -> None:
        async with Origin(echo_target) as origin, pooled() as transport:
            request = get(
                origin.url(),
                method="POST",
                headers=[(b"host", b"h"), (b"content-length", b"5")],
                stream=Streamed(_chunks()),
            )
            with pytest.raises(httpx.LocalProtocolError, match="shorter"):
                await transport.handle_async_request(request)
            assert origin.connections == 0

    run(main())


# -- the parser fed at every split offset ---------------------------------------------------


class _NullSocket(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _parse_split(raw: bytes, **limits: int) -> list[tuple[Any, ...]]:
    """What a connection makes of `raw` read in two parts, for every place it can be split."""

    async def main() -> list[tuple[Any, ...]]:
        pool = PooledTransport(**limits)
        loop = asyncio.get_running_loop()
        outcomes = []
        for cut in range(1, len(raw)):
            conn = Connection(pool, (b"http", b"h", 80), loop)
            conn.connection_made(_NullSocket())
            conn.in_exchange = True
            waiter = conn.head_waiter = loop.create_future()
            conn.data_received(raw[:cut])
            if not conn.lost:
                conn.data_received(raw[cut:])
            failure = waiter.exception() if waiter.done() else None
            outcomes.append(
                (
                    type(failure or conn.error),
                    conn.status,
                    conn.reason,
                    tuple(conn.headers),
                    b"".join(conn.chunks),
                    conn.complete,
                )
            )
        return outcomes

    return asyncio.run(main())


def test_a_response_read_in_two_parts_parses_the_same_wherever_it_is_split() -> None:
    raw = (
        EARLY_HINTS
        + b"HTTP/1.1 200 Perfectly Fine\r\nx-a: 1\r\nx-b: two words\r\n"
        + b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-trailer: t\r\n\r\n"
    )
    expected = (
        type(None),
        200,
        b"Perfectly Fine",
        ((b"x-a", b"1"), (b"x-b", b"two words"), (b"transfer-encoding", b"chunked")),
        b"hello",
        True,
    )
    assert set(_parse_split(raw, max_response_header_bytes=256)) == {expected}


def test_a_head_over_the_limit_is_refused_wherever_it_is_split() -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-f%d: v\r\n" % i for i in range(30)) + b"\r\n"
    outcomes = _parse_split(head + b"body", max_response_header_bytes=len(head) - 1)
    assert {outcome[0] for outcome in outcomes} == {ResponseHeadTooLarge}
    outcomes = _parse_split(head, max_response_header_fields=29)
    assert {outcome[0] for outcome in outcomes} == {ResponseHeadTooLarge}
