"""Lambda@Edge rules as data: trigger names, header lists, size limits and header-name casing.

Everything AWS states as a list or a number lives here, so a change in AWS's documentation is a
change of data, not of code (lambda-edge-spec §15.3). Names are stored lower case; lookups are
on lower-cased names.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DISALLOWED_HEADERS",
    "DISALLOWED_HEADER_PREFIXES",
    "INCLUDE_BODY_LIMIT_BYTES",
    "ORIGIN_CUSTOM_HEADER_DENY",
    "ORIGIN_CUSTOM_HEADER_DENY_PREFIXES",
    "ORIGIN_TRIGGERS",
    "READ_ONLY_HEADERS",
    "REQUEST_TRIGGERS",
    "RESULT_SIZE_LIMIT_BYTES",
    "SSL_PROTOCOLS",
    "EventType",
    "canonical_header_name",
    "is_disallowed_header",
]


class EventType(enum.StrEnum):
    """The four CloudFront trigger points; the value is the event's `config.eventType`."""

    VIEWER_REQUEST = "viewer-request"
    ORIGIN_REQUEST = "origin-request"
    ORIGIN_RESPONSE = "origin-response"
    VIEWER_RESPONSE = "viewer-response"

    @property
    def is_request(self) -> bool:
        """True for the two triggers whose function sees (and may return) the request."""
        return self in REQUEST_TRIGGERS

    @property
    def is_viewer(self) -> bool:
        """True for the viewer-facing triggers (the 40 KB limits apply)."""
        return self in (EventType.VIEWER_REQUEST, EventType.VIEWER_RESPONSE)


# Set membership, not the properties, on hot paths: a StrEnum hashes as its str value.
REQUEST_TRIGGERS: frozenset[EventType] = frozenset(
    {EventType.VIEWER_REQUEST, EventType.ORIGIN_REQUEST}
)
ORIGIN_TRIGGERS: frozenset[EventType] = frozenset(
    {EventType.ORIGIN_REQUEST, EventType.ORIGIN_RESPONSE}
)

_KB = 1024
_MB = 1024 * 1024

# Lambda@Edge §3.1 (CFDG edge-functions-restrictions.md, 2023 list): hidden from functions and
# may not be added by them. Entries ending in `*` in AWS's list are the prefixes below.
DISALLOWED_HEADERS: frozenset[str] = frozenset(
    {
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "trailer",
        "upgrade",
        "x-accel-buffering",
        "x-accel-charset",
        "x-accel-limit-rate",
        "x-accel-redirect",
        "x-amzn-auth",
        "x-amzn-cf-billing",
        "x-amzn-cf-id",
        "x-amzn-cf-xff",
        "x-amzn-errortype",
        "x-amzn-fle-profile",
        "x-amzn-header-count",
        "x-amzn-header-order",
        "x-amzn-lambda-integration-tag",
        "x-amzn-requestid",
        "x-cache",
        "x-forwarded-proto",
        "x-real-ip",
    }
)
DISALLOWED_HEADER_PREFIXES: tuple[str, ...] = ("x-amz-cf-", "x-edge-")

# Lambda@Edge §3.2: read-only per trigger ("can't add, modify, or delete them"); 2023 lists, the
# viewer-response list is the short one (it had Content-Encoding, Content-Length and
# Transfer-Encoding until January 2022).
READ_ONLY_HEADERS: Mapping[EventType, frozenset[str]] = MappingProxyType(
    {
        EventType.VIEWER_REQUEST: frozenset({"content-length", "host", "transfer-encoding", "via"}),
        EventType.ORIGIN_REQUEST: frozenset(
            {
                "accept-encoding",
                "content-length",
                "if-modified-since",
                "if-none-match",
                "if-range",
                "if-unmodified-since",
                "transfer-encoding",
                "via",
            }
        ),
        EventType.ORIGIN_RESPONSE: frozenset({"transfer-encoding", "via"}),
        EventType.VIEWER_RESPONSE: frozenset({"warning", "via"}),
    }
)

# CFDG add-origin-custom-headers.md: names CloudFront refuses as origin custom headers (§1.5).
ORIGIN_CUSTOM_HEADER_DENY: frozenset[str] = frozenset(
    {
        "cache-control",
        "connection",
        "content-length",
        "cookie",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "max-forwards",
        "pragma",
        "proxy-authorization",
        "proxy-connection",
        "range",
        "request-range",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
        "x-real-ip",
    }
)
ORIGIN_CUSTOM_HEADER_DENY_PREFIXES: tuple[str, ...] = ("x-amz-", "x-edge-")

# §1.5: the minimum TLS protocols a custom origin may list.
SSL_PROTOCOLS: frozenset[str] = frozenset({"TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3"})

# §1.4 / §3.5: how much request body include-body exposes (and how large a text replacement
# may be). KB and MB are read as 1024 and 1024² bytes.
INCLUDE_BODY_LIMIT_BYTES: Mapping[EventType, int] = MappingProxyType(
    {EventType.VIEWER_REQUEST: 40 * _KB, EventType.ORIGIN_REQUEST: 1 * _MB}
)

# §2.1, §2.2, §3.5, §14: a response a function produces (generated in a request trigger, or with
# a replaced body in a response trigger), headers plus body.
RESULT_SIZE_LIMIT_BYTES: Mapping[EventType, int] = MappingProxyType(
    {
        EventType.VIEWER_REQUEST: 40 * _KB,
        EventType.ORIGIN_REQUEST: 1 * _MB,
        EventType.ORIGIN_RESPONSE: 1 * _MB,
        EventType.VIEWER_RESPONSE: 40 * _KB,
    }
)


def is_disallowed_header(lower_name: str) -> bool:
    """Whether `lower_name` (already lower case) is on the §3.1 list, prefix entries included."""
    return lower_name in DISALLOWED_HEADERS or lower_name.startswith(DISALLOWED_HEADER_PREFIXES)


@functools.lru_cache(maxsize=2048)
def canonical_header_name(name: str) -> str:
    """The casing CloudFront generates for a header name: every hyphen-separated part capitalised.

    §1.3: `x-custom-id` -> `X-Custom-Id`. Only the first letter of each part is touched, so
    the rest keeps whatever case it had.
    """
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))
