"""One viewer request's journey, in CloudFront's order, reading top to bottom.

1. Refuse what no behavior may see (URL or body over the limits).
2. Match the behavior by path pattern; refuse methods outside its allowed set (403).
3. (viewer-request function, cache lookup, origin-request function: later issues.)
4. Forward to the behavior's origin, streaming the body both ways.
5. (origin-response function, cache store, viewer-response function: later issues.)
6. Send to the viewer with `Via`, `X-Cache` and the request id; log one line; count it.

Failures become responses in one place (`edge.failures`); an error after the first byte of a
response has gone out aborts the connection instead of becoming a fake error page.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from edge.accesslog import AccessLog
from edge.behaviors import METHOD_SETS, PathMatcher
from edge.config import BehaviorConfig, EdgeConfig
from edge.failures import Failure, error_page, failure_for, request_refused
from edge.metrics import ProxyMetrics
from edge.origins import Upstream
from origin_proxy.errors import OriginError
from origin_proxy.headers import (
    forward_request_headers,
    forward_response_headers,
    strip_hop_by_hop,
    via_value,
)
from origin_proxy.message import Headers, OriginRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("edge.pipeline")


class BodyTooLarge(Exception):
    """The viewer's request body passed the configured limit while streaming."""


class ViewerDisconnected(Exception):
    """The viewer went away before its request body was complete."""


@dataclass(frozen=True, slots=True)
class Behavior:
    """A behavior ready to serve: its pattern, methods and upstream."""

    path: str
    methods: frozenset[str]
    upstream: Upstream


def new_request_id() -> str:
    """An opaque id like CloudFront's X-Amz-Cf-Id (URL-safe base64 of 42 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(42)).decode()


def _content_length(headers: Headers) -> tuple[int | None, bool]:
    """(Content-Length or None, whether the body is chunked)."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


async def _viewer_body(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ViewerDisconnected
        chunk = message.get("body", b"")
        if chunk:
            seen += len(chunk)
            if seen > limit:
                raise BodyTooLarge
            yield chunk
        if not message.get("more_body", False):
            return


class Pipeline:
    """The ASGI endpoint that serves every viewer request."""

    def __init__(
        self,
        config: EdgeConfig,
        upstreams: dict[str, Upstream],
        *,
        metrics: ProxyMetrics,
        access_log: AccessLog,
    ) -> None:
        self.config = config
        self.upstreams = upstreams
        self.metrics = metrics
        self.access_log = access_log
        server = config.server
        self.edge_name = server.name
        self.via = via_value(server.name)
        self.max_url_bytes = server.max_url_bytes
        self.max_body_bytes = server.max_body_bytes
        self.max_header_bytes = server.max_header_bytes
        self.behaviors = PathMatcher([(b.path, self._behavior(b)) for b in config.behaviors])
        self.x_cache_miss = f"Miss from {server.name}".encode()
        self.x_cache_error = f"Error from {server.name}".encode()

    def _behavior(self, behavior: BehaviorConfig) -> Behavior:
        return Behavior(
            behavior.path, METHOD_SETS[behavior.methods], self.upstreams[behavior.origin]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = new_request_id()
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope["query_string"]
        path = raw_path.decode("latin-1")
        client = scope.get("client")
        client_ip = client[0] if client else "0.0.0.0"
        headers: Headers = scope["headers"]
        behavior = self.behaviors.match(path)
        behavior_name = behavior.path if behavior else "-"
        origin_name = behavior.upstream.name if behavior else "-"
        sent = _Sent()
        try:
            header_bytes = sum(len(k) + len(v) + 4 for k, v in headers)
            if header_bytes + len(raw_path) + len(query) > self.max_header_bytes:
                failure = request_refused(
                    431,
                    "HeadersTooLarge",
                    f"The request line and headers are larger than {self.max_header_bytes} bytes.",
                )
                await self._send_failure(send, failure, request_id, method, sent)
                return
            if len(raw_path) + len(query) + 1 > self.max_url_bytes:
                failure = request_refused(
                    414, "UrlTooLong", f"The URL is longer than {self.max_url_bytes} bytes."
                )
                await self._send_failure(send, failure, request_id, method, sent)
                return
            if behavior is None:  # pragma: no cover - the default behavior matches everything
                return
            if method not in behavior.methods:
                failure = request_refused(
                    403,
                    "MethodNotAllowed",
                    f"The method {method} is not allowed for this path.",
                )
                await self._send_failure(send, failure, request_id, method, sent)
                return
            length, chunked = _content_length(headers)
            if length is not None and length > self.max_body_bytes:
                failure = request_refused(
                    413,
                    "RequestTooLarge",
                    f"The request body is larger than {self.max_body_bytes} bytes.",
                )
                await self._send_failure(send, failure, request_id, method, sent)
                return
            has_body = chunked or bool(length)
            await self._forward(
                behavior.upstream,
                method,
                raw_path,
                query,
                headers,
                client_ip,
                scope.get("scheme", "http"),
                _viewer_body(receive, self.max_body_bytes) if has_body else None,
                length if not chunked else None,
                send,
                request_id,
                sent,
            )
        except (BodyTooLarge, ViewerDisconnected) as exc:
            if isinstance(exc, BodyTooLarge) and not sent.started:
                failure = request_refused(
                    413,
                    "RequestTooLarge",
                    f"The request body is larger than {self.max_body_bytes} bytes.",
                )
                await self._send_failure(send, failure, request_id, method, sent)
            elif sent.started:
                raise
        except Exception as exc:
            failure = failure_for(exc)
            if isinstance(exc, OriginError):
                self.metrics.record_origin_error(exc.origin, exc.detail)
            logger.error(
                "request %s %s %s: %s (%s) -> %d",
                request_id,
                method,
                path,
                failure.detail,
                failure.cause,
                failure.status,
            )
            if sent.started:
                raise  # mid-body: abort the connection, never a fake error page
            await self._send_failure(send, failure, request_id, method, sent)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.record_request(behavior_name, sent.status, sent.body_bytes, elapsed)
            self.access_log.write(
                client=client_ip,
                method=method,
                path=path,
                status=sent.status,
                body_bytes=sent.body_bytes,
                seconds=elapsed,
                behavior=behavior_name,
                origin=origin_name,
                result=sent.result,
                request_id=request_id,
            )

    async def _forward(
        self,
        upstream: Upstream,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: Headers,
        client_ip: str,
        scheme: str,
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
        send: Send,
        request_id: str,
        sent: _Sent,
    ) -> None:
        if upstream.forwards_headers:
            out_headers = forward_request_headers(
                headers,
                client_ip=client_ip,
                proto=scheme,
                via=self.via,
                host=upstream.host,
                extra=upstream.custom_headers,
            )
        else:
            out_headers = strip_hop_by_hop(headers)
        request = OriginRequest(
            method=method,
            target=upstream.target_for(raw_path, query),
            headers=out_headers,
            body=body,
            content_length=content_length,
        )
        asked = time.perf_counter()
        response = await upstream.origin.fetch(request)
        try:
            self.metrics.record_origin(upstream.name, time.perf_counter() - asked)
            response_headers = forward_response_headers(response.headers, via=self.via)
            x_cache = self.x_cache_error if response.status >= 400 else self.x_cache_miss
            response_headers.append((b"x-cache", x_cache))
            response_headers.append((b"x-amz-cf-id", request_id.encode()))
            sent.result = "Error" if response.status >= 400 else "Miss"
            sent.status = response.status
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": response_headers,
                }
            )
            sent.started = True
            if method == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
            async for chunk in response.body:
                if chunk:
                    sent.body_bytes += len(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.close()

    async def _send_failure(
        self, send: Send, failure: Failure, request_id: str, method: str, sent: _Sent
    ) -> None:
        body = error_page(failure, request_id=request_id, edge_name=self.edge_name)
        headers: Headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"via", self.via),
            (b"x-cache", f"{failure.kind} from {self.edge_name}".encode()),
            (b"x-edge-error", failure.detail.encode()),
            (b"x-amz-cf-id", request_id.encode()),
        ]
        if failure.status in (413, 431):
            headers.append((b"connection", b"close"))
        sent.status = failure.status
        sent.result = failure.kind
        await send({"type": "http.response.start", "status": failure.status, "headers": headers})
        sent.started = True
        if method != "HEAD":
            sent.body_bytes = len(body)
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "http.response.body", "body": b""})


class _Sent:
    """What has gone to the viewer so far (for the access log and error handling)."""

    __slots__ = ("body_bytes", "result", "started", "status")

    def __init__(self) -> None:
        self.started = False
        self.status = 0
        self.body_bytes = 0
        self.result = "-"
