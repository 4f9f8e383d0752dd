"""HTTP(S) origins: one pooled httpx client per origin, streaming both ways.

This is the one module that chooses how bytes reach an origin. Each origin owns an
`httpx.AsyncClient` whose transport is the pooled HTTP/1.1 transport of
`origin_proxy.transport` when it is available (see the measurements there), and requests go
through that transport's `handle_async_request` directly: the client's cookie jar, redirect
and auth layers cost ~130 µs a request here, and a proxy must not apply them anyway (a
shared cookie jar would leak one viewer's cookies to the next).

Every lower-level failure becomes an `OriginError` here and nowhere else.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from origin_proxy.errors import (
    OriginDisconnected,
    OriginDnsError,
    OriginError,
    OriginHeadersTooLarge,
    OriginInvalidResponse,
    OriginTimeout,
    OriginUnreachable,
)
from origin_proxy.headers import encode_custom_headers
from origin_proxy.limits import (
    DEFAULT_MAX_RESPONSE_HEADER_BYTES,
    DEFAULT_MAX_RESPONSE_HEADER_FIELDS,
)
from origin_proxy.message import Headers, OriginRequest, OriginResponse
from origin_proxy.transport import (
    BufferedBody,
    PooledTransport,
    ResponseBodyIncomplete,
    ResponseHeadTooLarge,
)


class _BodyStream(httpx.AsyncByteStream):
    """The viewer's body as an httpx stream; remembers a failure of the viewer side, so that
    it is not mistaken for a failure of the origin."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._body = body
        self.error: BaseException | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._body:
                yield chunk
        except Exception as exc:
            self.error = exc
            raise


_EMPTY = httpx.ByteStream(b"")


class HttpOrigin:
    """An HTTP origin at `url` (scheme, host, port and an optional path prefix)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        keep_host: bool = False,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_connections: int = 512,
        max_upload_connections: int | None = None,
        max_response_header_bytes: int = DEFAULT_MAX_RESPONSE_HEADER_BYTES,
        max_response_header_fields: int = DEFAULT_MAX_RESPONSE_HEADER_FIELDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"origin {name!r}: URL has no host: {url!r}")
        self.name = name
        self.url = url
        self.scheme = parts.scheme
        self.hostname = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path_prefix = parts.path.rstrip("/").encode("latin-1")
        self.keep_host = keep_host
        default_port = self.port == (443 if self.scheme == "https" else 80)
        netloc = self.hostname if default_port else f"{self.hostname}:{self.port}"
        if ":" in self.hostname:
            netloc = f"[{self.hostname}]" if default_port else f"[{self.hostname}]:{self.port}"
        self.host_header = netloc.encode("idna" if self.hostname.isascii() is False else "ascii")
        self.custom_headers = encode_custom_headers(headers or {})
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._base_url = httpx.URL(f"{self.scheme}://{netloc}/")
        self._timeout = {
            "connect": connect_timeout,
            "read": read_timeout,
            "write": read_timeout,
            "pool": connect_timeout,
        }
        self._transport = transport or PooledTransport(
            max_connections=max_connections,
            max_keepalive=min(max_connections, 256),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_upload_connections=max_upload_connections,
            max_response_header_bytes=max_response_header_bytes,
            max_response_header_fields=max_response_header_fields,
        )
        # Our own transport is called without httpx's request and response objects.
        self._pooled = self._transport if isinstance(self._transport, PooledTransport) else None
        base = self._base_url
        self._key = (base.raw_scheme, base.raw_host, self.port)
        self._netloc = base.netloc
        self.client = httpx.AsyncClient(
            transport=self._transport,
            base_url=self._base_url,
            follow_redirects=False,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )

    def target_for(self, path: bytes, query: bytes) -> bytes:
        """The request target on this origin for a viewer's raw path and query."""
        target = self.path_prefix + path if self.path_prefix else path
        return target + b"?" + query if query else target

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        """Send `request`; the answer's body streams from the origin as it is read."""
        pooled = self._pooled
        if pooled is None:
            return await self._fetch_through_httpx(request)
        body = request.body
        headers = request.headers
        stream: _BodyStream | None = None
        if body is not None:
            stream = _BodyStream(body)
            headers = _framed(headers, request.content_length)
        elif _has_content_length(headers):
            headers = [(k, v) for k, v in headers if k != b"content-length"]
        try:
            raw = await pooled.send(
                self._key,
                request.method,
                request.target,
                headers,
                body_stream=stream,
                timeouts=self._timeout,
                netloc=self._netloc,
            )
        except Exception as exc:
            if stream is not None and stream.error is not None:
                raise stream.error from None
            raise self._map_error(exc) from exc
        raw_stream = raw.stream
        return OriginResponse(
            raw.status,
            [(name.lower(), value) for name, value in raw.headers],
            # A body that came whole with the head cannot fail any more: no mapping needed.
            raw_stream.__aiter__()
            if isinstance(raw_stream, BufferedBody)
            else self._mapped(raw_stream),
            raw.reason,
            raw_stream.aclose,
        )

    async def _mapped(self, stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
        """`stream`, its failures as `OriginError`s."""
        try:
            async for chunk in stream:
                yield chunk
        except OriginError:
            raise
        except Exception as exc:
            raise self._map_error(exc) from exc

    async def _fetch_through_httpx(self, request: OriginRequest) -> OriginResponse:
        """`fetch` through any httpx transport (one given to the constructor)."""
        stream: httpx.AsyncByteStream = (
            _EMPTY if request.body is None else _BodyStream(request.body)
        )
        # Framing is recomputed here, from what the body is now (it may have been replaced).
        headers = request.headers
        if request.body is not None:
            headers = _framed(headers, request.content_length)
        else:
            headers = [(k, v) for k, v in headers if k != b"content-length"]
        outgoing = httpx.Request(
            request.method,
            self._base_url,
            headers=headers,
            stream=stream,
            extensions={"target": request.target, "timeout": self._timeout},
        )
        try:
            response = await self._transport.handle_async_request(outgoing)
        except Exception as exc:
            if isinstance(stream, _BodyStream) and stream.error is not None:
                raise stream.error from None
            raise self._map_error(exc) from exc
        raw_stream = response.stream
        assert isinstance(raw_stream, httpx.AsyncByteStream)
        reason = response.extensions.get("reason_phrase", b"")
        return OriginResponse(
            status=response.status_code,
            headers=[(name.lower(), value) for name, value in response.headers.raw],
            body=self._mapped(raw_stream),
            reason=reason if isinstance(reason, bytes) else b"",
            close=raw_stream.aclose,
        )

    def _map_error(self, exc: BaseException) -> OriginError:
        cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            if isinstance(exc, httpx.ConnectTimeout):
                what = f"no connect within {self.connect_timeout:g} s"
            elif isinstance(exc, httpx.PoolTimeout):
                what = f"no free connection within {self.connect_timeout:g} s ({exc})"
            elif isinstance(exc, httpx.WriteTimeout):
                what = f"the origin stopped reading the request body for {self.read_timeout:g} s"
            else:
                what = f"no read within {self.read_timeout:g} s"
            return OriginTimeout(self.name, f"{what} ({self.url})")
        if isinstance(exc, httpx.ConnectError):
            if _is_dns_failure(exc):
                return OriginDnsError(self.name, f"cannot resolve {self.hostname}: {cause}")
            return OriginUnreachable(self.name, f"cannot connect to {self.url}: {cause}")
        if isinstance(exc, ResponseHeadTooLarge):
            return OriginHeadersTooLarge(self.name, f"{self.url}: {exc}")
        if isinstance(exc, ResponseBodyIncomplete | httpx.ReadError):
            return OriginDisconnected(self.name, f"{self.url}: {cause}")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.WriteError):
            return OriginInvalidResponse(self.name, f"{self.url}: {cause}")
        if isinstance(exc, OSError):
            return OriginUnreachable(self.name, f"{self.url}: {cause}")
        return OriginError(self.name, f"{self.url}: {cause}")

    async def aclose(self) -> None:
        await self.client.aclose()


def _framed(headers: Headers, content_length: int | None) -> Headers:
    """`headers` with the framing of a body of `content_length` bytes (None: chunked), which is
    recomputed from what the body is now (it may have been replaced)."""
    framed = [(k, v) for k, v in headers if k != b"content-length"]
    if content_length is not None:
        framed.append((b"content-length", str(content_length).encode()))
    else:
        framed.append((b"transfer-encoding", b"chunked"))
    return framed


def _has_content_length(headers: Headers) -> bool:
    for name, _ in headers:  # noqa: SIM110 - a plain loop: no generator on every request
        if name == b"content-length":
            return True
    return False


def _is_dns_failure(exc: BaseException) -> bool:
    seen: Any = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
