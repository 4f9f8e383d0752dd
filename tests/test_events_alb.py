"""A function as origin: ALB Lambda-target events built and answers decoded (lambda-edge-spec §7),
and real adapters (Mangum, apig-wsgi, Powertools) run behind them in both header modes.

The expected events are AWS's documented samples (the ALB Lambda-target events of the Elastic
Load Balancing guide), written out here so the suite does not depend on files outside the
repository.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.events.alb import (
    AlbBadRequest,
    AlbError,
    AlbInvalidResponse,
    AlbRequest,
    AlbRequestTooLarge,
    AlbResponse,
    build_alb_event,
    build_health_check_event,
    decode_alb_response,
    new_trace_root,
    trace_header,
)
from edge.events.alb_rules import ALB_FAILURES, AlbCondition
from tests.alb_functions import BINARY_BODY


@pytest.fixture(scope="module", autouse=True)
def _close_the_loop_mangum_installs() -> Iterator[None]:
    """Mangum creates and installs an event loop when a handler is built (Lambda reuses it
    across invocations). Close it when this module is done: left open, it is collected later
    in some other test, as an unclosed-socket warning."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = asyncio.get_event_loop_policy().get_event_loop()
    if not loop.is_running():
        loop.close()
    asyncio.set_event_loop(None)


MB = 1024 * 1024
ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/lambda-target/abcdefgh"
TRACE = "1-5c536348-3d683b8b04734faae651f476"


def _event(
    *,
    multi_value: bool = False,
    method: str = "GET",
    path: str = "/",
    query_string: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    client_ip: str = "203.0.113.7",
    listener_port: int = 443,
    protocol: str = "https",
    trace_id: str = TRACE,
) -> dict[str, Any]:
    request = AlbRequest(
        method=method,
        path=path,
        client_ip=client_ip,
        query_string=query_string,
        headers=headers if headers is not None else [("host", "api.example.com")],
        body=body,
        listener_port=listener_port,
        protocol=protocol,  # type: ignore[arg-type]
    )
    payload = build_alb_event(
        request, multi_value=multi_value, target_group_arn=ARN, trace_id=trace_id
    )
    result: dict[str, Any] = orjson.loads(payload)
    return result


# --- AWS's samples, rebuilt -----------------------------------------------------------------------

# events/alb-single-value.json (LDG services-alb.md).
SINGLE_VALUE_SAMPLE: dict[str, Any] = {
    "requestContext": {
        "elb": {
            "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/"
            "lambda-279XGJDqGZ5rsrHC2Fjr/49e9d65c45c6791a"
        }
    },
    "httpMethod": "GET",
    "path": "/lambda",
    "queryStringParameters": {"query": "1234ABCD"},
    "headers": {
        "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,"
        "image/apng,*/*;q=0.8",
        "accept-encoding": "gzip",
        "accept-language": "en-US,en;q=0.9",
        "connection": "keep-alive",
        "host": "lambda-alb-123578498.us-east-2.elb.amazonaws.com",
        "upgrade-insecure-requests": "1",
        "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/71.0.3578.98 Safari/537.36",
        "x-amzn-trace-id": "Root=1-5c536348-3d683b8b04734faae651f476",
        "x-forwarded-for": "72.12.164.125",
        "x-forwarded-port": "80",
        "x-forwarded-proto": "http",
        "x-imforwards": "20",
    },
    "body": "",
    "isBase64Encoded": False,
}

# events/alb-multi-value.json (GO testdata with the ELB guide's query and cookie examples).
MULTI_VALUE_SAMPLE: dict[str, Any] = {
    "requestContext": {"elb": {"targetGroupArn": ARN}},
    "httpMethod": "GET",
    "path": "/",
    "multiValueQueryStringParameters": {"myKey": ["val1", "val2"]},
    "multiValueHeaders": {
        "accept": ["*/*"],
        "connection": ["keep-alive"],
        "cookie": ["name1=value1", "name2=value2"],
        "host": ["lambda-test-alb-1234567.us-east-1.elb.amazonaws.com"],
        "user-agent": ["curl/7.54.0"],
        "x-amzn-trace-id": ["Root=1-5c34e7d4-00ca239424b68028d4c56d68"],
        "x-forwarded-for": ["72.21.198.67"],
        "x-forwarded-port": ["80"],
        "x-forwarded-proto": ["http"],
        "x-imforwards": ["20"],
        "x-myheader": ["123"],
    },
    "body": "",
    "isBase64Encoded": False,
}

# events/alb-health-check.json (ELB lambda-functions.md, ARN placeholder kept).
HEALTH_CHECK_SAMPLE: dict[str, Any] = {
    "requestContext": {
        "elb": {
            "targetGroupArn": "arn:aws:elasticloadbalancing:region:123456789012:targetgroup/"
            "my-target-group/6d0ecf831eec9f09"
        }
    },
    "httpMethod": "GET",
    "path": "/",
    "queryStringParameters": {},
    "headers": {"user-agent": "ELB-HealthChecker/2.0"},
    "body": "",
    "isBase64Encoded": False,
}


def _sample_input(sample: dict[str, Any], *, multi_value: bool) -> tuple[AlbRequest, str]:
    """The viewer request behind a sample: its headers minus those the load balancer adds."""
    added = {"x-amzn-trace-id", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"}
    field = "multiValueHeaders" if multi_value else "headers"
    headers = [
        (name, value)
        for name, values in sample[field].items()
        if name not in added
        for value in (values if multi_value else [values])
    ]
    query_field = "multiValueQueryStringParameters" if multi_value else "queryStringParameters"
    query = "&".join(
        f"{name}={value}"
        for name, values in sample[query_field].items()
        for value in (values if multi_value else [values])
    )

    def first(name: str) -> str:
        value = sample[field][name]
        return str(value[0] if multi_value else value)

    request = AlbRequest(
        method=sample["httpMethod"],
        path=sample["path"],
        client_ip=first("x-forwarded-for"),
        query_string=query,
        headers=headers,
        listener_port=int(first("x-forwarded-port")),
        protocol="https" if first("x-forwarded-proto") == "https" else "http",
    )
    trace_id = first("x-amzn-trace-id").removeprefix("Root=")
    return request, trace_id


@pytest.mark.parametrize(
    ("sample", "multi_value"),
    [
        pytest.param(SINGLE_VALUE_SAMPLE, False, id="alb-single-value"),
        pytest.param(MULTI_VALUE_SAMPLE, True, id="alb-multi-value"),
    ],
)
def test_rebuilds_aws_sample_event(sample: dict[str, Any], multi_value: bool) -> None:
    request, trace_id = _sample_input(sample, multi_value=multi_value)
    arn = sample["requestContext"]["elb"]["targetGroupArn"]
    built = build_alb_event(
        request, multi_value=multi_value, target_group_arn=arn, trace_id=trace_id
    )
    assert orjson.loads(built) == sample


def test_rebuilds_aws_health_check_event() -> None:
    arn = HEALTH_CHECK_SAMPLE["requestContext"]["elb"]["targetGroupArn"]
    built = build_health_check_event(multi_value=False, target_group_arn=arn)
    assert orjson.loads(built) == HEALTH_CHECK_SAMPLE
    multi = orjson.loads(build_health_check_event(multi_value=True, target_group_arn=arn))
    assert multi["multiValueHeaders"] == {"user-agent": ["ELB-HealthChecker/2.0"]}
    assert multi["multiValueQueryStringParameters"] == {}
    assert "headers" not in multi
    assert "queryStringParameters" not in multi


def test_event_has_exactly_one_field_of_each_pair() -> None:
    # §7.1: the target group's multi-value setting picks one field of each pair.
    single = _event(multi_value=False, query_string="a=1")
    multi = _event(multi_value=True, query_string="a=1")
    assert {"queryStringParameters", "headers"} <= single.keys()
    assert not {"multiValueQueryStringParameters", "multiValueHeaders"} & single.keys()
    assert {"multiValueQueryStringParameters", "multiValueHeaders"} <= multi.keys()
    assert not {"queryStringParameters", "headers"} & multi.keys()


# --- path and query (§7.1) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query_string", "single", "multi"),
    [
        pytest.param("", {}, {}, id="no-query-is-empty-object"),
        pytest.param("a=1", {"a": "1"}, {"a": ["1"]}, id="one-parameter"),
        pytest.param(
            "k=1&k=2&k=3", {"k": "3"}, {"k": ["1", "2", "3"]}, id="repeated-key-last-wins-or-list"
        ),
        pytest.param(
            "b=2&a=1&b=3", {"b": "3", "a": "1"}, {"b": ["2", "3"], "a": ["1"]}, id="arrival-order"
        ),
        pytest.param(
            "q=a%20b%2Fc&u=caf%C3%A9&p=x+y",
            {"q": "a%20b%2Fc", "u": "caf%C3%A9", "p": "x+y"},
            {"q": ["a%20b%2Fc"], "u": ["caf%C3%A9"], "p": ["x+y"]},
            id="values-stay-percent-encoded",
        ),
        pytest.param("na%20me=v", {"na%20me": "v"}, {"na%20me": ["v"]}, id="names-stay-encoded"),
        pytest.param("flag&x=", {"flag": "", "x": ""}, {"flag": [""], "x": [""]}, id="no-value"),
        pytest.param("a=1=2", {"a": "1=2"}, {"a": ["1=2"]}, id="split-at-first-equals"),
        pytest.param("&&a=1&", {"a": "1"}, {"a": ["1"]}, id="empty-pieces-skipped"),
    ],
)
def test_query_parameters(
    query_string: str, single: dict[str, str], multi: dict[str, list[str]]
) -> None:
    assert _event(query_string=query_string)["queryStringParameters"] == single
    assert _event(query_string=query_string, multi_value=True)[
        "multiValueQueryStringParameters"
    ] == (multi)


def test_path_stays_percent_encoded() -> None:
    event = _event(path="/files/caf%C3%A9%20menu%2Fold.txt")
    assert event["path"] == "/files/caf%C3%A9%20menu%2Fold.txt"


def test_raw_utf8_in_path_and_query_is_read_as_utf8() -> None:
    # Wire bytes reach us as ISO-8859-1 text; the event carries UTF-8 text.
    raw = "/café".encode().decode("latin-1")
    event = _event(path=raw, query_string="q=" + "é".encode().decode("latin-1"))
    assert event["path"] == "/café"
    assert event["queryStringParameters"] == {"q": "é"}


# --- headers (§7.1) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "single", "multi"),
    [
        pytest.param(
            [("cookie", "a=1"), ("cookie", "b=2")],
            {"cookie": "b=2"},
            {"cookie": ["a=1", "b=2"]},
            id="repeated-header-last-wins-or-list",
        ),
        pytest.param(
            [("X-Custom", "1"), ("x-custom", "2")],
            {"x-custom": "2"},
            {"x-custom": ["1", "2"]},
            id="names-lower-cased",
        ),
        pytest.param(
            [("connection", "keep-alive")],
            {"connection": "keep-alive"},
            {"connection": ["keep-alive"]},
            id="client-hop-by-hop-passed-through",
        ),
        pytest.param(
            [("x-forwarded-for", "198.51.100.1")],
            {"x-forwarded-for": "198.51.100.1, 203.0.113.7"},
            {"x-forwarded-for": ["198.51.100.1, 203.0.113.7"]},
            id="x-forwarded-for-appended",
        ),
        pytest.param(
            [("x-forwarded-proto", "gopher"), ("x-forwarded-port", "1")],
            {"x-forwarded-proto": "https", "x-forwarded-port": "443"},
            {"x-forwarded-proto": ["https"], "x-forwarded-port": ["443"]},
            id="forwarded-port-and-proto-are-the-listeners",
        ),
        pytest.param(
            [("x-amzn-trace-id", "Root=1-00000001-aaaaaaaaaaaaaaaaaaaaaaaa")],
            {"x-amzn-trace-id": f"Self={TRACE};Root=1-00000001-aaaaaaaaaaaaaaaaaaaaaaaa"},
            {"x-amzn-trace-id": [f"Self={TRACE};Root=1-00000001-aaaaaaaaaaaaaaaaaaaaaaaa"]},
            id="client-trace-gets-self",
        ),
        pytest.param(
            [("x-note", "caf\u00c3\u00a9")],  # "café" in UTF-8, as an ISO-8859-1 str
            {"x-note": "café"},
            {"x-note": ["café"]},
            id="utf8-value-decoded",
        ),
    ],
)
def test_headers(
    headers: list[tuple[str, str]], single: dict[str, str], multi: dict[str, list[str]]
) -> None:
    single_headers = _event(headers=headers)["headers"]
    multi_headers = _event(headers=headers, multi_value=True)["multiValueHeaders"]
    assert {name: single_headers[name] for name in single} == single
    assert {name: multi_headers[name] for name in multi} == multi


def test_added_headers_without_client_ones() -> None:
    headers = _event(headers=[], client_ip="192.0.2.9", listener_port=80, protocol="http")[
        "headers"
    ]
    assert headers == {
        "x-forwarded-for": "192.0.2.9",
        "x-forwarded-port": "80",
        "x-forwarded-proto": "http",
        "x-amzn-trace-id": f"Root={TRACE}",
    }


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param(None, f"Root={TRACE}", id="none-new-root"),
        pytest.param("", f"Root={TRACE}", id="empty-new-root"),
        pytest.param(
            "Root=1-67891233-abcdef012345678912345678",
            f"Self={TRACE};Root=1-67891233-abcdef012345678912345678",
            id="root-self-inserted-in-front",
        ),
        pytest.param(
            "Root=1-67891233-abcdef012345678912345678;CalledFrom=app",
            f"Self={TRACE};Root=1-67891233-abcdef012345678912345678;CalledFrom=app",
            id="custom-field-kept",
        ),
        pytest.param(
            "Self=1-67891233-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678",
            f"Self={TRACE};Root=1-67891233-abcdef012345678912345678",
            id="self-updated",
        ),
        pytest.param("CalledFrom=app", f"Root={TRACE};CalledFrom=app", id="no-root-gets-root"),
    ],
)
def test_trace_header(existing: str | None, expected: str) -> None:
    assert trace_header(existing, TRACE) == expected


@pytest.mark.parametrize(
    ("epoch", "random_hex", "expected"),
    [
        pytest.param(
            0x5C536348, "3d683b8b04734faae651f476", TRACE, id="sample-trace-id-of-alb-single-value"
        ),
        pytest.param(1, "A" * 24, "1-00000001-" + "a" * 24, id="zero-padded-lower-case"),
    ],
)
def test_new_trace_root(epoch: int, random_hex: str, expected: str) -> None:
    assert new_trace_root(epoch, random_hex) == expected


@pytest.mark.parametrize(
    ("epoch", "random_hex"),
    [
        pytest.param(-1, "0" * 24, id="negative-epoch"),
        pytest.param(1 << 32, "0" * 24, id="epoch-over-8-hex"),
        pytest.param(1, "0" * 23, id="short-random"),
        pytest.param(1, "g" * 24, id="not-hex"),
    ],
)
def test_new_trace_root_rejects_bad_input(epoch: int, random_hex: str) -> None:
    with pytest.raises(ValueError, match=r"epoch_seconds|random_hex"):
        new_trace_root(epoch, random_hex)


# --- body (§7.2) ----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize(
    ("body", "headers", "expected_body", "expected_base64"),
    [
        pytest.param(b"", [], "", False, id="empty-body-text"),
        pytest.param(b"", [("content-type", "image/png")], "", False, id="empty-binary-type"),
        pytest.param(b"hi", [("content-type", "text/plain")], "hi", False, id="text-star"),
        pytest.param(b"<p/>", [("content-type", "text/html")], "<p/>", False, id="text-html"),
        pytest.param(
            b'{"a":1}', [("content-type", "application/json")], '{"a":1}', False, id="json"
        ),
        pytest.param(
            b'{"a":1}',
            [("content-type", "application/json; charset=utf-8")],
            '{"a":1}',
            False,
            id="parameters-ignored",
        ),
        pytest.param(
            b'{"a":1}', [("content-type", "Application/JSON")], '{"a":1}', False, id="case-folded"
        ),
        pytest.param(
            b"f()", [("content-type", "application/javascript")], "f()", False, id="javascript"
        ),
        pytest.param(b"<a/>", [("content-type", "application/xml")], "<a/>", False, id="xml"),
        pytest.param(
            "café".encode(),
            [("content-type", "text/plain; charset=utf-8")],
            "café",
            False,
            id="utf8-text",
        ),
        pytest.param(
            b"a=1",
            [("content-type", "application/x-www-form-urlencoded")],
            _b64(b"a=1"),
            True,
            id="form-is-other",
        ),
        pytest.param(
            b"\x89PNG", [("content-type", "image/png")], _b64(b"\x89PNG"), True, id="binary"
        ),
        pytest.param(
            b'{"a":1}',
            [("content-type", "application/problem+json")],
            _b64(b'{"a":1}'),
            True,
            id="json-suffix-is-other",
        ),
        pytest.param(b"hi", [], _b64(b"hi"), True, id="no-content-type-is-other"),
        pytest.param(
            b"\x1f\x8b",
            [("content-type", "text/plain"), ("content-encoding", "gzip")],
            _b64(b"\x1f\x8b"),
            True,
            id="content-encoding-wins",
        ),
        pytest.param(
            b"hi",
            [("content-type", "image/png"), ("content-type", "text/plain")],
            "hi",
            False,
            id="last-content-type",
        ),
    ],
)
@pytest.mark.parametrize("multi_value", [False, True], ids=["single", "multi"])
def test_body_encoding(
    body: bytes,
    headers: list[tuple[str, str]],
    expected_body: str,
    expected_base64: bool,
    multi_value: bool,
) -> None:
    event = _event(method="POST", headers=headers, body=body, multi_value=multi_value)
    assert (event["body"], event["isBase64Encoded"]) == (expected_body, expected_base64)


def test_body_of_exactly_1_mb_is_accepted() -> None:
    event = _event(method="POST", body=b"x" * MB, headers=[("content-type", "image/png")])
    assert len(base64.b64decode(event["body"])) == MB


def test_body_over_1_mb_is_413() -> None:
    with pytest.raises(AlbRequestTooLarge) as caught:
        _event(method="POST", body=b"x" * (MB + 1))
    assert (caught.value.status, caught.value.reason_code) == (413, "LambdaRequestTooLarge")
    assert str(MB + 1) in caught.value.detail


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        pytest.param(
            {"body": b"\xff\xfe", "headers": [("content-type", "text/plain")]},
            "body",
            id="text-body-not-utf8",
        ),
        pytest.param({"headers": [("x-bad", "\xff")]}, "header", id="header-value-not-utf8"),
        pytest.param({"headers": [("x-b\xe9", "1")]}, "header names", id="header-name-not-utf8"),
        pytest.param({"path": "/\xff"}, "path", id="path-not-utf8"),
        pytest.param({"query_string": "a=\xc3"}, "query", id="query-not-utf8"),
    ],
)
def test_not_utf8_is_bad_request(kwargs: dict[str, Any], where: str) -> None:
    with pytest.raises(AlbBadRequest, match=where) as caught:
        _event(method="POST", **kwargs)
    assert (caught.value.status, caught.value.reason_code) == (502, "LambdaBadRequest")


def test_binary_body_may_be_any_bytes() -> None:
    event = _event(method="POST", body=b"\xff\xfe", headers=[("content-type", "image/png")])
    assert base64.b64decode(event["body"]) == b"\xff\xfe"


def test_websocket_upgrade_is_400() -> None:
    # §7.1: HTTP and HTTPS listeners only; a WebSocket upgrade gets 400.
    with pytest.raises(AlbBadRequest) as caught:
        _event(headers=[("connection", "Upgrade"), ("upgrade", "WebSocket")])
    assert (caught.value.status, caught.value.reason_code) == (400, "LambdaWebsocketNotSupported")


# --- the response document (§7.3) -----------------------------------------------------------------


def _answer(**fields: Any) -> bytes:
    return orjson.dumps({"statusCode": 200, **fields})


def _cl(body: bytes) -> tuple[str, str]:
    return ("content-length", str(len(body)))


# events/alb-response.json and events/alb-response-multi-value.json.
ALB_RESPONSE_SAMPLE = {
    "statusCode": 200,
    "statusDescription": "200 OK",
    "isBase64Encoded": False,
    "headers": {"Content-Type": "text/html"},
    "body": "<h1>Hello from Lambda!</h1>",
}
ALB_RESPONSE_MULTI_VALUE_SAMPLE = {
    "isBase64Encoded": False,
    "statusCode": 200,
    "statusDescription": "200 OK",
    "multiValueHeaders": {
        "Set-cookie": [
            "cookie-name=cookie-value;Domain=myweb.com;Secure;HttpOnly",
            "cookie-name=cookie-value;Expires=May 8, 2019",
        ],
        "Content-Type": ["application/json"],
    },
    "body": "Hello from Lambda",
}


@pytest.mark.parametrize(
    ("payload", "multi_value", "expected"),
    [
        pytest.param(
            orjson.dumps(ALB_RESPONSE_SAMPLE),
            False,
            AlbResponse(
                200,
                "OK",
                [("Content-Type", "text/html"), ("content-length", "27")],
                b"<h1>Hello from Lambda!</h1>",
            ),
            id="alb-response-sample",
        ),
        pytest.param(
            orjson.dumps(ALB_RESPONSE_MULTI_VALUE_SAMPLE),
            True,
            AlbResponse(
                200,
                "OK",
                [
                    ("Set-cookie", "cookie-name=cookie-value;Domain=myweb.com;Secure;HttpOnly"),
                    ("Set-cookie", "cookie-name=cookie-value;Expires=May 8, 2019"),
                    ("Content-Type", "application/json"),
                    ("content-length", "17"),
                ],
                b"Hello from Lambda",
            ),
            id="alb-response-multi-value-sample-both-cookies",
        ),
        pytest.param(
            _answer(), False, AlbResponse(200, "OK", [_cl(b"")], b""), id="only-status-code"
        ),
        pytest.param(
            orjson.dumps({"statusCode": 404}),
            False,
            AlbResponse(404, "Not Found", [_cl(b"")], b""),
            id="missing-description-standard-phrase",
        ),
        pytest.param(
            orjson.dumps({"statusCode": 299}),
            False,
            AlbResponse(299, "", [_cl(b"")], b""),
            id="unknown-status-empty-phrase",
        ),
        pytest.param(
            _answer(statusDescription="200 Fine Thanks"),
            False,
            AlbResponse(200, "Fine Thanks", [_cl(b"")], b""),
            id="description-code-stripped",
        ),
        pytest.param(
            _answer(statusDescription="Lovely"),
            False,
            AlbResponse(200, "Lovely", [_cl(b"")], b""),
            id="description-without-code-kept",
        ),
        pytest.param(
            _answer(body="café"),
            False,
            AlbResponse(200, "OK", [_cl("café".encode())], "café".encode()),
            id="text-body-utf8",
        ),
        pytest.param(
            _answer(isBase64Encoded=True, body=_b64(BINARY_BODY)),
            False,
            AlbResponse(200, "OK", [_cl(BINARY_BODY)], BINARY_BODY),
            id="base64-body-decoded",
        ),
        pytest.param(
            _answer(isBase64Encoded=True, body=base64.encodebytes(BINARY_BODY).decode()),
            False,
            AlbResponse(200, "OK", [_cl(BINARY_BODY)], BINARY_BODY),
            id="base64-with-line-breaks",
        ),
        pytest.param(
            _answer(isBase64Encoded=True, body="YWJj\r\nZGVm"),
            False,
            AlbResponse(200, "OK", [_cl(b"abcdef")], b"abcdef"),
            id="base64-with-crlf",
        ),
        pytest.param(
            _answer(body=_b64(b"hi")),
            False,
            AlbResponse(200, "OK", [_cl(b"aGk=")], b"aGk="),
            id="missing-isBase64Encoded-is-false",
        ),
        pytest.param(
            _answer(
                headers={"Content-Type": "text/plain"},
                multiValueHeaders={"X-Ignored": ["1"]},
            ),
            False,
            AlbResponse(200, "OK", [("Content-Type", "text/plain"), _cl(b"")], b""),
            id="single-mode-ignores-multiValueHeaders",
        ),
        pytest.param(
            _answer(headers={"X-Ignored": "1"}, multiValueHeaders={"X-Used": ["1", "2"]}),
            True,
            AlbResponse(200, "OK", [("X-Used", "1"), ("X-Used", "2"), _cl(b"")], b""),
            id="multi-mode-ignores-headers",
        ),
        pytest.param(
            _answer(multiValueHeaders=None, headers={"X-A": "1"}),
            False,
            AlbResponse(200, "OK", [("X-A", "1"), _cl(b"")], b""),
            id="null-in-the-other-mode-ignored",
        ),
        pytest.param(
            _answer(multiValueHeaders={"X-Empty": []}),
            True,
            AlbResponse(200, "OK", [_cl(b"")], b""),
            id="empty-value-list-no-header",
        ),
        pytest.param(
            _answer(headers={"set-cookie": "a=1", "Set-cookie": "b=2"}),
            False,
            AlbResponse(200, "OK", [("set-cookie", "a=1"), ("Set-cookie", "b=2"), _cl(b"")], b""),
            id="case-mutated-names-are-distinct-headers",
        ),
        pytest.param(
            _answer(
                body="abc",
                headers={
                    "Connection": "close, X-Private",
                    "X-Private": "secret",
                    "Transfer-Encoding": "chunked",
                    "Keep-Alive": "timeout=5",
                    "Upgrade": "h2c",
                    "Content-Length": "999",
                    "X-Kept": "yes",
                },
            ),
            False,
            AlbResponse(200, "OK", [("X-Kept", "yes"), _cl(b"abc")], b"abc"),
            id="hop-by-hop-and-content-length-dropped",
        ),
        pytest.param(
            orjson.dumps({"statusCode": 204, "body": "ignored", "headers": {"X-A": "1"}}),
            False,
            AlbResponse(204, "No Content", [("X-A", "1")], b""),
            id="204-no-body-no-length",
        ),
        pytest.param(
            orjson.dumps({"statusCode": 304, "headers": {"ETag": '"v1"'}}),
            False,
            AlbResponse(304, "Not Modified", [("ETag", '"v1"')], b""),
            id="304-no-body-no-length",
        ),
        pytest.param(
            orjson.dumps({"statusCode": 200, "body": "x", "extra": {"ignored": True}}),
            False,
            AlbResponse(200, "OK", [_cl(b"x")], b"x"),
            id="unknown-fields-ignored",
        ),
    ],
)
def test_decode_response(payload: bytes, multi_value: bool, expected: AlbResponse) -> None:
    assert decode_alb_response(payload, multi_value=multi_value) == expected


@pytest.mark.parametrize(
    ("payload", "multi_value", "match"),
    [
        pytest.param(b"not json", False, "not valid JSON", id="not-json"),
        pytest.param(b"", False, "not valid JSON", id="empty"),
        pytest.param(b"[200]", False, "JSON object", id="array"),
        pytest.param(b'"200"', False, "JSON object", id="string"),
        pytest.param(b"{}", False, "statusCode' is missing", id="no-status-code"),
        pytest.param(b'{"statusCode": "200"}', False, "integer", id="status-code-string"),
        pytest.param(b'{"statusCode": 200.0}', False, "integer", id="status-code-float"),
        pytest.param(b'{"statusCode": true}', False, "integer", id="status-code-bool"),
        pytest.param(b'{"statusCode": null}', False, "integer", id="status-code-null"),
        pytest.param(b'{"statusCode": 99}', False, "200-599", id="status-code-too-low"),
        pytest.param(b'{"statusCode": 101}', False, "200-599", id="status-code-informational"),
        pytest.param(b'{"statusCode": 600}', False, "200-599", id="status-code-too-high"),
        pytest.param(_answer(statusDescription=None), False, "null", id="description-null"),
        pytest.param(_answer(statusDescription=200), False, "string", id="description-number"),
        pytest.param(
            _answer(statusDescription="200 OK\r\nX-Evil: 1"), False, "CR", id="description-crlf"
        ),
        pytest.param(_answer(body=None), False, "null", id="body-null"),
        pytest.param(_answer(body={"a": 1}), False, "'body' must be a string", id="body-object"),
        pytest.param(_answer(isBase64Encoded=None), False, "null", id="isBase64Encoded-null"),
        pytest.param(
            _answer(isBase64Encoded="true"), False, "true or false", id="isBase64Encoded-string"
        ),
        pytest.param(
            _answer(isBase64Encoded=True, body="not base64!"), False, "base64", id="bad-base64"
        ),
        pytest.param(
            _answer(isBase64Encoded=True, body="aGk"), False, "base64", id="base64-no-padding"
        ),
        pytest.param(
            _answer(isBase64Encoded=True, body="aGk=é"), False, "base64", id="base64-non-ascii"
        ),
        pytest.param(
            _answer(isBase64Encoded=True, body="aG\rk="), False, "base64", id="base64-lone-cr"
        ),
        pytest.param(_answer(headers=None), False, "null", id="headers-null"),
        pytest.param(_answer(headers=["a"]), False, "object", id="headers-array"),
        pytest.param(_answer(multiValueHeaders=None), True, "null", id="multi-headers-null"),
        pytest.param(
            _answer(headers={"Content-Length": 12}),
            False,
            "must be strings",
            id="header-value-number",
        ),
        pytest.param(
            _answer(headers={"Access-Control-Allow-Credentials": True}),
            False,
            "must be strings",
            id="header-value-bool",
        ),
        pytest.param(_answer(headers={"X-A": None}), False, "must be strings", id="header-null"),
        pytest.param(
            _answer(headers={"X-A": ["1", "2"]}), False, "must be strings", id="list-in-single"
        ),
        pytest.param(
            _answer(multiValueHeaders={"X-A": "1"}), True, "list of strings", id="str-in-multi"
        ),
        pytest.param(
            _answer(multiValueHeaders={"X-A": ["1", 2]}), True, "must be strings", id="multi-int"
        ),
        pytest.param(_answer(headers={"X-A": "1\r\nX-B: 2"}), False, "CR", id="value-crlf"),
        pytest.param(_answer(headers={"X-A": "1\n"}), False, "CR", id="value-lf"),
        pytest.param(_answer(headers={"X-A": "1\x00"}), False, "NUL", id="value-nul"),
        pytest.param(_answer(headers={"X-A\r\nX-B": "1"}), False, "field name", id="name-crlf"),
        pytest.param(_answer(headers={"X A": "1"}), False, "field name", id="name-space"),
        pytest.param(_answer(headers={"": "1"}), False, "field name", id="name-empty"),
        pytest.param(_answer(headers={"X:A": "1"}), False, "field name", id="name-colon"),
    ],
)
def test_invalid_response(payload: bytes, multi_value: bool, match: str) -> None:
    with pytest.raises(AlbInvalidResponse, match=match) as caught:
        decode_alb_response(payload, multi_value=multi_value)
    assert (caught.value.status, caught.value.reason_code) == (502, "LambdaInvalidResponse")


def test_response_json_over_1_mb_is_response_too_large() -> None:
    body = "x" * MB
    with pytest.raises(AlbInvalidResponse) as caught:
        decode_alb_response(_answer(body=body), multi_value=False)
    assert (caught.value.status, caught.value.reason_code) == (502, "LambdaResponseTooLarge")


def test_response_json_of_1_mb_is_accepted() -> None:
    overhead = len(_answer(body=""))
    decoded = decode_alb_response(_answer(body="x" * (MB - overhead)), multi_value=False)
    assert len(decoded.body) == MB - overhead


def test_error_carries_status_reason_and_detail() -> None:
    error = AlbInvalidResponse("LambdaInvalidResponse", "'statusCode' is missing")
    assert isinstance(error, AlbError)
    assert str(error) == "LambdaInvalidResponse: 'statusCode' is missing"
    assert error.condition is AlbCondition.INVALID_RESPONSE


@pytest.mark.parametrize(
    ("condition", "status", "reason_code"),
    [
        pytest.param(AlbCondition.REQUEST_TOO_LARGE, 413, "LambdaRequestTooLarge", id="413"),
        pytest.param(AlbCondition.RESPONSE_TOO_LARGE, 502, "LambdaResponseTooLarge", id="big"),
        pytest.param(AlbCondition.INVALID_RESPONSE, 502, "LambdaInvalidResponse", id="invalid"),
        pytest.param(AlbCondition.FUNCTION_ERROR, 502, "LambdaUnhandled", id="unhandled"),
        pytest.param(AlbCondition.FUNCTION_TIMEOUT, 502, "LambdaUnhandled", id="timeout"),
        pytest.param(AlbCondition.THROTTLED, 502, "LambdaThrottling", id="throttled"),
        pytest.param(AlbCondition.NOT_FOUND, 502, "LambdaResourceNotFound", id="not-found"),
        pytest.param(AlbCondition.ACCESS_DENIED, 502, "LambdaAccessDenied", id="denied"),
        pytest.param(AlbCondition.CONNECTION_ERROR, 502, "LambdaConnectionError", id="conn"),
        pytest.param(AlbCondition.CONNECTION_TIMEOUT, 504, "LambdaConnectionTimeout", id="504"),
        pytest.param(AlbCondition.SERVICE_ERROR, 502, "LambdaServiceException", id="service"),
        pytest.param(AlbCondition.NO_TARGET, 503, None, id="no-target"),
        pytest.param(AlbCondition.WEBSOCKET, 400, "LambdaWebsocketNotSupported", id="websocket"),
        pytest.param(AlbCondition.BAD_REQUEST, 502, "LambdaBadRequest", id="bad-request"),
    ],
)
def test_failure_table(condition: AlbCondition, status: int, reason_code: str | None) -> None:
    failure = ALB_FAILURES[condition]
    assert (failure.status, failure.reason_code) == (status, reason_code)


def test_failure_table_covers_every_condition() -> None:
    assert set(ALB_FAILURES) == set(AlbCondition)


# --- hostile input (hypothesis) -------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    document=st.dictionaries(
        st.sampled_from(
            [
                "statusCode",
                "statusDescription",
                "headers",
                "multiValueHeaders",
                "body",
                "isBase64Encoded",
            ]
        ),
        _json_values | st.integers(100, 700),
    ),
    multi_value=st.booleans(),
)
def test_decoder_only_raises_invalid_response(document: dict[str, Any], multi_value: bool) -> None:
    # Any exception but AlbInvalidResponse fails the test; json.dumps as the Python runtime does.
    try:
        decoded = decode_alb_response(json.dumps(document).encode(), multi_value=multi_value)
    except AlbInvalidResponse:
        return
    assert 200 <= decoded.status <= 599
    for name, value in decoded.headers:
        assert "\r" not in name + value
        assert "\n" not in name + value


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.text("abc%=+& ", max_size=4),
            st.text("abc%=+ é", max_size=4),
        ),
        max_size=6,
    ),
)
def test_query_single_value_is_last_of_multi_value(pairs: list[tuple[str, str]]) -> None:
    raw = "&".join(f"{name}={value}" for name, value in pairs).encode().decode("latin-1")
    single = _event(query_string=raw)["queryStringParameters"]
    multi = _event(query_string=raw, multi_value=True)["multiValueQueryStringParameters"]
    assert single == {name: values[-1] for name, values in multi.items()}
    pieces = [piece for piece in raw.encode("latin-1").decode().split("&") if piece]
    assert sum(len(values) for values in multi.values()) == len(pieces)


# --- real adapters, in both header modes ----------------------------------------------------------


@dataclass
class FakeContext:
    """The parts of Lambda's context object (spec §12.1) the adapters may touch."""

    function_name: str = "alb-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:alb-test"
    memory_limit_in_mb: int = 128
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/alb-test"
    log_stream_name: str = "2024/01/01/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


ADAPTERS = ["mangum_app", "wsgi_app", "powertools_app"]
Call = Callable[..., AlbResponse]


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(f"tests.alb_functions.{request.param}")


@pytest.fixture(params=[False, True], ids=["single-value", "multi-value"])
def multi_value(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


def _call(handler: Callable[[dict[str, Any], Any], Any], multi_value: bool) -> Call:
    """A function origin in miniature: build the event, call the handler, decode its answer."""

    def call(method: str = "GET", path: str = "/", **kwargs: Any) -> AlbResponse:
        headers = [("host", "api.example.com"), *kwargs.pop("headers", [])]
        request = AlbRequest(method, path, "203.0.113.7", headers=headers, **kwargs)
        event = orjson.loads(
            build_alb_event(request, multi_value=multi_value, target_group_arn=ARN, trace_id=TRACE)
        )
        answer = handler(event, FakeContext())
        # The worker process hands back JSON bytes; serialise like the Python runtime does.
        return decode_alb_response(json.dumps(answer).encode(), multi_value=multi_value)

    return call


@pytest.fixture
def call(adapter: ModuleType, multi_value: bool) -> Call:
    return _call(adapter.handler, multi_value)


def _header(response: AlbResponse, name: str) -> list[str]:
    return [value for key, value in response.headers if key.lower() == name]


def test_adapter_echo_decodes_path_and_query(call: Call, multi_value: bool) -> None:
    response = call(
        "GET",
        "/echo/caf%C3%A9%20menu%2Fold",
        query_string="tag=a&tag=b&q=a%2Fb%20c&u=caf%C3%A9",
    )
    assert response.status == 200
    echoed = json.loads(response.body)
    assert echoed["method"] == "GET"
    assert echoed["path"] == "/echo/café menu/old"
    # Repeated keys: the function sees every value only when multi-value headers are on (§7.1).
    tags = [["tag", "a"], ["tag", "b"]] if multi_value else [["tag", "b"]]
    assert echoed["query"] == [*tags, ["q", "a/b c"], ["u", "café"]]


def test_adapter_echo_sees_alb_headers(call: Call) -> None:
    response = call("GET", "/echo", headers=[("x-forwarded-for", "198.51.100.1")])
    headers = json.loads(response.body)["headers"]
    assert headers["host"] == "api.example.com"
    assert headers["x-forwarded-for"] == "198.51.100.1, 203.0.113.7"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-amzn-trace-id"] == f"Root={TRACE}"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param('{"name": "café"}'.encode(), "application/json", id="json-text"),
        pytest.param(BINARY_BODY, "application/octet-stream", id="binary-base64"),
    ],
)
def test_adapter_echo_body_intact(call: Call, body: bytes, content_type: str) -> None:
    response = call("POST", "/echo", headers=[("content-type", content_type)], body=body)
    echoed = json.loads(response.body)
    assert echoed["method"] == "POST"
    assert base64.b64decode(echoed["body_base64"]) == body


def test_adapter_binary_response_bytes_intact(call: Call) -> None:
    response = call("GET", "/binary")
    assert response.status == 200
    assert _header(response, "content-type") == ["image/png"]
    assert response.body == BINARY_BODY
    assert _header(response, "content-length") == [str(len(BINARY_BODY))]


def test_adapter_404(call: Call) -> None:
    response = call("GET", "/missing")
    assert (response.status, response.reason) == (404, "Not Found")
    assert json.loads(response.body) == {"error": "no such thing"}


def test_adapter_unknown_route_is_404(call: Call) -> None:
    assert call("GET", "/nowhere").status == 404


def _cookie_names(response: AlbResponse) -> list[str]:
    return [value.split("=")[0] for value in _header(response, "set-cookie")]


def test_adapter_two_cookies_in_multi_value_mode(adapter: ModuleType) -> None:
    response = _call(adapter.handler, True)("GET", "/cookies")
    assert response.status == 200
    assert _cookie_names(response) == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Mangum writes repeated headers under case-mutated names (set-cookie, Set-cookie), which
        # the load balancer sends as separate header lines: both cookies arrive.
        pytest.param("mangum_app", ["a", "b"], id="mangum-case-mutated-both"),
        pytest.param("wsgi_app", ["b"], id="apig-wsgi-last-only"),
    ],
)
def test_adapter_cookies_in_single_value_mode(name: str, expected: list[str]) -> None:
    handler = importlib.import_module(f"tests.alb_functions.{name}").handler
    assert _cookie_names(_call(handler, False)("GET", "/cookies")) == expected


def test_powertools_single_value_mode_sends_last_cookie_and_warns() -> None:
    from tests.alb_functions import powertools_app

    with pytest.warns(UserWarning, match="last cookie only"):
        response = _call(powertools_app.handler, False)("GET", "/cookies")
    assert _cookie_names(response) == ["b"]


# --- examples/api ---------------------------------------------------------------------------------


@pytest.fixture
def api(multi_value: bool) -> Iterator[Call]:
    module = importlib.import_module("examples.api.app")
    module._items.clear()
    yield _call(module.handler, multi_value)
    module._items.clear()


def test_example_api_items(api: Call) -> None:
    json_type = [("content-type", "application/json")]
    created = api("POST", "/api/items", headers=json_type, body=b'{"name": "tea", "tags": ["a"]}')
    assert created.status == 201
    item = json.loads(created.body)
    assert item["name"] == "tea"
    assert _header(created, "location") == [f"/api/items/{item['id']}"]
    api("POST", "/api/items", headers=json_type, body=b'{"name": "cake", "tags": ["b"]}')

    listed = json.loads(api("GET", "/api/items").body)["items"]
    assert [entry["name"] for entry in listed] == ["tea", "cake"]
    assert json.loads(api("GET", f"/api/items/{item['id']}").body) == item

    deleted = api("DELETE", f"/api/items/{item['id']}")
    assert (deleted.status, deleted.body) == (204, b"")
    assert api("GET", f"/api/items/{item['id']}").status == 404


def test_example_api_filters_by_repeated_tag(api: Call, multi_value: bool) -> None:
    json_type = [("content-type", "application/json")]
    for name, tag in [("tea", "a"), ("cake", "b"), ("bread", "c")]:
        api(
            "POST",
            "/api/items",
            headers=json_type,
            body=f'{{"name": "{name}", "tags": ["{tag}"]}}'.encode(),
        )
    names = [
        item["name"]
        for item in json.loads(api("GET", "/api/items", query_string="tag=a&tag=b").body)["items"]
    ]
    # Single-value mode shows the function only the last `tag` (§7.1).
    assert names == (["tea", "cake"] if multi_value else ["cake"])


def test_example_api_rejects_bad_item(api: Call) -> None:
    response = api("POST", "/api/items", headers=[("content-type", "application/json")], body=b"{}")
    assert response.status == 400
    assert "name" in json.loads(response.body)["error"]


def test_example_api_echo(api: Call) -> None:
    response = api("PUT", "/api/echo/x%20y", query_string="k=v%26w", body=b"\x00\x01")
    echoed = json.loads(response.body)
    assert (echoed["method"], echoed["path"], echoed["query"]) == (
        "PUT",
        "/api/echo/x y",
        [["k", "v&w"]],
    )
    assert base64.b64decode(echoed["body_base64"]) == b"\x00\x01"
