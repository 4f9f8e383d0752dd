"""The viewer side under an ASGI server: an HTTP scope in, the answer out as ASGI messages.

Per request: admit what any behavior may see (`admission`), make the `ViewerRequest` (its body
read from `receive` as the journey asks for it, counted against the limit and timed out when
it stalls), run the journey, send the answer. The first body chunk is read before the head
goes out, so a body that fails at once still gets a clean error page; after the head, an
error aborts the connection instead of becoming a fake error page. A viewer that stops
reading is given up on after `send_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from edge.exchange import Answer, ViewerRequest
from edge.failures import Failure
from edge.viewer.admission import Refused, admit
from edge.viewer.protocol import (
    BodyTooLarge,
    Served,
    Viewer,
    ViewerBodyStalled,
    ViewerDisconnected,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("edge.viewer")

# A body this small, sent in one write, fits in the server's write buffer without waiting.
_UNWATCHED_BYTES = 16 * 1024


class AsgiViewer(Viewer):
    """The ASGI endpoint every viewer request goes to."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        client = scope.get("client")
        served = Served(method, raw_path.decode("latin-1"), client[0] if client else "0.0.0.0")
        request: ViewerRequest | None = None
        try:
            try:
                scheme: str = scope.get("scheme", "http")
                http_version: str = scope.get("http_version", "1.1")
                if http_version == "1":  # granian's name for HTTP/1.0
                    http_version = "1.0"
                admitted = admit(
                    method,
                    raw_path,
                    scope["query_string"],
                    scope["headers"],
                    scheme=scheme,
                    limits=self.limits,
                    http_version=http_version,
                )
                request = ViewerRequest(
                    method,
                    admitted.path,
                    admitted.query,
                    admitted.headers,
                    (
                        _body(receive, self.max_body_bytes, self.body_timeout)
                        if admitted.has_body
                        else None
                    ),
                    None if admitted.chunked else admitted.content_length,
                    served.client_ip,
                    scheme,
                    int((scope.get("server") or ("", 80))[1] or 80),  # granian: a str
                    admitted.normal_path.decode("latin-1"),
                    served.request_id,
                    http_version=http_version,
                )
                answer = await self.journey(request)
            except Refused as refused:
                await self._send_failure(send, refused.failure, served)
                return
            await self._send_answer(send, answer, served)
        except Exception as exc:
            failure = self.failure_of(exc, served)
            if served.head_sent:
                raise  # mid-body: abort the connection, never a fake error page
            if failure is not None:
                await self._send_failure(send, failure, served)
        finally:
            self.finish(served, request)

    async def _send_answer(self, send: Send, answer: Answer, served: Served) -> None:
        try:
            head_only = served.method == "HEAD"
            # The first body bytes are read before the head goes out: a body that fails at
            # once (an invalid first chunk, a reset) is still answered with a clean 502.
            chunk = b"" if head_only else await _next_chunk(answer.body)
            headers = self.answer_head(answer, served)
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            served.head_sent = True
            if head_only:
                await send({"type": "http.response.body", "body": b""})
                return
            remaining = _declared_length(headers)
            if remaining is not None and remaining <= len(chunk) <= _UNWATCHED_BYTES:
                # The whole body in one small write: the socket's buffer takes it at once.
                await self._send_body(send, chunk, answer.body, remaining, served, None)
                return
            # A viewer that stops reading must not hold the origin's connection for good.
            try:
                async with asyncio.timeout(None) as deadline:
                    await self._send_body(send, chunk, answer.body, remaining, served, deadline)
            except TimeoutError:
                logger.warning(
                    "request %s: the viewer read nothing for %g s; the response is abandoned "
                    "after %d body bytes",
                    served.request_id,
                    self.send_timeout,
                    served.body_bytes,
                )
                served.result = "ViewerStalled"
        finally:
            await answer.close()

    async def _send_body(
        self,
        send: Send,
        chunk: bytes,
        body: AsyncIterator[bytes],
        remaining: int | None,
        served: Served,
        deadline: asyncio.Timeout | None,
    ) -> None:
        """Send `chunk`, then the rest of `body`; each write must finish before `deadline` is
        `send_timeout` away. With a declared length, the last chunk goes out as the end of the
        body: one server write fewer for every response that fits in one chunk."""
        loop = asyncio.get_running_loop()
        while chunk:
            served.body_bytes += len(chunk)
            if deadline is not None:
                deadline.reschedule(loop.time() + self.send_timeout)
            if remaining is not None:
                remaining -= len(chunk)
                if remaining <= 0:
                    await send({"type": "http.response.body", "body": chunk})
                    aclose = getattr(body, "aclose", None)
                    if aclose is not None:
                        await aclose()
                    return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if deadline is not None:
                deadline.reschedule(None)  # reading the origin is bounded by its own timeout
            chunk = await _next_chunk(body)
        await send({"type": "http.response.body", "body": b""})

    async def _send_failure(self, send: Send, failure: Failure, served: Served) -> None:
        headers, body = self.failure_page(failure, served)
        await send({"type": "http.response.start", "status": failure.status, "headers": headers})
        served.head_sent = True
        if served.method != "HEAD":
            served.body_bytes = len(body)
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "http.response.body", "body": b""})


async def _body(receive: Receive, limit: int, idle_seconds: float) -> AsyncIterator[bytes]:
    """The viewer's request body, as the journey reads it."""
    seen = 0
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                message = await receive()
        except TimeoutError:
            raise ViewerBodyStalled from None
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


async def _next_chunk(body: AsyncIterator[bytes]) -> bytes:
    """The next non-empty chunk of `body`, or b"" at its end."""
    while True:
        chunk = await anext(body, None)
        if chunk is None:
            return b""
        if chunk:
            return chunk


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
