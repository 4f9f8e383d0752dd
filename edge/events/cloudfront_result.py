"""What a Lambda@Edge function returned -> what the pipeline does next, or LambdaValidationError.

Pure: JSON bytes in, a typed outcome out. `decode_result` applies the rules of
lambda-edge-spec §2 and §3 for the event's trigger and returns one of:

- `UpdatedRequest`: continue with this request (request triggers);
- `GeneratedResponse`: send this response instead (request triggers, result has `status`);
- `UpdatedResponse`: continue with this response (response triggers).

A rule violation raises `LambdaValidationError` (the pipeline maps it to 502
`LambdaValidationError`); lenient decisions of this runtime (§15) come back as `warnings`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from edge.events.cloudfront import EdgeEvent, Headers, Origin
from edge.events.cloudfront_errors import NOT_OBJECT, NOT_PARSABLE, LambdaValidationError, fail
from edge.events.cloudfront_headers import (
    ShownHeaders,
    check_read_only,
    decode_header_map,
    shown_pairs,
)
from edge.events.cloudfront_origin import decode_request_origin
from edge.events.cloudfront_rules import (
    INCLUDE_BODY_LIMIT_BYTES,
    READ_ONLY_HEADERS,
    REQUEST_TRIGGERS,
    RESULT_SIZE_LIMIT_BYTES,
    EventType,
)

__all__ = [
    "DEFAULT_POLICY",
    "GeneratedResponse",
    "Outcome",
    "UpdatedRequest",
    "UpdatedResponse",
    "ValidationPolicy",
    "decode_result",
]

# §3.4: a changed query string may hold no spaces, control characters or `#`.
_BAD_QUERY = re.compile(r"[\x00-\x20\x7f#]")
# The uri goes into the request line: no whitespace or control characters.
_BAD_URI = re.compile(r"[\x00-\x20\x7f]")
_STATUS = re.compile(r"[0-9]{3}")
_MAX_URL_CHARS = 8192
_VIEWER_COUNTRY = "cloudfront-viewer-country"
_REQUEST_FIELDS = ("clientIp", "method", "uri", "querystring", "headers")


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """The knobs of validation; the defaults are AWS's current (2023) behaviour.

    `read_only_headers`: lower-case names per trigger (§3.2). `result_size_limit_bytes`: per
    trigger, for generated responses and replaced response bodies; counts decoded body bytes
    plus the headers serialized as `Name: value\\r\\n` (§3.5 decision).
    `body_replace_limit_bytes`: per request trigger, for include-body `replace` as text (the
    base64 limit is the base64 length of it). `strict_viewer_response_status`: a status change
    in viewer-response raises instead of being ignored with a warning (§2.4 decision).
    """

    read_only_headers: Mapping[EventType, frozenset[str]] = field(
        default_factory=lambda: READ_ONLY_HEADERS
    )
    result_size_limit_bytes: Mapping[EventType, int] = field(
        default_factory=lambda: RESULT_SIZE_LIMIT_BYTES
    )
    body_replace_limit_bytes: Mapping[EventType, int] = field(
        default_factory=lambda: INCLUDE_BODY_LIMIT_BYTES
    )
    strict_viewer_response_status: bool = False


DEFAULT_POLICY: Final = ValidationPolicy()


@dataclass(frozen=True, slots=True)
class UpdatedRequest:
    """Continue with this request (viewer-request or origin-request result).

    `headers` are (wire name, value) pairs, grouped by name in the order of the function's map;
    headers hidden from the function (§3.1) are not among them. `body` is the replacement body,
    or None to send the original one. `origin` is the new origin, or None when unchanged.
    """

    uri: str
    querystring: str
    headers: Headers
    body: bytes | None = None
    origin: Origin | None = None
    warnings: tuple[str, ...] = ()
    # CloudFront Functions (2.0, viewer-request): the calls of the cloudfront module's origin
    # helpers, in order, as {"op": "select" | "update" | "group", ...} (edge.origins applies them).
    origin_ops: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class GeneratedResponse:
    """Send this response instead of going on (a request trigger returned a response).

    From viewer-request it goes straight to the viewer, uncached; from origin-request it is
    cached and viewer-response still runs (§2.1, §2.2). `status_description` is "" if omitted.
    """

    status: int
    status_description: str
    headers: Headers
    body: bytes
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UpdatedResponse:
    """Continue with this response (origin-response or viewer-response result).

    `body` is a replacement body, or None to pass the origin's body through.
    """

    status: int
    status_description: str
    headers: Headers
    body: bytes | None = None
    warnings: tuple[str, ...] = ()


Outcome = UpdatedRequest | GeneratedResponse | UpdatedResponse


def decode_result(
    event: EdgeEvent,
    result: bytes | bytearray | memoryview | str,
    *,
    policy: ValidationPolicy = DEFAULT_POLICY,
) -> Outcome:
    """Decode and validate the JSON a function returned for `event`.

    Request triggers: a result with `status` is a generated response, otherwise the request.
    Response triggers: the response. Raises LambdaValidationError on any §2.6 violation.
    """
    try:
        obj = orjson.loads(result)
    except orjson.JSONDecodeError:
        raise LambdaValidationError(
            "json-unparsable",
            f"{event.trigger} result: return a JSON-serialisable object.",
            cloudfront_message=NOT_PARSABLE,
        ) from None
    if not isinstance(obj, dict):
        raise LambdaValidationError(
            "json-not-object",
            f"{event.trigger} result is {_json_kind(obj)}: return the "
            f"{'request or a response' if event.trigger.is_request else 'response'} object.",
            cloudfront_message=NOT_OBJECT,
        )
    trigger = event.trigger
    if "Records" in obj:
        part = "request" if trigger.is_request else "response"
        fail(
            "wrong-kind",
            f"{trigger} result is the whole event: return event['Records'][0]['cf']['{part}'].",
        )
    warnings: list[str] = []
    if trigger in REQUEST_TRIGGERS:
        if "status" in obj:
            return _decode_generated(obj, event, policy, warnings)
        return _decode_request(obj, event, policy, warnings)
    return _decode_response(obj, event, policy, warnings)


def _json_kind(value: object) -> str:
    if value is None:
        return "null (did the handler return nothing?)"
    return {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


# -- requests --------------------------------------------------------------------------------


def _decode_request(
    obj: dict[str, Any], event: EdgeEvent, policy: ValidationPolicy, warnings: list[str]
) -> UpdatedRequest:
    trigger = event.trigger
    shown: dict[str, Any] = event.record["request"]
    for name in _REQUEST_FIELDS:
        if name not in obj:
            fail(
                "missing-field",
                f"{trigger} result has no request '{name}': return the request object you "
                "received, modified, or a response with a 'status'.",
            )
    for name in ("clientIp", "method"):
        if obj[name] != shown[name]:
            fail(
                "read-only-field", f"{trigger} result changed request '{name}', which is read-only."
            )
    uri, querystring = obj["uri"], obj["querystring"]
    uri_changed = uri != shown["uri"]
    query_changed = querystring != shown["querystring"]
    if uri_changed:
        _check_uri(uri, trigger)
    if query_changed:
        _check_querystring(querystring, trigger)
    if (uri_changed or query_changed) and len(uri) + len(querystring) >= _MAX_URL_CHARS:
        # §3.4: URI plus query string must stay below 8,192 characters.
        fail(
            "url-too-long",
            f"{trigger} result: uri plus querystring is {len(uri) + len(querystring)} "
            f"characters; it must be less than {_MAX_URL_CHARS}.",
        )

    raw_headers = obj["headers"]
    shown_headers: ShownHeaders = shown["headers"]
    headers_changed = raw_headers != shown_headers
    if headers_changed:
        headers = decode_header_map(
            raw_headers, "request.headers", trigger, warnings, shown=shown_headers
        )
        check_read_only(
            raw_headers, shown_headers, policy.read_only_headers.get(trigger, frozenset()), trigger
        )
        if (
            trigger is EventType.VIEWER_REQUEST
            and raw_headers.get(_VIEWER_COUNTRY)
            and _VIEWER_COUNTRY not in shown_headers
        ):
            # §3.3: CloudFront adds it after viewer-request; a function may not.
            fail(
                "viewer-country-added",
                "viewer-request result adds CloudFront-Viewer-Country, which only CloudFront "
                "may add: remove it.",
            )
    else:
        headers = shown_pairs(shown_headers)

    body = _decode_request_body(obj.get("body"), event, policy, warnings)
    origin: Origin | None = None
    if trigger is EventType.ORIGIN_REQUEST:
        origin = decode_request_origin(
            obj.get("origin"), shown["origin"], headers, headers_changed, warnings
        )
    return UpdatedRequest(
        uri=uri,
        querystring=querystring,
        headers=headers,
        body=body,
        origin=origin,
        warnings=tuple(warnings),
    )


def _check_uri(uri: object, trigger: EventType) -> None:
    if not isinstance(uri, str):
        fail("uri-invalid", f"{trigger} result: 'uri' must be a string.")
    if not uri.startswith("/"):
        fail("uri-invalid", f"{trigger} result: 'uri' {uri[:80]!r} must start with '/'.")
    if _BAD_URI.search(uri):
        fail(
            "uri-invalid",
            f"{trigger} result: 'uri' holds a space or control character; percent-encode it.",
        )


def _check_querystring(querystring: object, trigger: EventType) -> None:
    if not isinstance(querystring, str):
        fail("querystring-invalid", f"{trigger} result: 'querystring' must be a string.")
    if _BAD_QUERY.search(querystring):
        fail(
            "querystring-invalid",
            f"{trigger} result: 'querystring' holds a space, control character or '#'; "
            "percent-encode it (and leave out the leading '?').",
        )


def _decode_request_body(
    raw: object, event: EdgeEvent, policy: ValidationPolicy, warnings: list[str]
) -> bytes | None:
    trigger = event.trigger
    if raw is None:
        return None
    if not event.include_body:
        warnings.append(
            f"{trigger} result sets request.body, but include-body is off for this "
            "association: the body was not replaced."
        )
        return None
    if not isinstance(raw, dict):
        fail("body-invalid", f"{trigger} result: request.body must be an object.")
    action = raw.get("action", "read-only")
    if action == "read-only":
        # §1.4: CloudFront ignores data/encoding and sends the original body.
        return None
    if action != "replace":
        fail(
            "body-invalid",
            f"{trigger} result: request.body.action {action!r} must be 'read-only' or 'replace'.",
        )
    data = raw.get("data")
    if not isinstance(data, str):
        fail("body-invalid", f"{trigger} result: request.body.data must be a string.")
    limit = policy.body_replace_limit_bytes[trigger]
    encoding = raw.get("encoding", "base64")
    if encoding == "text":
        body = data.encode("utf-8")
        if len(body) > limit:
            # §1.4: CloudFront truncates a replacement body at the limit; it does not reject it.
            warnings.append(
                f"{trigger} result: the replacement body is {len(body)} bytes of text; "
                f"CloudFront truncates it at {limit} bytes, and so did the edge."
            )
            body = body[:limit]
        return body
    if encoding != "base64":
        fail(
            "body-invalid",
            f"{trigger} result: request.body.encoding {encoding!r} must be 'base64' or 'text'.",
        )
    # §1.4: AWS states the base64 limits as 53.2 KB / 1.33 MB, i.e. the text limits encoded.
    b64_limit = (limit + 2) // 3 * 4
    decoded = _b64decode(data, "request.body.data", trigger)
    if len(data) > b64_limit:
        warnings.append(
            f"{trigger} result: the replacement body is {len(data)} characters of base64; "
            f"CloudFront truncates it at {b64_limit}, and so did the edge."
        )
        decoded = decoded[:limit]
    return decoded


# -- responses -------------------------------------------------------------------------------


def _parse_status(raw: object, trigger: EventType, warnings: list[str]) -> int:
    if isinstance(raw, str) and _STATUS.fullmatch(raw):
        status = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        # §2.5 decision: AWS documents a string; accept a number but say so.
        warnings.append(f'{trigger} result: status is the number {raw}; AWS documents "{raw}".')
        status = raw
    else:
        fail(
            "status-invalid",
            f'{trigger} result: status {raw!r} must be a string of three digits, e.g. "200".',
        )
    if not 200 <= status <= 599:
        fail("status-invalid", f"{trigger} result: status {status} must be within 200-599.")
    return status


def _status_description(obj: dict[str, Any], trigger: EventType) -> str:
    description = obj.get("statusDescription", "")
    if not isinstance(description, str):
        fail("field-type", f"{trigger} result: statusDescription must be a string.")
    return description


def _decode_response_body(obj: dict[str, Any], trigger: EventType) -> bytes | None:
    raw = obj.get("body")
    if raw is None:
        return None
    if not isinstance(raw, str):
        fail("body-invalid", f"{trigger} result: body must be a string.")
    encoding = obj.get("bodyEncoding", "text")
    if encoding == "text":
        return raw.encode("utf-8")
    if encoding == "base64":
        return _b64decode(raw, "body", trigger)
    fail("body-invalid", f"{trigger} result: bodyEncoding {encoding!r} must be 'text' or 'base64'.")


def _check_size(
    headers: Headers, body: bytes, trigger: EventType, policy: ValidationPolicy
) -> None:
    # §3.5 decision: count what goes to the viewer, decoded body plus `Name: value\r\n` lines.
    limit = policy.result_size_limit_bytes[trigger]
    size = len(body)
    if size <= limit:
        size += sum(len(name) + len(value.encode("utf-8")) + 4 for name, value in headers)
    if size > limit:
        fail(
            "response-too-large",
            f"{trigger} result: the response is {size} bytes (body plus headers); the limit "
            f"is {limit}.",
        )


def _decode_generated(
    obj: dict[str, Any], event: EdgeEvent, policy: ValidationPolicy, warnings: list[str]
) -> GeneratedResponse:
    trigger = event.trigger
    status = _parse_status(obj["status"], trigger, warnings)
    description = _status_description(obj, trigger)
    headers = decode_header_map(obj.get("headers", {}), "headers", trigger, warnings)
    body = _decode_response_body(obj, trigger) or b""
    if trigger is EventType.VIEWER_REQUEST and status == 204 and body:
        # §2.5: CloudFront applies "no body with 204" strictly to viewer-request responses.
        fail("no-body-with-204", "viewer-request result: a 204 response may not have a body.")
    _check_size(headers, body, trigger, policy)
    return GeneratedResponse(status, description, headers, body, tuple(warnings))


def _decode_response(
    obj: dict[str, Any], event: EdgeEvent, policy: ValidationPolicy, warnings: list[str]
) -> UpdatedResponse:
    trigger = event.trigger
    original = event.response
    assert original is not None  # build_event guarantees it for response triggers
    if "status" not in obj:
        if "uri" in obj or "clientIp" in obj:
            fail(
                "wrong-kind",
                f"{trigger} result is a request: return event['Records'][0]['cf']['response'].",
            )
        fail("missing-field", f"{trigger} result has no 'status': return the response object.")
    if "headers" not in obj:
        fail("missing-field", f"{trigger} result has no 'headers': return the response object.")
    status = _parse_status(obj["status"], trigger, warnings)
    description = _status_description(obj, trigger)
    if trigger is EventType.VIEWER_RESPONSE and status != original.status:
        # §2.4 decision: viewer-response may not change the status; keep it and warn.
        if policy.strict_viewer_response_status:
            fail(
                "status-changed",
                f"viewer-response result changes the status {original.status} -> {status}; "
                "a viewer-response function cannot change it (use origin-response).",
            )
        warnings.append(
            f"viewer-response result changes the status {original.status} -> {status}; "
            "ignored, viewer-response cannot change the status."
        )
        status, description = original.status, original.status_description

    shown_headers: ShownHeaders = event.record["response"]["headers"]
    raw_headers = obj["headers"]
    if raw_headers == shown_headers:
        headers = shown_pairs(shown_headers)
    else:
        headers = decode_header_map(
            raw_headers, "response.headers", trigger, warnings, shown=shown_headers
        )
        check_read_only(
            raw_headers, shown_headers, policy.read_only_headers.get(trigger, frozenset()), trigger
        )

    body = _decode_response_body(obj, trigger)
    if body is not None:
        if trigger is EventType.VIEWER_RESPONSE:
            # §2.4 decision: an extension; AWS documents body replacement for origin-response.
            warnings.append(
                "viewer-response result replaces the body: AWS documents this for "
                "origin-response only."
            )
        _check_size(headers, body, trigger, policy)
    return UpdatedResponse(status, description, headers, body, tuple(warnings))


def _b64decode(data: str, where: str, trigger: EventType) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        fail("body-base64", f"{trigger} result: {where} is not valid base64.")
