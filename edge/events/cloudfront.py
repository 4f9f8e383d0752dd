"""Lambda@Edge events: the request/response as the pipeline knows it -> the JSON a function gets.

Pure: no I/O, no clock. `build_event` makes the one-record event AWS sends for each of the four
triggers (lambda-edge-spec §1, presence matrix §1.7) and keeps what the result decoder
(`edge.events.cloudfront_result`) needs to compare the function's answer with what it was shown.
`sample_event` makes a ready-made valid event for tests and the `edge events` command;
`event_from_document` reads an event a function was given back (`edge invoke`'s event file).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from edge.events.cloudfront_rules import (
    INCLUDE_BODY_LIMIT_BYTES,
    ORIGIN_TRIGGERS,
    REQUEST_TRIGGERS,
    EventType,
    canonical_header_name,
    is_disallowed_header,
)

__all__ = [
    "CustomOrigin",
    "EdgeEvent",
    "EventConfig",
    "Headers",
    "Origin",
    "Request",
    "Response",
    "S3Origin",
    "build_event",
    "event_from_document",
    "header_map",
    "origin_document",
    "sample_event",
]

Headers = tuple[tuple[str, str], ...]
"""Header lines in order, as (name, value) str pairs; a repeated header is several pairs."""

HeaderMap = dict[str, list[dict[str, str]]]


@dataclass(frozen=True, slots=True)
class EventConfig:
    """The distribution-level facts of `config` (§1.1); the trigger supplies `eventType`.

    `request_id` must be the same for all four events of one viewer request (it is also the
    `X-Amz-Cf-Id` response header).
    """

    distribution_domain_name: str
    distribution_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class CustomOrigin:
    """`request.origin.custom` (§1.5): an HTTP(S) origin. Timeouts are whole seconds."""

    domain_name: str
    port: int = 443
    protocol: Literal["http", "https"] = "https"
    path: str = ""
    read_timeout_seconds: int = 30
    keepalive_timeout_seconds: int = 5
    ssl_protocols: tuple[str, ...] = ("TLSv1.2",)
    custom_headers: Headers = ()


@dataclass(frozen=True, slots=True)
class S3Origin:
    """`request.origin.s3` (§1.5): an S3-style origin (here: a local directory or bucket)."""

    domain_name: str
    region: str = ""
    auth_method: Literal["origin-access-identity", "none"] = "none"
    path: str = ""
    custom_headers: Headers = ()


Origin = CustomOrigin | S3Origin


@dataclass(frozen=True, slots=True)
class Request:
    """The request as the pipeline knows it at a trigger.

    - `client_ip`: the TCP peer. `method`: as received.
    - `uri`: the path only, percent-encoded as received, starting with `/`.
    - `querystring`: the raw query without `?`; `""` when there is none.
    - `headers`: in order. Lower-case names (what ASGI servers hand over) are shown to the
      function with CloudFront's generated casing (`user-agent` -> `User-Agent`); a name with
      any upper-case letter is taken as the wire casing and shown as is.
    - `body`: the request body, or as much of it as the caller read; `body_truncated` says
      more bytes followed. Only used when the trigger association has include-body.
    - `origin`: required for origin-request and origin-response, ignored otherwise.
    """

    client_ip: str
    method: str
    uri: str
    querystring: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    body_truncated: bool = False
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """The response at origin-response / viewer-response: status, reason phrase, headers."""

    status: int
    status_description: str
    headers: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True, slots=True, eq=False)
class EdgeEvent:
    """A built event: `payload` is the JSON to send; the rest is what the decoder compares to.

    `document` is the event as a dict (treat it as read-only: the decoder compares the
    function's answer against the `request`/`response` maps inside it).
    """

    trigger: EventType
    document: dict[str, Any]
    payload: bytes
    request: Request
    response: Response | None
    include_body: bool
    record: dict[str, Any] = field(repr=False)


# Input name -> (map key, shown key), or None for a hidden header: one dict lookup per header
# line on the hot path. Names come from clients, so the cache stops growing at a bound.
_SHOWN_NAMES: dict[str, tuple[str, str] | None] = {}
_SHOWN_NAMES_MAX = 4096


def _shown_name(name: str, canonical_keys: bool) -> tuple[str, str] | None:
    lower = name.lower()
    if is_disallowed_header(lower):
        return None
    if not canonical_keys or name != lower:
        return (lower, name)
    return (lower, _CLOUDFRONT_KEYS.get(lower) or canonical_header_name(lower))


# The headers CloudFront adds itself, as its events spell them (§3.3).
_CLOUDFRONT_KEYS: dict[str, str] = {
    "cloudfront-forwarded-proto": "CloudFront-Forwarded-Proto",
    "cloudfront-is-desktop-viewer": "CloudFront-Is-Desktop-Viewer",
    "cloudfront-is-mobile-viewer": "CloudFront-Is-Mobile-Viewer",
    "cloudfront-is-smarttv-viewer": "CloudFront-Is-SmartTV-Viewer",
    "cloudfront-is-tablet-viewer": "CloudFront-Is-Tablet-Viewer",
    "cloudfront-viewer-country": "CloudFront-Viewer-Country",
}


def header_map(headers: Sequence[tuple[str, str]], *, canonical_keys: bool = True) -> HeaderMap:
    """Header pairs -> the Lambda@Edge map `{lower name: [{key, value}, ...]}` (§1.3).

    Disallowed headers (§3.1) are left out: functions never see them. With `canonical_keys`,
    all-lower-case names get CloudFront's generated casing; otherwise names are kept verbatim.
    """
    out: HeaderMap = {}
    cache = _SHOWN_NAMES if canonical_keys else {}
    for name, value in headers:
        try:
            shown = cache[name]
        except KeyError:
            shown = _shown_name(name, canonical_keys)
            if len(cache) < _SHOWN_NAMES_MAX:
                cache[name] = shown
        if shown is None:
            continue
        lower, key = shown
        entries = out.get(lower)
        if entries is None:
            out[lower] = [{"key": key, "value": value}]
        else:
            entries.append({"key": key, "value": value})
    return out


def _custom_header_map(headers: Headers) -> HeaderMap:
    # Configured origin custom headers are shown as configured: no §3.1 filtering here.
    out: HeaderMap = {}
    for name, value in headers:
        lower = name.lower()
        key = canonical_header_name(lower) if name == lower else name
        out.setdefault(lower, []).append({"key": key, "value": value})
    return out


def origin_document(origin: Origin) -> dict[str, Any]:
    """An origin description -> `request.origin` in AWS's shape (§1.5)."""
    if isinstance(origin, CustomOrigin):
        return {
            "custom": {
                "customHeaders": _custom_header_map(origin.custom_headers),
                "domainName": origin.domain_name,
                "keepaliveTimeout": origin.keepalive_timeout_seconds,
                "path": origin.path,
                "port": origin.port,
                "protocol": origin.protocol,
                "readTimeout": origin.read_timeout_seconds,
                "sslProtocols": list(origin.ssl_protocols),
            }
        }
    return {
        "s3": {
            "authMethod": origin.auth_method,
            "customHeaders": _custom_header_map(origin.custom_headers),
            "domainName": origin.domain_name,
            "path": origin.path,
            "region": origin.region,
        }
    }


def _body_document(request: Request, trigger: EventType) -> dict[str, Any]:
    # §1.4: the exposed copy is cut at 40 KB / 1 MB; `action: read-only` is the default, and
    # CloudFront always hands the body over base64-encoded.
    limit = INCLUDE_BODY_LIMIT_BYTES[trigger]
    body = request.body
    truncated = request.body_truncated or len(body) > limit
    if len(body) > limit:
        body = body[:limit]
    return {
        "inputTruncated": truncated,
        "action": "read-only",
        "encoding": "base64",
        "data": base64.b64encode(body).decode("ascii"),
    }


# Plain str values for the document (a StrEnum hashes as its value, so the lookup is cheap).
_EVENT_TYPE_NAMES: dict[str, str] = {member: member.value for member in EventType}


def build_event(
    trigger: EventType,
    config: EventConfig,
    request: Request,
    response: Response | None = None,
    *,
    include_body: bool = False,
    canonical_keys: bool = True,
) -> EdgeEvent:
    """Build the event for `trigger` exactly in AWS's shape and serialise it with orjson.

    Presence (§1.7): `request.origin` only in origin-request/origin-response, `response` only in
    the response triggers, `request.body` only with `include_body` on a request trigger (then
    present even for an empty body, with `data: ""`). `querystring` is always present.

    Raises ValueError for a call that AWS could not make: an origin trigger without
    `request.origin`, a response trigger without `response`, or include-body on a response
    trigger (CloudFront's API rejects that association).
    """
    request_doc: dict[str, Any] = {
        "clientIp": request.client_ip,
        "headers": header_map(request.headers, canonical_keys=canonical_keys),
        "method": request.method,
        "querystring": request.querystring,
        "uri": request.uri,
    }
    is_request = trigger in REQUEST_TRIGGERS
    if include_body:
        if not is_request:
            raise ValueError(f"include-body is only possible on request triggers, not {trigger}")
        request_doc["body"] = _body_document(request, trigger)
    if trigger in ORIGIN_TRIGGERS:
        if request.origin is None:
            raise ValueError(f"a {trigger} event needs request.origin")
        request_doc["origin"] = origin_document(request.origin)
    record: dict[str, Any] = {
        "config": {
            "distributionDomainName": config.distribution_domain_name,
            "distributionId": config.distribution_id,
            "eventType": _EVENT_TYPE_NAMES[trigger],
            "requestId": config.request_id,
        },
        "request": request_doc,
    }
    if not is_request:
        if response is None:
            raise ValueError(f"a {trigger} event needs a response")
        record["response"] = {
            "headers": header_map(response.headers, canonical_keys=canonical_keys),
            "status": str(response.status),
            "statusDescription": response.status_description,
        }
    document = {"Records": [{"cf": record}]}
    return EdgeEvent(
        trigger=trigger,
        document=document,
        payload=orjson.dumps(document),
        request=request,
        response=None if is_request else response,
        include_body=include_body,
        record=record,
    )


def event_from_document(document: Any) -> EdgeEvent:
    """An event as a function receives it (parsed JSON) -> the `EdgeEvent` that the result
    decoder compares the function's answer with, as if `build_event` had made it.

    Raises ValueError when `document` is not a Lambda@Edge event (one record whose
    `cf.config.eventType` names a trigger, with the request, and the response on response
    triggers).
    """
    try:
        record = document["Records"][0]["cf"]
        trigger = EventType(record["config"]["eventType"])
        shown_request = record["request"]
        if not isinstance(shown_request, dict):
            raise TypeError("request")
        shown_response = None if trigger in REQUEST_TRIGGERS else record["response"]
        response = None
        if shown_response is not None:
            response = Response(
                status=int(shown_response["status"]),
                status_description=str(shown_response.get("statusDescription", "")),
                headers=_pairs(shown_response.get("headers", {})),
            )
        request = Request(
            client_ip=str(shown_request.get("clientIp", "")),
            method=str(shown_request.get("method", "")),
            uri=str(shown_request.get("uri", "")),
            querystring=str(shown_request.get("querystring", "")),
            headers=_pairs(shown_request.get("headers", {})),
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise ValueError(
            "not a Lambda@Edge event: expected Records[0].cf with config.eventType "
            f"({', '.join(t.value for t in EventType)}), the request, and the response on "
            "response triggers"
        ) from None
    return EdgeEvent(
        trigger=trigger,
        document=document,
        payload=orjson.dumps(document),
        request=request,
        response=response,
        include_body="body" in shown_request,
        record=record,
    )


def _pairs(shown: Any) -> Headers:
    return tuple((entry["key"], entry["value"]) for entries in shown.values() for entry in entries)


# Values of AWS's documented sample events (reference events/*.json), so a sample made here looks
# like the ones in AWS's guide.
SAMPLE_CONFIG = EventConfig(
    distribution_domain_name="d111111abcdef8.cloudfront.net",
    distribution_id="EDFDVBD6EXAMPLE",
    request_id="4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==",
)
_SAMPLE_CLIENT_IP = "203.0.113.178"
_SAMPLE_ORIGIN = CustomOrigin(
    domain_name="example.org",
    port=443,
    protocol="https",
    path="",
    read_timeout_seconds=30,
    keepalive_timeout_seconds=5,
    ssl_protocols=("TLSv1", "TLSv1.1", "TLSv1.2"),
)
_VIEWER_HEADERS: Headers = (
    ("Host", "d111111abcdef8.cloudfront.net"),
    ("User-Agent", "curl/7.66.0"),
    ("Accept", "*/*"),
)
_ORIGIN_HEADERS: Headers = (
    ("X-Forwarded-For", _SAMPLE_CLIENT_IP),
    ("User-Agent", "Amazon CloudFront"),
    ("Via", "2.0 2afae0d44e2540f472c0635ab62c232b.cloudfront.net (CloudFront)"),
    ("Host", "example.org"),
)
_RESPONSE_HEADERS: Headers = (
    ("Date", "Mon, 13 Jan 2020 20:12:38 GMT"),
    ("Server", "ExampleCustomOriginServer"),
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Length", "9593"),
)


def _merge(defaults: Headers, overrides: Sequence[tuple[str, str]]) -> Headers:
    replaced = {name.lower() for name, _ in overrides}
    kept = tuple(pair for pair in defaults if pair[0].lower() not in replaced)
    return kept + tuple(overrides)


def sample_event(
    trigger: EventType,
    *,
    uri: str = "/",
    method: str = "GET",
    querystring: str = "",
    headers: Sequence[tuple[str, str]] = (),
    status: int = 200,
    status_description: str = "OK",
    response_headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    client_ip: str = _SAMPLE_CLIENT_IP,
    origin: Origin | None = None,
    config: EventConfig = SAMPLE_CONFIG,
) -> dict[str, Any]:
    """A valid event for `trigger`, like `sam local generate-event cloudfront ...` produces.

    Uses the distribution and request id of AWS's sample events and CloudFront-like default
    headers (viewer headers for viewer triggers; `X-Forwarded-For`, `Via`, `Host` of the origin
    for origin triggers). `headers`/`response_headers` replace defaults of the same name and add
    the rest. A `body` (request triggers only) turns on include-body.
    """
    defaults = _VIEWER_HEADERS if trigger.is_viewer else _ORIGIN_HEADERS
    chosen_origin = origin if origin is not None else _SAMPLE_ORIGIN
    if origin is not None and not trigger.is_viewer:
        # Follow AWS's examples: the origin request's Host names the origin.
        defaults = _merge(defaults, [("Host", origin.domain_name)])
    request = Request(
        client_ip=client_ip,
        method=method,
        uri=uri,
        querystring=querystring,
        headers=_merge(defaults, headers),
        body=body or b"",
        origin=chosen_origin,
    )
    response = None
    if not trigger.is_request:
        response = Response(status, status_description, _merge(_RESPONSE_HEADERS, response_headers))
    event = build_event(trigger, config, request, response, include_body=body is not None)
    return event.document
