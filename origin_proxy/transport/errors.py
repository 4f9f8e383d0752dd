"""The transport's errors: httpx's own tree, so callers map them where they map httpx's."""

from __future__ import annotations

import httpx

__all__ = ["ResponseBodyIncomplete", "ResponseHeadTooLarge", "StaleConnectionError"]


class ResponseHeadTooLarge(httpx.RemoteProtocolError):
    """The origin's response head (or its chunk framing and trailer section) passed the
    transport's limits; the connection is dropped without reading further."""


class ResponseBodyIncomplete(httpx.RemoteProtocolError):
    """The origin closed the connection before the end of the body its framing announced."""


class StaleConnectionError(Exception):
    """A reused keep-alive connection died before a single response byte arrived."""
