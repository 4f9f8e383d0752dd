"""What travels through one request: the viewer's request, the answer going back, request ids.

Plain objects, no I/O and no server interface: a viewer adapter (`edge.viewer`) makes the
request from what its server hands over and writes the answer out; the journey
(`edge.pipeline`) and the functions at its triggers (`edge.hooks`) change both on the way.
Headers are (bytes, bytes) pairs with lower-case names; bodies are async iterators of raw
bytes, read once.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from edge.traces import sent_trace, trace_for
from origin_proxy import Headers, OriginResponse, single_chunk

if TYPE_CHECKING:
    from edge.origins import Upstream

_ID_BYTES = 42
_ID_BATCH = 64  # ids' worth of random bytes read at once: one getrandom call per batch
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


class _RequestIds:
    """Request ids from random bytes read in batches. A forked worker starts a batch of its own
    (never the parent's bytes: two workers would hand out the same ids)."""

    __slots__ = ("_at", "_batch")

    def __init__(self) -> None:
        self._batch = b""
        self._at = 0

    def forget(self) -> None:
        self._batch = b""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._batch):
            self._batch = os.urandom(_ID_BYTES * _ID_BATCH)
            at = 0
        self._at = at + _ID_BYTES
        data = self._batch[at : at + _ID_BYTES]
        return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).decode()


_request_ids = _RequestIds()
os.register_at_fork(after_in_child=_request_ids.forget)


def new_request_id() -> str:
    """An opaque id like CloudFront's X-Amz-Cf-Id (URL-safe base64 of 42 random bytes)."""
    return _request_ids()


def headers_to_str(headers: Headers) -> list[tuple[str, str]]:
    """Headers as events show them (ISO-8859-1, as they came)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def headers_from_str(headers: Iterable[tuple[str, str]]) -> Headers:
    """Headers from an event, lower-cased names; a value outside ISO-8859-1 goes as UTF-8."""
    return [(k.lower().encode("latin-1"), _encode_value(v)) for k, v in headers]


def _encode_value(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


async def _nothing() -> None:
    return None


@dataclass(slots=True)
class ViewerRequest:
    """The request as it travels through the triggers (raw bytes, lower-case header names).

    `path` is the target's path as sent (what functions, the cache and the origin see);
    `normal_path` its normal form, which behaviors match. `body` is None when the request has
    none; `content_length` is None when it streams chunked. `headers` are the viewer's (as
    viewer-request left them): what goes to an origin is made from them, never written back.
    """

    method: str
    path: bytes
    query: bytes
    headers: Headers
    body: AsyncIterator[bytes] | None
    content_length: int | None
    client_ip: str
    scheme: str
    listener_port: int = 80
    normal_path: str = "/"
    id: str = ""  # the X-Amz-Cf-Id this edge answers with, and the events' requestId
    # Whether the origin is told the viewer's Host in X-Forwarded-Host (only when it cannot
    # poison the cache: the Host is in the key, or nothing is stored).
    forward_host: bool = True
    # The headers as viewer-request returned them (names in its casing), for viewer-response's
    # event; None while no function changed them.
    event_headers: list[tuple[str, str]] | None = None
    # For the access log and the metrics: the behavior and origin the journey chose.
    behavior: str = "-"
    origin: str = "-"
    # The origin a CloudFront Function chose at viewer-request (cf.selectRequestOriginById ...),
    # for this request only; None: the behavior's.
    chosen_upstream: Upstream | None = None
    # The viewer's HTTP version as the server parsed it: "1.0", "1.1" or "2" (with `scheme`,
    # what CloudFront-Forwarded-Proto and a viewer protocol policy go on).
    http_version: str = "1.1"
    # The X-Amzn-Trace-Id value origins and functions get ("" until `trace()` makes it), and
    # whether the viewer sent that header (valid or not).
    trace_id: str = ""
    trace_sent: bool = False

    def trace(self) -> str:
        """This request's X-Amzn-Trace-Id (see `edge.traces`), made from the viewer's headers
        on first use."""
        trace = self.trace_id
        if not trace:
            sent = sent_trace(self.headers)
            self.trace_sent = sent is not None
            trace = self.trace_id = trace_for(sent)
        return trace

    def for_refresh(self) -> ViewerRequest:
        """A copy that refreshes a stored response in the background: a GET with no body, with
        a request id of its own."""
        return replace(self, method="GET", body=None, content_length=None, id=new_request_id())


@dataclass(slots=True)
class Answer:
    """What will be sent to the viewer: from an origin, from the cache, or from a function.

    The one who ends up with it must await `close()` once done with `body` (it gives the
    origin's connection back, or closes a stored body's file)."""

    status: int
    headers: Headers
    body: AsyncIterator[bytes]
    result: str  # the X-Cache kind: "Hit", "RefreshHit", "Miss", "Error", ...
    reason: bytes = b""
    close: Callable[[], Awaitable[None]] = _nothing
    storing: bool = False  # the body streams into the cache as it is read

    @classmethod
    def of(cls, response: OriginResponse, result: str) -> Answer:
        """An origin's or the cache's response, as it goes on (its headers, a list of its own
        as every response the cache gives is, become the answer's)."""
        return cls(
            response.status,
            response.headers,
            response.body,
            result,
            response.reason,
            response.close,
        )

    @classmethod
    def text(cls, status: int, reason: bytes, text: bytes) -> Answer:
        """A short plain-text answer of this edge's own (X-Cache: Error)."""
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(text)).encode()),
        ]
        return cls(status, headers, single_chunk(text), "Error", reason)


async def drain(body: AsyncIterator[bytes]) -> None:
    """Read a body nobody will be sent, for its side effect (a cache store it streams into)."""
    async for _ in body:
        pass
