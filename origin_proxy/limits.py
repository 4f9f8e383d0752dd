"""What an origin's answer and the viewers' uploads are held to, written once.

The transport enforces these, the origin client passes them on, and the configuration offers
them per origin with these defaults.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_MAX_RESPONSE_HEADER_BYTES",
    "DEFAULT_MAX_RESPONSE_HEADER_FIELDS",
    "default_upload_connections",
]

# The status line and header fields of one answer, interim (1xx) heads included; also the
# bound on a trailer section. 64 KiB is what .NET's HTTP client allows a response head and a
# little more than Envoy's 60 KiB; ALB allows 32 KiB. Anything larger is an origin bug or
# hostile, and it would be relayed to every viewer.
DEFAULT_MAX_RESPONSE_HEADER_BYTES: Final = 64 * 1024
# Header fields in one response head: Envoy's and Kestrel's default (HAProxy allows 101).
DEFAULT_MAX_RESPONSE_HEADER_FIELDS: Final = 100


def default_upload_connections(max_connections: int) -> int:
    """How many of `max_connections` requests with a streamed body may hold at once.

    A viewer decides how fast its body arrives, so uploads that stall could otherwise hold
    every origin connection; a quarter (rounded up) is kept for requests that have their whole
    body in hand. With a single connection there is nothing to keep.
    """
    if max_connections <= 1:
        return max_connections
    return max_connections - (max_connections + 3) // 4
