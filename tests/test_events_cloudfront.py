"""Lambda@Edge events: building them in AWS's shape, and validating what functions return.

The expected events are AWS's documented samples (the Lambda@Edge event structure pages of the
CloudFront developer guide), written out here so the suite does not depend on files outside the
repository.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edge.events
from edge.events import (
    CustomOrigin,
    EdgeEvent,
    EventConfig,
    EventType,
    GeneratedResponse,
    LambdaValidationError,
    Request,
    Response,
    S3Origin,
    UpdatedRequest,
    UpdatedResponse,
    ValidationPolicy,
    build_event,
    decode_result,
    sample_event,
)
from edge.events.cloudfront_rules import canonical_header_name, is_disallowed_header

VR = EventType.VIEWER_REQUEST
OR = EventType.ORIGIN_REQUEST
ORS = EventType.ORIGIN_RESPONSE
VRS = EventType.VIEWER_RESPONSE

CONFIG = EventConfig(
    distribution_domain_name="d111111abcdef8.cloudfront.net",
    distribution_id="EDFDVBD6EXAMPLE",
    request_id="4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==",
)
KB = 1024
MB = 1024 * 1024


def _h(key: str, value: str) -> list[dict[str, str]]:
    return [{"key": key, "value": value}]


def _config(event_type: str) -> dict[str, str]:
    return {
        "distributionDomainName": "d111111abcdef8.cloudfront.net",
        "distributionId": "EDFDVBD6EXAMPLE",
        "eventType": event_type,
        "requestId": "4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==",
    }


# -- AWS's sample events (reference events/*.json) ------------------------------------------

VIEWER_HEADERS_DOC = {
    "host": _h("Host", "d111111abcdef8.cloudfront.net"),
    "user-agent": _h("User-Agent", "curl/7.66.0"),
    "accept": _h("accept", "*/*"),
}
ORIGIN_HEADERS_DOC = {
    "x-forwarded-for": _h("X-Forwarded-For", "203.0.113.178"),
    "user-agent": _h("User-Agent", "Amazon CloudFront"),
    "via": _h("Via", "2.0 2afae0d44e2540f472c0635ab62c232b.cloudfront.net (CloudFront)"),
    "host": _h("Host", "example.org"),
    "cache-control": _h("Cache-Control", "no-cache, cf-no-cache"),
}
CUSTOM_ORIGIN_DOC = {
    "custom": {
        "customHeaders": {},
        "domainName": "example.org",
        "keepaliveTimeout": 5,
        "path": "",
        "port": 443,
        "protocol": "https",
        "readTimeout": 30,
        "sslProtocols": ["TLSv1", "TLSv1.1", "TLSv1.2"],
    }
}
RESPONSE_HEADERS_DOC = {
    "access-control-allow-credentials": _h("Access-Control-Allow-Credentials", "true"),
    "access-control-allow-origin": _h("Access-Control-Allow-Origin", "*"),
    "date": _h("Date", "Mon, 13 Jan 2020 20:12:38 GMT"),
    "referrer-policy": _h("Referrer-Policy", "no-referrer-when-downgrade"),
    "server": _h("Server", "ExampleCustomOriginServer"),
    "x-content-type-options": _h("X-Content-Type-Options", "nosniff"),
    "x-frame-options": _h("X-Frame-Options", "DENY"),
    "x-xss-protection": _h("X-XSS-Protection", "1; mode=block"),
    "content-type": _h("Content-Type", "text/html; charset=utf-8"),
    "content-length": _h("Content-Length", "9593"),
}
SAMPLE_BODY = b'{"username":"Lambda@Edge","comment":"This is request body"}'


def _sample(event_type: str, request: dict[str, Any], response: Any = None) -> dict[str, Any]:
    record: dict[str, Any] = {"config": _config(event_type), "request": request}
    if response is not None:
        record["response"] = response
    return {"Records": [{"cf": record}]}


def _viewer_request_doc(**changes: Any) -> dict[str, Any]:
    request = {
        "clientIp": "203.0.113.178",
        "headers": VIEWER_HEADERS_DOC,
        "method": "GET",
        "querystring": "",
        "uri": "/",
    }
    return request | changes


AWS_VIEWER_REQUEST = _sample("viewer-request", _viewer_request_doc())
AWS_VIEWER_REQUEST_WITH_BODY = _sample(
    "viewer-request",
    _viewer_request_doc(
        body={
            "inputTruncated": False,
            "action": "read-only",
            "encoding": "base64",
            "data": "eyJ1c2VybmFtZSI6IkxhbWJkYUBFZGdlIiwiY29tbWVudCI6"
            "IlRoaXMgaXMgcmVxdWVzdCBib2R5In0=",
        },
        headers=VIEWER_HEADERS_DOC
        | {
            "content-type": _h("Content-Type", "application/json"),
            "content-length": _h("Content-Length", "59"),
        },
        method="POST",
        uri="/api/comments",
    ),
)
AWS_ORIGIN_REQUEST_CUSTOM = _sample(
    "origin-request",
    {
        "clientIp": "203.0.113.178",
        "headers": ORIGIN_HEADERS_DOC,
        "method": "GET",
        "origin": CUSTOM_ORIGIN_DOC,
        "querystring": "",
        "uri": "/",
    },
)
AWS_ORIGIN_REQUEST_S3 = _sample(
    "origin-request",
    {
        "clientIp": "203.0.113.178",
        "headers": {
            "x-forwarded-for": _h("X-Forwarded-For", "203.0.113.178"),
            "user-agent": _h("User-Agent", "Amazon CloudFront"),
            "via": _h("Via", "2.0 2afae0d44e2540f472c0635ab62c232b.cloudfront.net (CloudFront)"),
            "host": _h("Host", "awsexamplebucket.s3.eu-west-1.amazonaws.com"),
        },
        "method": "GET",
        "origin": {
            "s3": {
                "authMethod": "origin-access-identity",
                "customHeaders": {},
                "domainName": "awsexamplebucket.s3.eu-west-1.amazonaws.com",
                "path": "",
                "region": "eu-west-1",
            }
        },
        "querystring": "",
        "uri": "/images/picture.jpg",
    },
)
AWS_ORIGIN_RESPONSE = _sample(
    "origin-response",
    {
        "clientIp": "203.0.113.178",
        "headers": ORIGIN_HEADERS_DOC
        | {"via": _h("Via", "2.0 8f22423015641505b8c857a37450d6c0.cloudfront.net (CloudFront)")},
        "method": "GET",
        "origin": CUSTOM_ORIGIN_DOC,
        "querystring": "",
        "uri": "/",
    },
    {"headers": RESPONSE_HEADERS_DOC, "status": "200", "statusDescription": "OK"},
)
AWS_VIEWER_RESPONSE = _sample(
    "viewer-response",
    _viewer_request_doc(),
    {
        "headers": {
            "access-control-allow-credentials": _h("Access-Control-Allow-Credentials", "true"),
            "access-control-allow-origin": _h("Access-Control-Allow-Origin", "*"),
            "date": _h("Date", "Mon, 13 Jan 2020 20:14:56 GMT"),
            "referrer-policy": _h("Referrer-Policy", "no-referrer-when-downgrade"),
            "server": _h("Server", "ExampleCustomOriginServer"),
            "x-content-type-options": _h("X-Content-Type-Options", "nosniff"),
            "x-frame-options": _h("X-Frame-Options", "DENY"),
            "x-xss-protection": _h("X-XSS-Protection", "1; mode=block"),
            "age": _h("Age", "2402"),
            "content-type": _h("Content-Type", "text/html; charset=utf-8"),
            "content-length": _h("Content-Length", "9593"),
        },
        "status": "200",
        "statusDescription": "OK",
    },
)
AWS_GENERATED_RESPONSE: dict[str, Any] = {
    "status": "200",
    "statusDescription": "OK",
    "headers": {
        "cache-control": _h("Cache-Control", "max-age=100"),
        "content-type": _h("Content-Type", "text/html"),
    },
    "body": '\n<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta charset="utf-8">\n'
    "    <title>Simple Lambda@Edge Static Content Response</title>\n  </head>\n  <body>\n"
    "    <p>Hello from Lambda@Edge!</p>\n  </body>\n</html>\n",
    "bodyEncoding": "text",
}


def _pairs(header_doc: dict[str, list[dict[str, str]]]) -> list[tuple[str, str]]:
    return [(e["key"], e["value"]) for entries in header_doc.values() for e in entries]


SAMPLE_ORIGIN = CustomOrigin(
    domain_name="example.org",
    port=443,
    protocol="https",
    path="",
    read_timeout_seconds=30,
    keepalive_timeout_seconds=5,
    ssl_protocols=("TLSv1", "TLSv1.1", "TLSv1.2"),
)
S3_ORIGIN = S3Origin(
    domain_name="awsexamplebucket.s3.eu-west-1.amazonaws.com",
    region="eu-west-1",
    auth_method="origin-access-identity",
)


def _viewer_request(**changes: Any) -> Request:
    fields: dict[str, Any] = {
        "client_ip": "203.0.113.178",
        "method": "GET",
        "uri": "/",
        "querystring": "",
        "headers": _pairs(VIEWER_HEADERS_DOC),
    }
    return Request(**(fields | changes))


def _origin_request(**changes: Any) -> Request:
    fields: dict[str, Any] = {
        "client_ip": "203.0.113.178",
        "method": "GET",
        "uri": "/",
        "headers": _pairs(ORIGIN_HEADERS_DOC),
        "origin": SAMPLE_ORIGIN,
    }
    return Request(**(fields | changes))


def _response(headers_doc: dict[str, list[dict[str, str]]]) -> Response:
    return Response(200, "OK", _pairs(headers_doc))


SAMPLE_CASES = [
    pytest.param(
        lambda: build_event(VR, CONFIG, _viewer_request(), canonical_keys=False),
        AWS_VIEWER_REQUEST,
        id="viewer-request.json",
    ),
    pytest.param(
        lambda: build_event(
            VR,
            CONFIG,
            _viewer_request(
                method="POST",
                uri="/api/comments",
                headers=[
                    *_pairs(VIEWER_HEADERS_DOC),
                    ("Content-Type", "application/json"),
                    ("Content-Length", "59"),
                ],
                body=SAMPLE_BODY,
            ),
            include_body=True,
            canonical_keys=False,
        ),
        AWS_VIEWER_REQUEST_WITH_BODY,
        id="viewer-request-with-body.json",
    ),
    pytest.param(
        lambda: build_event(OR, CONFIG, _origin_request()),
        AWS_ORIGIN_REQUEST_CUSTOM,
        id="origin-request-custom.json",
    ),
    pytest.param(
        lambda: build_event(
            OR,
            CONFIG,
            Request(
                client_ip="203.0.113.178",
                method="GET",
                uri="/images/picture.jpg",
                headers=_pairs(AWS_ORIGIN_REQUEST_S3["Records"][0]["cf"]["request"]["headers"]),
                origin=S3_ORIGIN,
            ),
        ),
        AWS_ORIGIN_REQUEST_S3,
        id="origin-request-s3.json",
    ),
    pytest.param(
        lambda: build_event(
            ORS,
            CONFIG,
            _origin_request(
                headers=_pairs(AWS_ORIGIN_RESPONSE["Records"][0]["cf"]["request"]["headers"])
            ),
            _response(RESPONSE_HEADERS_DOC),
        ),
        AWS_ORIGIN_RESPONSE,
        id="origin-response.json",
    ),
    pytest.param(
        lambda: build_event(
            VRS,
            CONFIG,
            _viewer_request(),
            _response(AWS_VIEWER_RESPONSE["Records"][0]["cf"]["response"]["headers"]),
            canonical_keys=False,
        ),
        AWS_VIEWER_RESPONSE,
        id="viewer-response.json",
    ),
]


@pytest.mark.parametrize(("build", "expected"), SAMPLE_CASES)
def test_build_event_reproduces_aws_sample(
    build: Callable[[], EdgeEvent], expected: dict[str, Any]
) -> None:
    event = build()
    assert orjson.loads(event.payload) == expected
    assert event.document == expected


@pytest.mark.parametrize(
    ("trigger", "request_keys", "has_response"),
    [
        pytest.param(VR, {"clientIp", "headers", "method", "querystring", "uri"}, False, id="VR"),
        pytest.param(
            OR, {"clientIp", "headers", "method", "querystring", "uri", "origin"}, False, id="OR"
        ),
        pytest.param(
            ORS, {"clientIp", "headers", "method", "querystring", "uri", "origin"}, True, id="ORS"
        ),
        pytest.param(VRS, {"clientIp", "headers", "method", "querystring", "uri"}, True, id="VRS"),
    ],
)
def test_presence_matrix_1_7(
    trigger: EventType, request_keys: set[str], has_response: bool
) -> None:
    request = _origin_request(querystring="")
    response = Response(404, "Not Found", [("content-type", "text/plain")])
    event = build_event(trigger, CONFIG, request, response)
    record = orjson.loads(event.payload)["Records"][0]["cf"]
    assert set(record["request"]) == request_keys
    assert record["request"]["querystring"] == ""
    assert ("response" in record) is has_response
    assert record["config"]["eventType"] == trigger.value
    if has_response:
        assert record["response"] == {
            "headers": {"content-type": [{"key": "Content-Type", "value": "text/plain"}]},
            "status": "404",
            "statusDescription": "Not Found",
        }


@pytest.mark.parametrize(
    ("name", "key"),
    [
        pytest.param("user-agent", "User-Agent", id="lower-case-gets-canonical-casing"),
        pytest.param("x-custom-id", "X-Custom-Id", id="every-hyphen-part-capitalised-1.3"),
        pytest.param("X-XSS-Protection", "X-XSS-Protection", id="wire-casing-kept"),
        pytest.param("accept", "Accept", id="single-part"),
    ],
)
def test_header_key_casing(name: str, key: str) -> None:
    event = build_event(VR, CONFIG, _viewer_request(headers=[(name, "v")]))
    assert event.document["Records"][0]["cf"]["request"]["headers"] == {
        name.lower(): [{"key": key, "value": "v"}]
    }


def test_repeated_headers_become_entries_of_one_name_1_3() -> None:
    headers = [("set-cookie", "a=1"), ("x-other", "o"), ("Set-Cookie", "b=2")]
    event = build_event(VRS, CONFIG, _viewer_request(), Response(200, "OK", headers))
    assert event.document["Records"][0]["cf"]["response"]["headers"] == {
        "set-cookie": [
            {"key": "Set-Cookie", "value": "a=1"},
            {"key": "Set-Cookie", "value": "b=2"},
        ],
        "x-other": [{"key": "X-Other", "value": "o"}],
    }


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("connection", id="connection"),
        pytest.param("X-Forwarded-Proto", id="x-forwarded-proto"),
        pytest.param("x-amz-cf-id", id="x-amz-cf-star-prefix"),
        pytest.param("x-edge-location", id="x-edge-star-prefix"),
        pytest.param("x-real-ip", id="x-real-ip"),
    ],
)
def test_disallowed_headers_are_hidden_from_functions_3_1(name: str) -> None:
    request = _viewer_request(headers=[("host", "h"), (name, "secret")])
    event = build_event(VR, CONFIG, request)
    assert list(event.document["Records"][0]["cf"]["request"]["headers"]) == ["host"]
    assert b"secret" not in event.payload


@pytest.mark.parametrize(
    ("trigger", "body", "body_truncated", "exposed", "truncated"),
    [
        pytest.param(VR, b"x" * (40 * KB), False, 40 * KB, False, id="viewer-40KB-fits"),
        pytest.param(VR, b"x" * (40 * KB + 1), False, 40 * KB, True, id="viewer-cut-at-40KB"),
        pytest.param(OR, b"x" * (40 * KB + 1), False, 40 * KB + 1, False, id="origin-over-40KB"),
        pytest.param(OR, b"x" * (MB + 1), False, MB, True, id="origin-cut-at-1MB"),
        pytest.param(VR, b"abc", True, 3, True, id="caller-read-a-prefix"),
        pytest.param(VR, b"", False, 0, False, id="no-body-data-empty-1.4"),
    ],
)
def test_include_body_exposure_and_truncation_1_4(
    trigger: EventType, body: bytes, body_truncated: bool, exposed: int, truncated: bool
) -> None:
    request = _origin_request(method="POST", body=body, body_truncated=body_truncated)
    event = build_event(trigger, CONFIG, request, include_body=True)
    doc = orjson.loads(event.payload)["Records"][0]["cf"]["request"]["body"]
    assert doc["inputTruncated"] is truncated
    assert doc["action"] == "read-only"
    assert doc["encoding"] == "base64"
    assert base64.b64decode(doc["data"]) == body[:exposed]


def test_no_body_object_without_include_body() -> None:
    event = build_event(VR, CONFIG, _viewer_request(method="POST", body=b"data"))
    assert "body" not in event.document["Records"][0]["cf"]["request"]


@pytest.mark.parametrize(
    ("trigger", "edge_request", "response", "include_body", "message"),
    [
        pytest.param(OR, _viewer_request(), None, False, "origin", id="origin-trigger-no-origin"),
        pytest.param(
            VRS, _viewer_request(), None, False, "response", id="response-trigger-no-resp"
        ),
        pytest.param(
            ORS, _origin_request(), Response(200, "OK"), True, "include-body", id="body-on-response"
        ),
    ],
)
def test_build_event_refuses_impossible_events(
    trigger: EventType,
    edge_request: Request,
    response: Response | None,
    include_body: bool,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        build_event(trigger, CONFIG, edge_request, response, include_body=include_body)


# -- result validation ----------------------------------------------------------------------


def _event(trigger: EventType, *, include_body: bool = False, **request: Any) -> EdgeEvent:
    if trigger in (VR, VRS):
        req = _viewer_request(
            headers=[
                *_pairs(VIEWER_HEADERS_DOC),
                ("content-length", "3"),
                ("via", "1.1 proxy"),
            ],
            **request,
        )
    else:
        req = _origin_request(
            headers=[*_pairs(ORIGIN_HEADERS_DOC), ("if-none-match", '"abc"')], **request
        )
    response = Response(
        200,
        "OK",
        [*_pairs(RESPONSE_HEADERS_DOC), ("transfer-encoding", "chunked"), ("via", "1.1 o")],
    )
    return build_event(trigger, CONFIG, req, response, include_body=include_body)


Mutation = Callable[[dict[str, Any]], Any]


class _Replacement:
    """What a mutation returns to make the function return something else entirely."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _returned(event: EdgeEvent, mutate: Mutation) -> bytes:
    """What a function returns: the request (request triggers) or response, changed by mutate."""
    part = "request" if event.trigger in (VR, OR) else "response"
    obj = copy.deepcopy(event.document["Records"][0]["cf"][part])
    replaced = mutate(obj)
    return orjson.dumps(replaced.value if isinstance(replaced, _Replacement) else obj)


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting obj[a][b]... = value for path 'a.b...'."""

    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for name in parents:
            obj = obj[name]
        obj[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for name in parents:
            obj = obj[name]
        del obj[last]

    return mutate


def _update(**fields: Any) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        obj.update(fields)

    return mutate


def _replace(value: Any) -> Mutation:
    return lambda obj: _Replacement(value)


def _generated(**fields: Any) -> Mutation:
    response: dict[str, Any] = {"status": "200", "statusDescription": "OK", "headers": {}}
    return _replace(response | fields)


def _custom_origin(**fields: Any) -> Mutation:
    return _set("origin", {"custom": CUSTOM_ORIGIN_DOC["custom"] | fields})


def _s3_origin(**fields: Any) -> Mutation:
    s3 = {
        "authMethod": "none",
        "customHeaders": {},
        "domainName": "bucket.s3.eu-west-1.amazonaws.com",
        "path": "",
        "region": "eu-west-1",
    }
    return _set("origin", {"s3": s3 | fields})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# One row per rule: the trigger, the mutation the function makes, the rule id it breaks.
FAILING = [
    pytest.param(VR, _replace(None), "json-not-object", id="2.6.1-null-result"),
    pytest.param(VR, _replace([1]), "json-not-object", id="2.6.1-array-result"),
    pytest.param(ORS, _replace("ok"), "json-not-object", id="2.6.1-string-result"),
    pytest.param(VR, _replace({"Records": []}), "wrong-kind", id="2.6.3-whole-event-returned"),
    pytest.param(ORS, _replace({"uri": "/", "clientIp": "1"}), "wrong-kind", id="2.6.3-request"),
    pytest.param(VR, _delete("uri"), "missing-field", id="2.6.2-request-without-uri"),
    pytest.param(OR, _delete("headers"), "missing-field", id="2.6.2-request-without-headers"),
    pytest.param(VRS, _delete("status"), "missing-field", id="2.6.2-response-without-status"),
    pytest.param(ORS, _delete("headers"), "missing-field", id="2.6.2-response-without-headers"),
    pytest.param(VR, _set("method", "POST"), "read-only-field", id="1.2-method-read-only"),
    pytest.param(OR, _set("clientIp", "1.1.1.1"), "read-only-field", id="1.2-clientip-read-only"),
    pytest.param(VR, _set("headers", []), "header-map", id="2.6.6-headers-not-object"),
    pytest.param(VR, _set("headers.x-a", {"value": "1"}), "header-map", id="2.6.6-not-a-list"),
    pytest.param(VR, _set("headers.x-a", ["1"]), "header-map", id="2.6.6-entry-not-object"),
    pytest.param(
        VR, _set("headers.X-A", [{"value": "1"}]), "header-key-case", id="1.3-map-key-lower"
    ),
    pytest.param(
        ORS, _set("headers.x a", [{"value": "1"}]), "header-name-invalid", id="name-not-token"
    ),
    pytest.param(
        VR,
        _set("headers.x-a", [{"key": "X-A\r\nEvil: 1", "value": "1"}]),
        "header-name-invalid",
        id="crlf-in-key",
    ),
    pytest.param(
        VR, _set("headers.x-a", [{"key": "X-A", "value": 1}]), "header-value-type", id="1.3-int"
    ),
    pytest.param(
        VRS, _set("headers.x-a", [{"key": "X-A"}]), "header-value-type", id="1.3-value-missing"
    ),
    pytest.param(
        VR,
        _set("headers.x-a", [{"key": "X-A", "value": "a\r\nSet-Cookie: x"}]),
        "header-value-invalid",
        id="crlf-in-value",
    ),
    pytest.param(
        ORS,
        _set("headers.x-a", [{"key": "X-A", "value": "a\x00b"}]),
        "header-value-invalid",
        id="nul-in-value",
    ),
    pytest.param(
        VR,
        _set("headers.x-forwarded-proto", [{"value": "https"}]),
        "disallowed-header",
        id="3.1-x-forwarded-proto-added",
    ),
    pytest.param(
        OR,
        _set("headers.x-amz-cf-pop", [{"value": "x"}]),
        "disallowed-header",
        id="3.1-x-amz-cf-star-prefix",
    ),
    pytest.param(
        ORS, _set("headers.x-cache", [{"value": "Hit"}]), "disallowed-header", id="3.1-x-cache"
    ),
    pytest.param(
        VRS,
        _set("headers.x-edge-origin", [{"value": "x"}]),
        "disallowed-header",
        id="3.1-x-edge-star-in-viewer-response",
    ),
    pytest.param(
        VR,
        _set("headers.cloudfront-viewer-country", [{"value": "DE"}]),
        "viewer-country-added",
        id="3.3-viewer-country-in-viewer-request",
    ),
    pytest.param(
        VR, _set("headers.host", [{"value": "evil.example"}]), "read-only-header", id="3.2-VR-host"
    ),
    pytest.param(VR, _delete("headers.content-length"), "read-only-header", id="3.2-VR-delete"),
    pytest.param(
        VR,
        _set("headers.transfer-encoding", [{"value": "chunked"}]),
        "read-only-header",
        id="3.2-VR-add-transfer-encoding",
    ),
    pytest.param(
        OR,
        _set("headers.content-length", [{"value": "10"}]),
        "read-only-header",
        id="3.2-OR-add-content-length",
    ),
    pytest.param(
        OR,
        _set("headers.if-none-match", [{"value": '"x"'}]),
        "read-only-header",
        id="3.2-OR-change-if-none-match",
    ),
    pytest.param(
        ORS, _delete("headers.transfer-encoding"), "read-only-header", id="3.2-ORS-delete-te"
    ),
    pytest.param(
        VRS, _set("headers.via", [{"value": "2.0 x"}]), "read-only-header", id="3.2-VRS-via"
    ),
    pytest.param(
        VRS,
        _set("headers.warning", [{"value": "199 - x"}]),
        "read-only-header",
        id="3.2-VRS-add-warning",
    ),
    pytest.param(ORS, _set("status", "199"), "status-invalid", id="2.3-status-below-200"),
    pytest.param(ORS, _set("status", "600"), "status-invalid", id="2.3-status-above-599"),
    pytest.param(VR, _generated(status="abc"), "status-invalid", id="2.5-status-not-digits"),
    pytest.param(VR, _generated(status="2000"), "status-invalid", id="2.5-status-four-digits"),
    pytest.param(OR, _generated(status=True), "status-invalid", id="2.5-status-boolean"),
    pytest.param(OR, _generated(status=302.0), "status-invalid", id="2.5-status-float"),
    pytest.param(VR, _generated(status=600), "status-invalid", id="2.5-int-status-out-of-range"),
    pytest.param(
        VR, _generated(status="204", body="x"), "no-body-with-204", id="2.5-204-with-body"
    ),
    pytest.param(VR, _set("uri", "index.html"), "uri-invalid", id="3.4-uri-without-slash"),
    pytest.param(OR, _set("uri", "/a b"), "uri-invalid", id="uri-with-space"),
    pytest.param(OR, _set("uri", 5), "uri-invalid", id="uri-not-string"),
    pytest.param(VR, _set("querystring", "a=b c"), "querystring-invalid", id="3.4-qs-space"),
    pytest.param(VR, _set("querystring", "a=b#c"), "querystring-invalid", id="3.4-qs-hash"),
    pytest.param(OR, _set("querystring", "a=\x01"), "querystring-invalid", id="3.4-qs-control"),
    pytest.param(OR, _set("querystring", None), "querystring-invalid", id="qs-not-string"),
    pytest.param(VR, _set("uri", "/" + "a" * 8191), "url-too-long", id="3.4-uri-plus-query-8192"),
    pytest.param(
        VR,
        _generated(body="!!!notbase64", bodyEncoding="base64"),
        "body-base64",
        id="2.5-invalid-base64-body",
    ),
    pytest.param(
        ORS,
        _update(body="%%%", bodyEncoding="base64"),
        "body-base64",
        id="2.3-invalid-base64-replacement",
    ),
    pytest.param(VR, _generated(body="x", bodyEncoding="gzip"), "body-invalid", id="bodyEncoding"),
    pytest.param(VR, _generated(body=5), "body-invalid", id="2.5-body-not-string"),
    pytest.param(OR, _generated(statusDescription=5), "field-type", id="statusDescription-int"),
    pytest.param(
        VR,
        _generated(body="x" * (40 * KB + 1)),
        "response-too-large",
        id="3.5-VR-generated-over-40KB",
    ),
    pytest.param(
        OR,
        _generated(body=_b64(b"x" * (MB + 1)), bodyEncoding="base64"),
        "response-too-large",
        id="3.5-OR-generated-over-1MB-decoded",
    ),
    pytest.param(
        VR,
        _generated(body="x" * (40 * KB - 20), headers={"x-a": [{"value": "y" * 40}]}),
        "response-too-large",
        id="3.5-headers-count-toward-the-limit",
    ),
    pytest.param(
        VRS, _set("body", "x" * (40 * KB + 1)), "response-too-large", id="2.4-VRS-body-40KB"
    ),
    pytest.param(ORS, _set("body", "x" * (MB + 1)), "response-too-large", id="ORS-body-1MB"),
    pytest.param(OR, _set("origin", "example.com"), "origin-invalid", id="1.5-origin-not-object"),
    pytest.param(
        OR,
        _set("origin", {"custom": CUSTOM_ORIGIN_DOC["custom"], "s3": {"domainName": "b"}}),
        "origin-invalid",
        id="1.5-both-custom-and-s3",
    ),
    pytest.param(OR, _set("origin", {}), "origin-invalid", id="1.5-neither-custom-nor-s3"),
    pytest.param(OR, _custom_origin(port=8), "origin-field", id="1.5-port-range"),
    pytest.param(OR, _custom_origin(port="443x"), "origin-field", id="1.5-port-not-int"),
    pytest.param(OR, _custom_origin(protocol="ftp"), "origin-field", id="1.5-protocol"),
    pytest.param(OR, _custom_origin(readTimeout=3), "origin-field", id="1.5-readTimeout-4-60"),
    pytest.param(OR, _custom_origin(keepaliveTimeout=61), "origin-field", id="1.5-keepalive-1-60"),
    pytest.param(
        OR, _custom_origin(sslProtocols=["TLSv1.3"]), "origin-field", id="1.5-sslProtocols"
    ),
    pytest.param(OR, _custom_origin(path="/a/"), "origin-field", id="1.5-path-trailing-slash"),
    pytest.param(OR, _custom_origin(path="a"), "origin-field", id="1.5-path-leading-slash"),
    pytest.param(
        OR, _custom_origin(domainName="203.0.113.9"), "origin-field", id="1.5-domain-is-an-ip"
    ),
    pytest.param(
        OR, _custom_origin(domainName="example.com:8080"), "origin-field", id="1.5-domain-port"
    ),
    pytest.param(OR, _custom_origin(domainName=""), "origin-field", id="1.5-domain-empty"),
    pytest.param(
        OR, _custom_origin(domainName="a" * 254), "origin-field", id="1.5-domain-over-253"
    ),
    pytest.param(
        OR, _delete("origin.custom.port"), "origin-field", id="1.5-required-field-missing"
    ),
    pytest.param(
        OR, _s3_origin(domainName="Bucket.s3.amazonaws.com"), "origin-field", id="1.5-s3-case"
    ),
    pytest.param(
        OR,
        _s3_origin(authMethod="origin-access-identity", region=""),
        "origin-field",
        id="1.5-s3-oai-needs-region",
    ),
    pytest.param(
        OR,
        _s3_origin(authMethod="origin-access-identity"),
        "origin-field",
        id="1.5-custom-to-s3-cannot-use-oai",
    ),
    pytest.param(OR, _s3_origin(authMethod="oac"), "origin-field", id="1.5-s3-auth-method"),
    pytest.param(OR, _s3_origin(region=5), "origin-field", id="1.5-s3-region-not-string"),
    pytest.param(OR, _custom_origin(path=None), "origin-field", id="1.5-path-not-string"),
    pytest.param(
        OR, _set("origin", {"custom": "example.com"}), "origin-invalid", id="1.5-custom-not-object"
    ),
    pytest.param(
        OR,
        _custom_origin(customHeaders={"host": [{"value": "x"}]}),
        "origin-custom-header",
        id="1.5-custom-header-deny-list",
    ),
    pytest.param(
        OR,
        _custom_origin(customHeaders={"x-amz-meta": [{"value": "x"}]}),
        "origin-custom-header",
        id="1.5-custom-header-x-amz-star",
    ),
    pytest.param(
        OR,
        _custom_origin(customHeaders={"x-cache": [{"value": "x"}]}),
        "disallowed-header",
        id="1.5-custom-header-disallowed",
    ),
    pytest.param(
        OR,
        _custom_origin(customHeaders={"user-agent": [{"value": "x"}]}),
        "origin-custom-header",
        id="1.5-custom-header-also-request-header",
    ),
]


@pytest.mark.parametrize(("trigger", "mutate", "rule"), FAILING)
def test_result_rule_is_enforced(trigger: EventType, mutate: Mutation, rule: str) -> None:
    event = _event(trigger)
    with pytest.raises(LambdaValidationError) as caught:
        decode_result(event, _returned(event, mutate))
    assert caught.value.rule == rule
    assert str(caught.value).startswith("The Lambda function")
    assert trigger.value in caught.value.detail


@pytest.mark.parametrize(
    ("result", "rule", "message"),
    [
        pytest.param(
            b"{not json",
            "json-unparsable",
            "The Lambda function returned invalid JSON: The JSON output is not parsable.",
            id="4.1-not-parsable",
        ),
        pytest.param(
            b"",
            "json-unparsable",
            "The Lambda function returned invalid JSON: The JSON output is not parsable.",
            id="4.1-empty-output",
        ),
        pytest.param(
            b"[]",
            "json-not-object",
            "The Lambda function returned invalid JSON: The JSON output must be an object type.",
            id="4.1-not-object",
        ),
    ],
)
def test_invalid_json_uses_cloudfront_wording_4_1(result: bytes, rule: str, message: str) -> None:
    with pytest.raises(LambdaValidationError) as caught:
        decode_result(_event(VR), result)
    assert caught.value.rule == rule
    assert caught.value.cloudfront_message == message
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("trigger", "mutate", "message"),
    [
        pytest.param(
            VR,
            _set("headers.host", [{"value": "x"}]),
            "The Lambda function result failed validation: "
            "The function tried to add, delete, or change a read-only header.",
            id="4.1-read-only",
        ),
        pytest.param(
            ORS,
            _set("headers.x-cache", [{"value": "x"}]),
            "The Lambda function result failed validation: "
            "The function tried to add a blacklisted header.",
            id="4.1-blacklisted",
        ),
    ],
)
def test_header_errors_use_cloudfront_wording_4_1(
    trigger: EventType, mutate: Mutation, message: str
) -> None:
    event = _event(trigger)
    with pytest.raises(LambdaValidationError) as caught:
        decode_result(event, _returned(event, mutate))
    assert caught.value.cloudfront_message == message


# The passing variant of each rule: the result is accepted and means what the function meant.
PASSING = [
    pytest.param(VR, _set("uri", "/index.html"), "uri", "/index.html", id="3.4-uri-rewrite"),
    pytest.param(OR, _set("querystring", "a=1&b=%20"), "querystring", "a=1&b=%20", id="3.4-qs"),
    pytest.param(
        VR, _set("uri", "/" + "a" * 8190), "uri", "/" + "a" * 8190, id="3.4-url-8191-chars"
    ),
    pytest.param(
        OR,
        _set("headers.host", [{"key": "Host", "value": "other.example"}]),
        "headers",
        ("Host", "other.example"),
        id="3.2-host-writable-in-origin-request",
    ),
    pytest.param(
        VRS,
        _set("headers.content-length", [{"value": "1"}]),
        "headers",
        ("Content-Length", "1"),
        id="3.2-2023-viewer-response-list-is-short",
    ),
    pytest.param(
        OR,
        _set("headers.cloudfront-viewer-country", [{"value": "DE"}]),
        "headers",
        ("Cloudfront-Viewer-Country", "DE"),
        id="3.3-viewer-country-allowed-in-origin-request",
    ),
    pytest.param(
        VR,
        _set("headers.x-custom-id", [{"value": "7"}]),
        "headers",
        ("X-Custom-Id", "7"),
        id="1.3-omitted-key-gets-canonical-casing",
    ),
    pytest.param(
        VR,
        _set("headers.x-a", [{"key": "X-a", "value": "tab\tok"}]),
        "headers",
        ("X-a", "tab\tok"),
        id="1.3-key-casing-kept-htab-allowed",
    ),
    pytest.param(
        ORS, _set("status", "404"), "status", 404, id="2.3-origin-response-may-change-status"
    ),
    pytest.param(
        VR,
        _set("headers.host", [{"key": "HOST", "value": "d111111abcdef8.cloudfront.net"}]),
        "headers",
        ("HOST", "d111111abcdef8.cloudfront.net"),
        id="3.2-read-only-value-unchanged-key-casing-free",
    ),
    pytest.param(VR, _generated(status="599"), "status", 599, id="2.5-status-599"),
    pytest.param(
        VR,
        _generated(status="204"),
        "body",
        b"",
        id="2.5-204-without-body",
    ),
    pytest.param(
        OR, _generated(status="204", body="x"), "body", b"x", id="2.5-204-body-from-origin-request"
    ),
    pytest.param(
        VR,
        _generated(body="x" * (40 * KB - 100)),
        "status",
        200,
        id="3.5-VR-generated-under-40KB",
    ),
    pytest.param(
        OR,
        _generated(body=_b64(b"\x00\xff" * 100), bodyEncoding="base64"),
        "body",
        b"\x00\xff" * 100,
        id="2.5-base64-body-decoded",
    ),
    pytest.param(ORS, _set("body", ""), "body", b"", id="2.3-empty-body-removes-it"),
    pytest.param(ORS, lambda obj: None, "body", None, id="2.3-no-body-passes-origin-body"),
    pytest.param(
        OR,
        _s3_origin(),
        "origin",
        S3Origin(domain_name="bucket.s3.eu-west-1.amazonaws.com", region="eu-west-1"),
        id="1.5-switch-to-s3",
    ),
    pytest.param(
        OR,
        _custom_origin(
            domainName="api.example.net",
            port=8443,
            readTimeout=60,
            customHeaders={"x-origin-secret": [{"value": "s"}]},
        ),
        "origin",
        CustomOrigin(
            domain_name="api.example.net",
            port=8443,
            read_timeout_seconds=60,
            ssl_protocols=("TLSv1", "TLSv1.1", "TLSv1.2"),
            custom_headers=(("X-Origin-Secret", "s"),),
        ),
        id="1.5-switch-custom-origin",
    ),
    pytest.param(OR, _delete("origin"), "origin", None, id="1.5-origin-omitted-is-unchanged"),
]


@pytest.mark.parametrize(("trigger", "mutate", "field", "expected"), PASSING)
def test_result_accepted(trigger: EventType, mutate: Mutation, field: str, expected: Any) -> None:
    event = _event(trigger)
    outcome = decode_result(event, _returned(event, mutate))
    value = getattr(outcome, field)
    if field == "headers":
        assert expected in value
    else:
        assert value == expected
    assert outcome.warnings == ()


def test_unchanged_request_comes_back_unchanged() -> None:
    event = _event(VR)
    outcome = decode_result(event, _returned(event, lambda obj: None))
    assert outcome == UpdatedRequest(
        uri="/",
        querystring="",
        headers=(
            ("Host", "d111111abcdef8.cloudfront.net"),
            ("User-Agent", "curl/7.66.0"),
            ("Accept", "*/*"),
            ("Content-Length", "3"),
            ("Via", "1.1 proxy"),
        ),
    )


def test_request_header_removed_and_added() -> None:
    event = _event(VR)

    def mutate(obj: dict[str, Any]) -> None:
        del obj["headers"]["user-agent"]
        obj["headers"]["accept"] = []
        obj["headers"]["x-ab"] = [{"key": "X-AB", "value": "b"}, {"key": "X-AB", "value": "c"}]

    outcome = decode_result(event, _returned(event, mutate))
    assert isinstance(outcome, UpdatedRequest)
    assert outcome.headers == (
        ("Host", "d111111abcdef8.cloudfront.net"),
        ("Content-Length", "3"),
        ("Via", "1.1 proxy"),
        ("X-AB", "b"),
        ("X-AB", "c"),
    )


def test_generated_response_from_aws_sample_2_5() -> None:
    outcome = decode_result(_event(VR), orjson.dumps(AWS_GENERATED_RESPONSE))
    assert outcome == GeneratedResponse(
        status=200,
        status_description="OK",
        headers=(("Cache-Control", "max-age=100"), ("Content-Type", "text/html")),
        body=AWS_GENERATED_RESPONSE["body"].encode(),
    )


def test_result_with_status_is_a_generated_response_2_1() -> None:
    outcome = decode_result(
        _event(OR),
        b'{"status": "302", "headers": {"location": [{"value": "https://example.com/"}]}}',
    )
    assert outcome == GeneratedResponse(302, "", (("Location", "https://example.com/"),), b"")


@pytest.mark.parametrize(
    ("trigger", "mutate", "expected_field", "expected", "warning"),
    [
        pytest.param(
            VR,
            _generated(status=302),
            "status",
            302,
            'status is the number 302; AWS documents "302"',
            id="2.5-integer-status-decision",
        ),
        pytest.param(
            ORS,
            _set("headers.last-modified", [{"key": "X-Amz-Meta-Last-Modified", "value": "d"}]),
            "headers",
            ("Last-Modified", "d"),
            "holds key 'X-Amz-Meta-Last-Modified'; sent as 'Last-Modified'",
            id="1.3-map-key-decides-decision",
        ),
        pytest.param(
            VRS,
            _set("status", "404"),
            "status",
            200,
            "changes the status 200 -> 404; ignored",
            id="2.4-viewer-response-status-kept-decision",
        ),
        pytest.param(
            VRS,
            _set("body", "replaced"),
            "body",
            b"replaced",
            "AWS documents this for origin-response only",
            id="2.4-viewer-response-body-allowed-decision",
        ),
        pytest.param(
            VR,
            _set("body", {"action": "replace", "data": "x"}),
            "body",
            None,
            "include-body is off",
            id="1.4-body-without-include-body-ignored",
        ),
        pytest.param(
            OR,
            _custom_origin(customHeaders={"x-a": [{"key": "X-B", "value": "1"}]}),
            "origin",
            CustomOrigin(
                domain_name="example.org",
                ssl_protocols=("TLSv1", "TLSv1.1", "TLSv1.2"),
                custom_headers=(("X-A", "1"),),
            ),
            "holds key 'X-B'",
            id="1.3-custom-header-key-mismatch",
        ),
    ],
)
def test_lenient_decisions_warn(
    trigger: EventType, mutate: Mutation, expected_field: str, expected: Any, warning: str
) -> None:
    event = _event(trigger)
    outcome = decode_result(event, _returned(event, mutate))
    value = getattr(outcome, expected_field)
    if expected_field == "headers":
        assert expected in value
    else:
        assert value == expected
    assert len(outcome.warnings) == 1
    assert warning in outcome.warnings[0]


def test_viewer_response_status_change_is_an_error_in_strict_mode_2_4() -> None:
    event = _event(VRS)
    with pytest.raises(LambdaValidationError) as caught:
        decode_result(
            event,
            _returned(event, _set("status", "404")),
            policy=ValidationPolicy(strict_viewer_response_status=True),
        )
    assert caught.value.rule == "status-changed"


def test_read_only_lists_are_data_3_2() -> None:
    # The pre-2022 viewer-response list, configured: deleting Content-Length is now an error.
    old_lists = dict(ValidationPolicy().read_only_headers)
    old_lists[VRS] = frozenset(
        {"content-encoding", "content-length", "transfer-encoding", "warning", "via"}
    )
    event = _event(VRS)
    result = _returned(event, _delete("headers.content-length"))
    assert isinstance(decode_result(event, result), UpdatedResponse)
    with pytest.raises(LambdaValidationError, match="read-only"):
        decode_result(event, result, policy=ValidationPolicy(read_only_headers=old_lists))


def test_size_limits_are_configurable_3_5() -> None:
    limits = dict(ValidationPolicy().result_size_limit_bytes) | {VR: 100}
    event = _event(VR)
    result = _returned(event, _generated(body="x" * 101))
    with pytest.raises(LambdaValidationError, match="limit is 100"):
        decode_result(event, result, policy=ValidationPolicy(result_size_limit_bytes=limits))


# -- include-body replace (§1.4) --------------------------------------------------------------

BODY_CASES = [
    pytest.param(VR, {"action": "read-only", "data": "eA=="}, None, None, id="read-only-keeps"),
    pytest.param(
        VR, {"action": "replace", "encoding": "text", "data": "hi"}, b"hi", None, id="text"
    ),
    pytest.param(
        OR, {"action": "replace", "data": _b64(b"\x01\x02")}, b"\x01\x02", None, id="base64-default"
    ),
    pytest.param(
        VR,
        {"action": "replace", "encoding": "text", "data": "x" * (40 * KB)},
        b"x" * (40 * KB),
        None,
        id="text-at-40KB",
    ),
    pytest.param(
        VR,
        {"action": "replace", "encoding": "text", "data": "x" * (40 * KB + 1)},
        b"x" * (40 * KB),
        None,
        id="text-over-40KB-truncated",
    ),
    pytest.param(
        VR,
        {"action": "replace", "data": _b64(b"x" * (40 * KB))},
        b"x" * (40 * KB),
        None,
        id="base64-of-40KB-fits-53.2KB",
    ),
    pytest.param(
        VR,
        {"action": "replace", "data": _b64(b"x" * (40 * KB + 3))},
        b"x" * (40 * KB),
        None,
        id="base64-over-53.2KB-truncated",
    ),
    pytest.param(
        OR,
        {"action": "replace", "encoding": "text", "data": "x" * (MB + 1)},
        b"x" * MB,
        None,
        id="origin-text-over-1MB-truncated",
    ),
    pytest.param(
        OR, {"action": "replace", "data": "not base64!"}, None, "body-base64", id="bad-base64"
    ),
    pytest.param(VR, {"action": "delete", "data": ""}, None, "body-invalid", id="bad-action"),
    pytest.param(
        VR, {"action": "replace", "encoding": "hex", "data": ""}, None, "body-invalid", id="enc"
    ),
    pytest.param(VR, {"action": "replace", "data": 5}, None, "body-invalid", id="data-not-str"),
    pytest.param(VR, "replace", None, "body-invalid", id="body-not-object"),
]


@pytest.mark.parametrize(("trigger", "body", "expected", "rule"), BODY_CASES)
def test_include_body_replace_1_4(
    trigger: EventType, body: Any, expected: bytes | None, rule: str | None
) -> None:
    event = _event(trigger, include_body=True, method="POST", body=b"original")
    result = _returned(event, _set("body", body))
    if rule is None:
        outcome = decode_result(event, result)
        assert isinstance(outcome, UpdatedRequest)
        assert outcome.body == expected
    else:
        with pytest.raises(LambdaValidationError) as caught:
            decode_result(event, result)
        assert caught.value.rule == rule


# -- origin kept as configured (§1.5 decision) ----------------------------------------------


@pytest.mark.parametrize(
    ("s3", "expected", "rule"),
    [
        pytest.param(
            {"domainName": "other.s3.eu-west-1.amazonaws.com"},
            S3Origin(
                domain_name="other.s3.eu-west-1.amazonaws.com",
                region="eu-west-1",
                auth_method="origin-access-identity",
            ),
            None,
            id="1.5-s3-to-s3-keeps-oai",
        ),
        pytest.param(
            {"domainName": "b.s3.amazonaws.com", "authMethod": "none", "region": None},
            S3Origin(domain_name="b.s3.amazonaws.com"),
            None,
            id="1.5-s3-optional-fields-default",
        ),
        pytest.param({"region": ""}, None, "origin-field", id="1.5-s3-oai-needs-region"),
        pytest.param({"path": "/assets"}, None, None, id="1.5-s3-path-prefix"),
        pytest.param({"path": "/assets/"}, None, "origin-field", id="1.5-s3-path-trailing-slash"),
    ],
)
def test_s3_origin_changes_1_5(
    s3: dict[str, Any], expected: S3Origin | None, rule: str | None
) -> None:
    event = build_event(OR, CONFIG, _origin_request(origin=S3_ORIGIN))

    def mutate(obj: dict[str, Any]) -> None:
        fields = obj["origin"]["s3"]
        for name, value in s3.items():
            if value is None:
                del fields[name]
            else:
                fields[name] = value

    result = _returned(event, mutate)
    if rule is not None:
        with pytest.raises(LambdaValidationError) as caught:
            decode_result(event, result)
        assert caught.value.rule == rule
        return
    outcome = decode_result(event, result)
    assert isinstance(outcome, UpdatedRequest)
    assert isinstance(outcome.origin, S3Origin)
    if expected is not None:
        assert outcome.origin == expected
    else:
        assert outcome.origin.path == s3["path"]


def test_configured_origin_outside_aws_ranges_stays_valid_1_5() -> None:
    local = CustomOrigin(domain_name="127.0.0.1", port=81, protocol="http", read_timeout_seconds=2)
    event = build_event(OR, CONFIG, _origin_request(origin=local))
    unchanged = decode_result(event, _returned(event, lambda obj: None))
    assert isinstance(unchanged, UpdatedRequest)
    assert unchanged.origin is None
    # Changing one field checks that field only: the IP and port 81 are left alone.
    changed = decode_result(event, _returned(event, _set("origin.custom.readTimeout", 10)))
    assert isinstance(changed, UpdatedRequest)
    assert changed.origin == CustomOrigin(
        domain_name="127.0.0.1", port=81, protocol="http", read_timeout_seconds=10
    )
    with pytest.raises(LambdaValidationError, match="not an IP address"):
        decode_result(event, _returned(event, _set("origin.custom.domainName", "10.0.0.1")))


def test_viewer_sent_viewer_country_may_be_kept_or_changed_3_3() -> None:
    event = build_event(VR, CONFIG, _viewer_request(headers=[("cloudfront-viewer-country", "FR")]))
    result = _returned(event, _set("headers.cloudfront-viewer-country", [{"value": "DE"}]))
    outcome = decode_result(event, result)
    assert isinstance(outcome, UpdatedRequest)
    assert outcome.headers == (("Cloudfront-Viewer-Country", "DE"),)


def test_configured_custom_header_may_not_be_added_as_request_header_1_5() -> None:
    origin = CustomOrigin(domain_name="example.org", custom_headers=(("X-Secret", "s"),))
    event = build_event(OR, CONFIG, _origin_request(origin=origin))
    assert event.document["Records"][0]["cf"]["request"]["origin"]["custom"]["customHeaders"] == {
        "x-secret": [{"key": "X-Secret", "value": "s"}]
    }
    with pytest.raises(LambdaValidationError) as caught:
        decode_result(event, _returned(event, _set("headers.x-secret", [{"value": "t"}])))
    assert caught.value.rule == "origin-custom-header"
    # Its value may change, and a configured name is not checked against the deny list again.
    new_value = _set("origin.custom.customHeaders.x-secret", [{"key": "X-Secret", "value": "t"}])
    outcome = decode_result(event, _returned(event, new_value))
    assert isinstance(outcome, UpdatedRequest)
    assert outcome.origin == CustomOrigin("example.org", custom_headers=(("X-Secret", "t"),))


def test_response_trigger_ignores_request_changes_1_2() -> None:
    event = _event(ORS)
    outcome = decode_result(event, _returned(event, lambda obj: None))
    assert isinstance(outcome, UpdatedResponse)
    assert (outcome.status, outcome.status_description, outcome.body) == (200, "OK", None)
    assert ("Transfer-Encoding", "chunked") in outcome.headers


# -- sample_event ----------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", list(EventType), ids=str)
def test_sample_event_is_valid_and_round_trips(trigger: EventType) -> None:
    sample = sample_event(trigger, uri="/x", querystring="a=1", headers=[("X-Test", "1")])
    record = sample["Records"][0]["cf"]
    assert record["config"] == _config(trigger.value)
    assert record["request"]["uri"] == "/x"
    assert record["request"]["querystring"] == "a=1"
    assert record["request"]["headers"]["x-test"] == [{"key": "X-Test", "value": "1"}]
    assert ("origin" in record["request"]) is (trigger in (OR, ORS))
    assert ("response" in record) is (trigger in (ORS, VRS))
    expected_host = "d111111abcdef8.cloudfront.net" if trigger in (VR, VRS) else "example.org"
    assert record["request"]["headers"]["host"][0]["value"] == expected_host
    # The same inputs through build_event give the same event, and a function that returns its
    # input unchanged is accepted.
    event = build_event(
        trigger,
        CONFIG,
        Request(
            client_ip=record["request"]["clientIp"],
            method="GET",
            uri="/x",
            querystring="a=1",
            headers=_pairs(record["request"]["headers"]),
            origin=SAMPLE_ORIGIN,
        ),
        _response(record["response"]["headers"]) if "response" in record else None,
    )
    assert event.document == sample
    part = "response" if trigger in (ORS, VRS) else "request"
    outcome = decode_result(event, orjson.dumps(record[part]))
    assert outcome.warnings == ()
    assert ("X-Test", "1") in outcome.headers or part == "response"


def test_sample_event_options() -> None:
    sample = sample_event(
        OR,
        method="POST",
        body=b"hello",
        headers=[("user-agent", "test")],
        origin=S3_ORIGIN,
    )
    request = sample["Records"][0]["cf"]["request"]
    assert request["body"]["data"] == _b64(b"hello")
    assert request["headers"]["user-agent"] == [{"key": "User-Agent", "value": "test"}]
    assert request["headers"]["host"][0]["value"] == S3_ORIGIN.domain_name
    assert request["origin"]["s3"]["region"] == "eu-west-1"
    response = sample_event(VRS, status=404, status_description="Not Found")
    assert response["Records"][0]["cf"]["response"]["status"] == "404"


# -- round trip (hypothesis) -----------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
header_names = st.text(_TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda name: not is_disallowed_header(name.lower())
)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\té"), max_size=40
)
uris = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#"), max_size=60
).map(lambda path: "/" + path)
querystrings = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=60
)


def _grouped(headers: Any) -> dict[str, list[tuple[str, str]]]:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append((name, value))
    return grouped


@settings(max_examples=150, deadline=None)
@given(
    headers=st.lists(st.tuples(header_names, header_values), max_size=12),
    uri=uris,
    querystring=querystrings,
    trigger=st.sampled_from([VR, OR]),
    add_header=st.booleans(),
)
def test_round_trip_unchanged_request(
    headers: list[tuple[str, str]],
    uri: str,
    querystring: str,
    trigger: EventType,
    add_header: bool,
) -> None:
    # With add_header the function also adds a header, which takes the validating path.
    headers = [(n, v) for n, v in headers if n.lower() != "x-round-trip"]
    request = _origin_request(uri=uri, querystring=querystring, headers=headers)
    event = build_event(trigger, CONFIG, request)
    returned = orjson.loads(event.payload)["Records"][0]["cf"]["request"]
    if add_header:
        returned["headers"]["x-round-trip"] = [{"value": "1"}]
    outcome = decode_result(event, orjson.dumps(returned))
    assert isinstance(outcome, UpdatedRequest)
    assert (outcome.uri, outcome.querystring, outcome.body, outcome.origin) == (
        uri,
        querystring,
        None,
        None,
    )
    expected = {
        lower: [(canonical_header_name(n) if n == n.lower() else n, v) for n, v in pairs]
        for lower, pairs in _grouped(headers).items()
    }
    if add_header:
        expected["x-round-trip"] = [("X-Round-Trip", "1")]
    assert _grouped(outcome.headers) == expected
    assert outcome.warnings == ()


def test_public_surface() -> None:
    assert all(hasattr(edge.events, name) for name in edge.events.__all__)
    assert {"build_event", "decode_result", "sample_event", "LambdaValidationError"} <= set(
        edge.events.__all__
    )
    assert len(edge.events.__all__) <= 30
