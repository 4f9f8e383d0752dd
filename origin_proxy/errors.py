"""The errors of the origin side: every failure to reach or read an origin is one of these.

Lower-level exceptions (httpx, OSError) are turned into these at exactly one seam, the origin
client; `edge` maps them to statuses in one table.
"""

from __future__ import annotations


class OriginError(Exception):
    """An origin could not give a complete answer. `detail` is CloudFront's log vocabulary."""

    detail = "OriginError"

    def __init__(self, origin: str, cause: str) -> None:
        super().__init__(f"origin {origin!r}: {cause}")
        self.origin = origin
        self.cause = cause


class OriginUnreachable(OriginError):
    """No connection could be made (refused, reset before an answer, DNS, TLS)."""

    detail = "OriginConnectError"


class OriginDnsError(OriginUnreachable):
    """The origin's host name does not resolve."""

    detail = "OriginDnsError"


class OriginTimeout(OriginError):
    """The origin did not answer within its read timeout."""

    detail = "OriginCommError"


class OriginInvalidResponse(OriginError):
    """The origin answered something that is not HTTP."""

    detail = "OriginInvalidResponseError"


class OriginHeadersTooLarge(OriginInvalidResponse):
    """The origin's response head passed the edge's size or field-count limit."""

    detail = "OriginHeadersTooLarge"


class OriginDisconnected(OriginError):
    """The origin's connection broke or closed before its answer was complete."""

    detail = "OriginReadError"
