"""ALB Lambda-target rules as data: size limits, text media types, dropped headers, failure table.

Everything the ELB guide states as a list or a number lives here (lambda-edge-spec §7), so a
change in AWS's documentation is a change of data. Header names are stored lower case.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ALB_FAILURES",
    "ALB_REQUEST_BODY_LIMIT_BYTES",
    "ALB_RESPONSE_LIMIT_BYTES",
    "ALB_TEXT_MEDIA_TYPES",
    "ALB_TEXT_MEDIA_TYPE_PREFIXES",
    "DROPPED_RESPONSE_HEADERS",
    "AlbCondition",
    "AlbFailure",
]

_MB = 1024 * 1024

# §7.4 / §14: "request body / response JSON 1 MB / 1 MB (413 / 502)".
ALB_REQUEST_BODY_LIMIT_BYTES = 1 * _MB
ALB_RESPONSE_LIMIT_BYTES = 1 * _MB

# §7.2 rule 2: these media types reach the function as text; everything else as base64.
ALB_TEXT_MEDIA_TYPE_PREFIXES: tuple[str, ...] = ("text/",)
ALB_TEXT_MEDIA_TYPES: frozenset[str] = frozenset(
    {"application/json", "application/javascript", "application/xml"}
)

# §7.3: hop-by-hop headers of the function's answer are ignored (RFC 9110 §7.6.1 list, plus the
# names listed in its `Connection`), and `Content-Length` is the load balancer's to compute.
DROPPED_RESPONSE_HEADERS: frozenset[str] = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class AlbCondition(enum.StrEnum):
    """The §7.4 conditions under which the load balancer answers instead of the function."""

    REQUEST_TOO_LARGE = "request-too-large"
    BAD_REQUEST = "bad-request"
    WEBSOCKET = "websocket"
    RESPONSE_TOO_LARGE = "response-too-large"
    INVALID_RESPONSE = "invalid-response"
    FUNCTION_ERROR = "function-error"
    FUNCTION_TIMEOUT = "function-timeout"
    THROTTLED = "throttled"
    NOT_FOUND = "not-found"
    ACCESS_DENIED = "access-denied"
    CONNECTION_ERROR = "connection-error"
    CONNECTION_TIMEOUT = "connection-timeout"
    SERVICE_ERROR = "service-error"
    NO_TARGET = "no-target"


@dataclass(frozen=True, slots=True)
class AlbFailure:
    """What the client gets (`status`) and the access-log `error_reason` (None: none logged)."""

    status: int
    reason_code: str | None


# §7.4. Statuses marked [inferred] there (and §16.10) are 502. A function timeout reaches the load
# balancer as an `Unhandled` function error (`Sandbox.Timedout`, §8.4), hence `LambdaUnhandled`;
# so do crashes and out-of-memory exits.
ALB_FAILURES: Mapping[AlbCondition, AlbFailure] = MappingProxyType(
    {
        AlbCondition.REQUEST_TOO_LARGE: AlbFailure(413, "LambdaRequestTooLarge"),
        AlbCondition.BAD_REQUEST: AlbFailure(502, "LambdaBadRequest"),
        AlbCondition.WEBSOCKET: AlbFailure(400, "LambdaWebsocketNotSupported"),
        AlbCondition.RESPONSE_TOO_LARGE: AlbFailure(502, "LambdaResponseTooLarge"),
        AlbCondition.INVALID_RESPONSE: AlbFailure(502, "LambdaInvalidResponse"),
        AlbCondition.FUNCTION_ERROR: AlbFailure(502, "LambdaUnhandled"),
        AlbCondition.FUNCTION_TIMEOUT: AlbFailure(502, "LambdaUnhandled"),
        AlbCondition.THROTTLED: AlbFailure(502, "LambdaThrottling"),
        AlbCondition.NOT_FOUND: AlbFailure(502, "LambdaResourceNotFound"),
        AlbCondition.ACCESS_DENIED: AlbFailure(502, "LambdaAccessDenied"),
        AlbCondition.CONNECTION_ERROR: AlbFailure(502, "LambdaConnectionError"),
        AlbCondition.CONNECTION_TIMEOUT: AlbFailure(504, "LambdaConnectionTimeout"),
        AlbCondition.SERVICE_ERROR: AlbFailure(502, "LambdaServiceException"),
        AlbCondition.NO_TARGET: AlbFailure(503, None),
    }
)
