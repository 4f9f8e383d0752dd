"""HTTP/1.1 message rules the transport needs, as functions over a parsed head: pure.

Also how a parsed head becomes `httpx.Headers` cheaply.
"""

from __future__ import annotations

from typing import Final

import httpx

__all__ = [
    "CRLF",
    "HEADER_END",
    "HTTP_10",
    "HTTP_11",
    "LAST_CHUNK",
    "RawHeaders",
    "closes_connection",
    "has_body_framing",
    "head_size",
    "make_headers",
]

HTTP_11: Final = b"HTTP/1.1"
HTTP_10: Final = b"HTTP/1.0"
LAST_CHUNK: Final = b"0\r\n\r\n"
CRLF: Final = b"\r\n"
HEADER_END: Final = b"\r\n\r\n"

RawHeaders = list[tuple[bytes, bytes]]


def _make_headers_plain(raw: RawHeaders) -> httpx.Headers:
    return httpx.Headers(raw)


def _make_headers_fast(raw: RawHeaders) -> httpx.Headers:
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


make_headers = _make_headers_fast if _fast_headers_work() else _make_headers_plain


def closes_connection(headers: RawHeaders, http_version: str) -> bool:
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


def head_size(reason: bytes, headers: RawHeaders) -> int:
    """The size of a response head as written: status line, fields, blank line."""
    return (
        len(b"HTTP/1.1 200 \r\n") + len(reason) + sum(4 + len(n) + len(v) for n, v in headers) + 2
    )


def has_body_framing(headers: RawHeaders) -> bool:
    """Whether a response delimits its body itself, rather than by closing (RFC 9112 §6.3):
    a Transfer-Encoding whose final coding is chunked, or else a Content-Length. A response
    whose Transfer-Encoding ends in another coding is read until the connection closes."""
    codings = [value for name, value in headers if name.lower() == b"transfer-encoding"]
    if codings:
        final = b",".join(codings).rsplit(b",", 1)[-1]
        return final.strip(b" \t").lower() == b"chunked"
    return any(name.lower() == b"content-length" for name, _ in headers)
