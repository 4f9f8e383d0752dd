"""A function as origin: HTTP request -> ALB Lambda-target event, and its JSON answer -> HTTP.

Pure: no I/O, no clock (the trace id is passed in). `build_alb_event` makes exactly the event an
Application Load Balancer sends a Lambda target (lambda-edge-spec §7.1, §7.2) in either header
mode; `decode_alb_response` accepts what the load balancer accepts (§7.3) and raises
`AlbInvalidResponse` with the load balancer's access-log reason code for the rest (§7.4).
"""

from __future__ import annotations

import base64
import binascii
import http
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from edge.events.alb_rules import (
    ALB_FAILURES,
    ALB_REQUEST_BODY_LIMIT_BYTES,
    ALB_RESPONSE_LIMIT_BYTES,
    ALB_TEXT_MEDIA_TYPE_PREFIXES,
    ALB_TEXT_MEDIA_TYPES,
    DROPPED_RESPONSE_HEADERS,
    AlbCondition,
)

__all__ = [
    "AlbBadRequest",
    "AlbError",
    "AlbInvalidResponse",
    "AlbRequest",
    "AlbRequestTooLarge",
    "AlbResponse",
    "build_alb_event",
    "build_health_check_event",
    "decode_alb_response",
    "new_trace_root",
    "sample_alb_event",
    "sample_health_check_event",
    "trace_header",
]


class AlbError(Exception):
    """The load balancer answers instead of the function: `status` to the client, `reason_code`
    for the access log (§7.4), `detail` for the function's author."""

    condition: AlbCondition

    def __init__(self, condition: AlbCondition, detail: str) -> None:
        failure = ALB_FAILURES[condition]
        self.condition = condition
        self.status = failure.status
        self.reason_code = failure.reason_code or ""
        self.detail = detail
        super().__init__(f"{self.reason_code}: {detail}")


class AlbRequestTooLarge(AlbError):
    """Request body over 1 MB: 413 `LambdaRequestTooLarge`; the function is not called."""

    def __init__(self, detail: str) -> None:
        super().__init__(AlbCondition.REQUEST_TOO_LARGE, detail)


class AlbBadRequest(AlbError):
    """A request the load balancer cannot put into an event: headers, path, query or a text body
    that are not UTF-8 (`LambdaBadRequest`), or a WebSocket upgrade (400
    `LambdaWebsocketNotSupported`). The function is not called."""


class AlbInvalidResponse(AlbError):
    """The function's answer is not one the load balancer accepts: 502 with `reason_code`
    `LambdaInvalidResponse` or `LambdaResponseTooLarge`."""

    def __init__(self, reason_code: str, detail: str) -> None:
        condition = (
            AlbCondition.RESPONSE_TOO_LARGE
            if reason_code == ALB_FAILURES[AlbCondition.RESPONSE_TOO_LARGE].reason_code
            else AlbCondition.INVALID_RESPONSE
        )
        super().__init__(condition, detail)


_INVALID = "LambdaInvalidResponse"
_TOO_LARGE = "LambdaResponseTooLarge"


@dataclass(frozen=True, slots=True)
class AlbRequest:
    """The HTTP request as it reaches a function origin (after origin-request).

    - `path` and `query_string` are raw: percent-encoded as received; `query_string` without `?`.
    - `headers`: (name, value) pairs in arrival order. Like the path and query, each str holds the
      wire bytes decoded as ISO-8859-1 (what ASGI servers hand over); the event carries them
      re-read as UTF-8. A str with characters above U+00FF is taken as already-decoded text.
    - `listener_port` and `protocol` describe the listener the viewer connected to.
    """

    method: str
    path: str
    client_ip: str
    query_string: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    listener_port: int = 80
    protocol: Literal["http", "https"] = "http"


@dataclass(frozen=True, slots=True)
class AlbResponse:
    """The function's answer as HTTP: hop-by-hop headers dropped, `content-length` computed
    (absent for 204 and 304, which have no body). Header names are as the function wrote
    them; order follows its JSON."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


# --- the request event (§7.1, §7.2) -------------------------------------------------------------


def new_trace_root(epoch_seconds: int, random_hex: str) -> str:
    """An X-Ray trace id `1-<8 hex epoch seconds>-<24 hex>`, as the load balancer makes one.

    `random_hex` is 24 hex digits from the caller's random source (96 bits).
    """
    if not 0 <= epoch_seconds < 1 << 32:
        raise ValueError(f"epoch_seconds out of range: {epoch_seconds}")
    if len(random_hex) != 24 or not _HEX.fullmatch(random_hex):
        raise ValueError(f"random_hex must be 24 hex digits, got {random_hex!r}")
    return f"1-{epoch_seconds:08x}-{random_hex.lower()}"


_HEX = re.compile(r"[0-9a-fA-F]+")


def trace_header(existing: str | None, trace_id: str) -> str:
    """The `x-amzn-trace-id` the load balancer forwards, given the client's (or None).

    ELB request tracing: no header -> `Root=<trace_id>`; a header with `Root` -> `Self=<trace_id>`
    inserted in front, other fields kept; a header with `Self` -> its value replaced. [inferred] A
    header with neither gets `Root=<trace_id>` in front of its fields.
    """
    if existing is None or not existing.strip():
        return f"Root={trace_id}"
    fields = [part.strip() for part in existing.split(";") if part.strip()]
    keys = [part.partition("=")[0] for part in fields]
    if "Self" in keys:
        fields[keys.index("Self")] = f"Self={trace_id}"
        return ";".join(fields)
    if "Root" in keys:
        return ";".join([f"Self={trace_id}", *fields])
    return ";".join([f"Root={trace_id}", *fields])


def _as_utf8(value: str, what: str) -> str:
    # The wire bytes arrive as an ISO-8859-1 str; the event needs them as UTF-8 text (§7.2:
    # anything else fails with `LambdaBadRequest`).
    if value.isascii():
        return value
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value  # already decoded text
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AlbBadRequest(
            AlbCondition.BAD_REQUEST, f"the request's {what} is not valid UTF-8"
        ) from None


def _query_parameters(raw: str) -> dict[str, list[str]]:
    # §7.1: names and values stay percent-encoded; repeated names keep arrival order.
    params: dict[str, list[str]] = {}
    if not raw:
        return params
    for piece in _as_utf8(raw, "query string").split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        values = params.get(name)
        if values is None:
            params[name] = [value]
        else:
            values.append(value)
    return params


def _is_text_media_type(content_type: str) -> bool:
    # §7.2 [inferred]: the media type decides, its parameters (charset=...) do not.
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type.startswith(ALB_TEXT_MEDIA_TYPE_PREFIXES) or media_type in ALB_TEXT_MEDIA_TYPES


def _body_field(body: bytes, headers: dict[str, list[str]]) -> tuple[str, bool]:
    """§7.2: (body, isBase64Encoded)."""
    if not body:
        return "", False
    content_type = headers.get("content-type")
    if "content-encoding" not in headers and content_type and _is_text_media_type(content_type[-1]):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            raise AlbBadRequest(
                AlbCondition.BAD_REQUEST,
                f"the request body is {content_type[-1]!r} but not valid UTF-8",
            ) from None
    return base64.b64encode(body).decode("ascii"), True


def _event_headers(request: AlbRequest, trace_id: str) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        key = _as_utf8(name, "header names").lower()
        text = _as_utf8(value, f"header {key!r}")
        values = headers.get(key)
        if values is None:
            headers[key] = [text]
        else:
            values.append(text)
    upgrade = headers.get("upgrade")
    if upgrade and any("websocket" in value.lower() for value in upgrade):
        raise AlbBadRequest(AlbCondition.WEBSOCKET, "WebSocket upgrade requests are not supported")
    # ELB x-forwarded-headers: the client IP is appended to an existing X-Forwarded-For; port and
    # protocol are the listener's, replacing whatever the client sent.
    forwarded_for = headers.get("x-forwarded-for")
    chain = [*forwarded_for, request.client_ip] if forwarded_for else [request.client_ip]
    headers["x-forwarded-for"] = [", ".join(chain)]
    headers["x-forwarded-port"] = [str(request.listener_port)]
    headers["x-forwarded-proto"] = [request.protocol]
    client_trace = headers.get("x-amzn-trace-id")
    headers["x-amzn-trace-id"] = [
        trace_header(client_trace[-1] if client_trace else None, trace_id)
    ]
    return headers


def _event_document(
    method: str,
    path: str,
    query: dict[str, list[str]],
    headers: dict[str, list[str]],
    body: str,
    is_base64: bool,
    *,
    multi_value: bool,
    target_group_arn: str,
) -> dict[str, Any]:
    # §7.1: exactly one field of each pair, chosen by `lambda.multi_value_headers.enabled`;
    # single-value mode keeps the last value of a repeated name.
    document: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": target_group_arn}},
        "httpMethod": method,
        "path": path,
    }
    if multi_value:
        document["multiValueQueryStringParameters"] = query
        document["multiValueHeaders"] = headers
    else:
        document["queryStringParameters"] = {name: values[-1] for name, values in query.items()}
        document["headers"] = {name: values[-1] for name, values in headers.items()}
    document["body"] = body
    document["isBase64Encoded"] = is_base64
    return document


def build_alb_event(
    request: AlbRequest, *, multi_value: bool, target_group_arn: str, trace_id: str
) -> bytes:
    """The event JSON an ALB sends its Lambda target for `request` (§7.1, §7.2).

    `trace_id` is this hop's id (`new_trace_root`): `Root` of `x-amzn-trace-id`, or `Self` when
    the client sent a trace header with a `Root`. Raises `AlbRequestTooLarge` for a body over
    1 MB and `AlbBadRequest` for what an ALB rejects (not UTF-8; WebSocket upgrade).
    """
    if len(request.body) > ALB_REQUEST_BODY_LIMIT_BYTES:
        raise AlbRequestTooLarge(
            f"the request body is {len(request.body)} bytes; "
            f"a Lambda target accepts at most {ALB_REQUEST_BODY_LIMIT_BYTES}"
        )
    headers = _event_headers(request, trace_id)
    body, is_base64 = _body_field(request.body, headers)
    document = _event_document(
        request.method,
        _as_utf8(request.path, "path"),
        _query_parameters(request.query_string),
        headers,
        body,
        is_base64,
        multi_value=multi_value,
        target_group_arn=target_group_arn,
    )
    return orjson.dumps(document)


_HEALTH_CHECK_USER_AGENT = "ELB-HealthChecker/2.0"


def build_health_check_event(*, multi_value: bool, target_group_arn: str, path: str = "/") -> bytes:
    """The health-check event (§7.5): `GET <path>` with only the health checker's user agent."""
    document = _event_document(
        "GET",
        path,
        {},
        {"user-agent": [_HEALTH_CHECK_USER_AGENT]},
        "",
        False,
        multi_value=multi_value,
        target_group_arn=target_group_arn,
    )
    return orjson.dumps(document)


# --- samples, for authors (`edge events alb`) ---------------------------------------------------

# Values of AWS's documented sample event (reference events/alb-single-value.json), so a sample
# made here looks like the one in AWS's guide.
SAMPLE_TARGET_GROUP_ARN = (
    "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/"
    "lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"
)
_SAMPLE_TRACE_ID = "1-5c536348-3d683b8b04734faae651f476"
_SAMPLE_CLIENT_IP = "72.12.164.125"
_SAMPLE_HEADERS: tuple[tuple[str, str], ...] = (
    ("accept", "*/*"),
    ("host", "lambda-alb-123578498.us-east-2.elb.amazonaws.com"),
    ("user-agent", "curl/7.54.0"),
)


def sample_alb_event(
    *,
    multi_value: bool,
    method: str = "GET",
    path: str = "/",
    query_string: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> dict[str, Any]:
    """A valid ALB request event, built by `build_alb_event` from a sample request.

    `multi_value` is the target group's `lambda.multi_value_headers.enabled`. `headers` replace
    the sample's headers of the same name (case-insensitive) and add the rest; the load
    balancer's own (`x-forwarded-*`, `x-amzn-trace-id`) are added as it adds them.
    """
    replaced = {name.lower() for name, _ in headers}
    kept = [pair for pair in _SAMPLE_HEADERS if pair[0] not in replaced]
    request = AlbRequest(
        method=method,
        path=path,
        client_ip=_SAMPLE_CLIENT_IP,
        query_string=query_string,
        headers=[*kept, *headers],
        body=body,
    )
    event = build_alb_event(
        request,
        multi_value=multi_value,
        target_group_arn=SAMPLE_TARGET_GROUP_ARN,
        trace_id=_SAMPLE_TRACE_ID,
    )
    document: dict[str, Any] = orjson.loads(event)
    return document


def sample_health_check_event(*, multi_value: bool, path: str = "/") -> dict[str, Any]:
    """The health-check event (§7.5) of the sample target group."""
    event = build_health_check_event(
        multi_value=multi_value, target_group_arn=SAMPLE_TARGET_GROUP_ARN, path=path
    )
    document: dict[str, Any] = orjson.loads(event)
    return document


# --- the response document (§7.3) ---------------------------------------------------------------

# RFC 9110 §5.1 field-name token; §5.5: CR, LF and NUL are never allowed in a field value.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_CHARS = re.compile(r"[\r\n\x00]")
_STATUS_PREFIX = re.compile(r"\d{3} ")
_NO_BODY_STATUSES = frozenset({204, 304})  # RFC 9110 §6.4.1
_ABSENT = object()


def _invalid(detail: str) -> AlbInvalidResponse:
    return AlbInvalidResponse(_INVALID, detail)


def _field(document: dict[str, Any], name: str) -> Any:
    # Reports of real ALBs answering 502 for an explicit null (statusDescription in
    # aws/aws-lambda-dotnet#507, body in aws-powertools/powertools-lambda-python#4671): a field
    # may be left out, but not set to null.
    value = document.get(name, _ABSENT)
    if value is None:
        raise _invalid(f"{name!r} is null; leave the field out instead")
    return value


def _status(document: dict[str, Any]) -> int:
    status = document.get("statusCode", _ABSENT)
    if status is _ABSENT:
        raise _invalid("'statusCode' is missing")
    if type(status) is not int:
        raise _invalid(f"'statusCode' must be an integer, got {status!r}")
    if not 200 <= status <= 599:  # [inferred] a final HTTP status (RFC 9110 §15)
        raise _invalid(f"'statusCode' {status} is not a final HTTP status (200-599)")
    return status


def _reason(document: dict[str, Any], status: int) -> str:
    description = _field(document, "statusDescription")
    if description is _ABSENT:
        try:
            return http.HTTPStatus(status).phrase
        except ValueError:
            return ""
    if not isinstance(description, str):
        raise _invalid(f"'statusDescription' must be a string, got {description!r}")
    if _BAD_VALUE_CHARS.search(description):
        raise _invalid("'statusDescription' contains CR, LF or NUL")
    # The documented form is "<code> <reason phrase>" ("200 OK"); the reason is the phrase.
    if _STATUS_PREFIX.match(description):
        return description[4:]
    return description


def _body(document: dict[str, Any]) -> bytes:
    is_base64 = _field(document, "isBase64Encoded")
    if is_base64 is _ABSENT:
        is_base64 = False  # §7.3 [decision]
    elif not isinstance(is_base64, bool):
        raise _invalid(f"'isBase64Encoded' must be true or false, got {is_base64!r}")
    body = _field(document, "body")
    if body is _ABSENT:
        return b""
    if not isinstance(body, str):
        raise _invalid(f"'body' must be a string, got {type(body).__name__}")
    if not is_base64:
        return body.encode("utf-8")
    # Line breaks (as base64.encodebytes writes them) are tolerated; other junk is not.
    if "\n" in body:
        body = body.replace("\r\n", "").replace("\n", "")
    try:
        return binascii.a2b_base64(body.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _invalid("'isBase64Encoded' is true but 'body' is not valid base64") from None


def _header_lines(document: dict[str, Any], *, multi_value: bool) -> list[tuple[str, str]]:
    # §7.3 [decision]: only the field matching the target group's mode counts.
    field = "multiValueHeaders" if multi_value else "headers"
    headers = _field(document, field)
    if headers is _ABSENT:
        return []
    if not isinstance(headers, dict):
        raise _invalid(f"{field!r} must be an object, got {type(headers).__name__}")
    lines: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise _invalid(f"header name {name!r} is not a valid HTTP field name")
        values = value if multi_value else [value]
        if not isinstance(values, list):
            raise _invalid(f"multiValueHeaders[{name!r}] must be a list of strings")
        for item in values:
            # A number or boolean header value makes a real ALB answer 502 (reports in
            # CodeGenieApp/serverless-express#563, jeremydaly/lambda-api#117): strings only.
            if not isinstance(item, str):
                raise _invalid(
                    f"header {name!r} has the value {item!r}; header values must be strings"
                )
            if _BAD_VALUE_CHARS.search(item):
                raise _invalid(f"header {name!r} contains CR, LF or NUL")
            lines.append((name, item))
    return lines


def _strip_hop_by_hop(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    drop = set(DROPPED_RESPONSE_HEADERS)
    for name, value in lines:
        if name.lower() == "connection":  # RFC 9110 §7.6.1: the names it lists are hop-by-hop
            drop.update(token.strip().lower() for token in value.split(",") if token.strip())
    return [(name, value) for name, value in lines if name.lower() not in drop]


def decode_alb_response(payload: bytes, *, multi_value: bool) -> AlbResponse:
    """The function's JSON answer -> the HTTP response the load balancer sends (§7.3).

    Raises `AlbInvalidResponse` (`LambdaResponseTooLarge` over 1 MB, else
    `LambdaInvalidResponse`) for an answer the load balancer would not accept; the message says
    what to fix.
    """
    if len(payload) > ALB_RESPONSE_LIMIT_BYTES:
        raise AlbInvalidResponse(
            _TOO_LARGE,
            f"the response JSON is {len(payload)} bytes; "
            f"a Lambda target may answer at most {ALB_RESPONSE_LIMIT_BYTES}",
        )
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise _invalid(f"the response is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise _invalid(f"the response must be a JSON object, got {type(document).__name__}")
    status = _status(document)
    reason = _reason(document, status)
    body = _body(document)
    headers = _strip_hop_by_hop(_header_lines(document, multi_value=multi_value))
    if status in _NO_BODY_STATUSES:
        body = b""
    else:
        headers.append(("content-length", str(len(body))))
    return AlbResponse(status=status, reason=reason, headers=headers, body=body)
