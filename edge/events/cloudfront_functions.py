"""CloudFront Functions events and results: the request (and response) in, what the function
returned out. Pure: no I/O.

The event (version "1.0") shows lower-case header maps of `{value}` with `multiValue` for
repeated names, the query string and the cookies as such maps (response cookies carry their
`attributes`), the viewer's ip and the context. The function returns the request, or a response
object (viewer-request: a generated answer; viewer-response: the answer to send). A changed
`multiValue` wins over `value`; a changed `value` alone replaces the first value only. `method`
is read-only. A result that breaks a rule raises `FunctionValidationError` (502 at the edge).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from edge.events.cloudfront import EventConfig, Headers, Request, Response
from edge.events.cloudfront_result import GeneratedResponse, UpdatedRequest, UpdatedResponse

FunctionEventType = Literal["viewer-request", "viewer-response"]
FunctionOutcome = UpdatedRequest | GeneratedResponse | UpdatedResponse

# CloudFront's quota: a response a function generates (headers and body) is at most 40 KB.
MAX_GENERATED_BYTES: Final = 40 * 1024


class FunctionValidationError(Exception):
    """The function's result breaks a CloudFront Functions rule; the message says which."""


@dataclass(frozen=True, slots=True)
class FunctionEvent:
    """A built event: its JSON `payload` and the `document` it was made from (to compare the
    result with)."""

    event_type: FunctionEventType
    payload: bytes
    document: dict[str, Any]


def _value_map(pairs: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in pairs:
        entry = out.get(name)
        if entry is None:
            out[name] = {"value": value}
        else:
            many = entry.setdefault("multiValue", [{"value": entry["value"]}])
            many.append({"value": value})
    return out


def parse_querystring(raw: str) -> dict[str, dict[str, Any]]:
    """`a=1&b=2&a=3` as CloudFront Functions show it (values as received, not decoded)."""
    pairs = []
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return _value_map(pairs)


def _request_cookies(headers: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    pairs = []
    for name, value in headers:
        if name.lower() != "cookie":
            continue
        for part in value.split(";"):
            part = part.strip()
            if part:
                key, _, cookie_value = part.partition("=")
                pairs.append((key.strip(), cookie_value.strip()))
    return _value_map(pairs)


def _response_cookies(headers: Sequence[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in headers:
        if name.lower() != "set-cookie":
            continue
        first, _, attributes = value.partition(";")
        key, _, cookie_value = first.partition("=")
        item = {"value": cookie_value.strip(), "attributes": attributes.strip()}
        entry = out.get(key.strip())
        if entry is None:
            out[key.strip()] = dict(item)
        else:
            many = entry.setdefault(
                "multiValue", [{"value": entry["value"], "attributes": entry["attributes"]}]
            )
            many.append(item)
    return out


def build_function_event(
    event_type: FunctionEventType,
    config: EventConfig,
    request: Request,
    response: Response | None = None,
) -> FunctionEvent:
    """The CloudFront Functions event for `request` (and, at viewer-response, `response`)."""
    headers = [(n.lower(), v) for n, v in request.headers if n.lower() != "cookie"]
    document: dict[str, Any] = {
        "version": "1.0",
        "context": {
            "distributionDomainName": config.distribution_domain_name,
            "distributionId": config.distribution_id,
            "eventType": event_type,
            "requestId": config.request_id,
        },
        "viewer": {"ip": request.client_ip},
        "request": {
            "method": request.method,
            "uri": request.uri,
            "querystring": parse_querystring(request.querystring),
            "headers": _value_map(headers),
            "cookies": _request_cookies(request.headers),
        },
    }
    if event_type == "viewer-response":
        assert response is not None
        shown = [(n.lower(), v) for n, v in response.headers if n.lower() != "set-cookie"]
        document["response"] = {
            "statusCode": response.status,
            "statusDescription": response.status_description,
            "headers": _value_map(shown),
            "cookies": _response_cookies(response.headers),
        }
    return FunctionEvent(event_type, orjson.dumps(document), document)


def compute_utilization(payload: bytes) -> int | None:
    """The run's compute utilization (0-100) the runtime reported with the result."""
    try:
        value = orjson.loads(payload).get("computeUtilization")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def decode_function_result(event: FunctionEvent, payload: bytes) -> FunctionOutcome:
    """What the pipeline does with the function's result; raises FunctionValidationError."""
    try:
        result = orjson.loads(payload).get("result")
    except (orjson.JSONDecodeError, AttributeError):
        raise FunctionValidationError("the result is not JSON") from None
    if not isinstance(result, dict):
        raise FunctionValidationError(
            f"the function returned {_kind(result)}; return the event's request or response "
            "object (or a response object to answer the viewer)"
        )
    original = event.document
    if event.event_type == "viewer-request":
        if "statusCode" in result:
            status, description, headers, body = _response_parts(result, None)
            size = len(body or b"") + sum(len(n) + len(v) + 4 for n, v in headers)
            if size > MAX_GENERATED_BYTES:
                raise FunctionValidationError(
                    f"the generated response is {size} bytes; CloudFront allows at most "
                    f"{MAX_GENERATED_BYTES} (40 KB) of headers and body"
                )
            return GeneratedResponse(status, description, headers, body or b"")
        return _request_outcome(result, original["request"])
    status, description, headers, body = _response_parts(result, original["response"])
    return UpdatedResponse(status, description, headers, body)


def _request_outcome(result: dict[str, Any], original: dict[str, Any]) -> UpdatedRequest:
    if result.get("method", original["method"]) != original["method"]:
        raise FunctionValidationError(
            f"the function changed request.method to {result.get('method')!r}; method is "
            "read-only in CloudFront Functions"
        )
    uri = result.get("uri", original["uri"])
    if not isinstance(uri, str) or not uri.startswith("/") or any(c in uri for c in " \r\n\t"):
        raise FunctionValidationError(
            f"request.uri must be a path starting with '/' and without whitespace, found {uri!r}"
        )
    query = result.get("querystring", original["querystring"])
    if isinstance(query, str):
        querystring = query.removeprefix("?")
    elif isinstance(query, dict):
        pairs = _pairs("request.querystring", query, original["querystring"])
        querystring = "&".join(f"{n}={v}" if v else n for n, v in pairs)
    else:
        raise FunctionValidationError("request.querystring must be an object of {value} entries")
    headers = _pairs("request.headers", result.get("headers", {}), original["headers"])
    cookies = _pairs("request.cookies", result.get("cookies", {}), original["cookies"])
    if cookies:
        headers.append(("cookie", "; ".join(f"{n}={v}" for n, v in cookies)))
    return UpdatedRequest(uri, querystring, tuple(headers))


def _response_parts(
    result: dict[str, Any], original: dict[str, Any] | None
) -> tuple[int, str, Headers, bytes | None]:
    original = original or {"headers": {}, "cookies": {}, "statusDescription": ""}
    status = result.get("statusCode", original.get("statusCode"))
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise FunctionValidationError(
            f"response.statusCode must be an integer from 100 to 599, found {status!r}"
        )
    description = result.get("statusDescription", original.get("statusDescription", ""))
    if not isinstance(description, str):
        raise FunctionValidationError("response.statusDescription must be a string")
    headers = _pairs("response.headers", result.get("headers", {}), original["headers"])
    cookies = result.get("cookies", {})
    if not isinstance(cookies, dict):
        raise FunctionValidationError("response.cookies must be an object")
    for name, entry in cookies.items():
        values = _cookie_values(name, entry, original["cookies"].get(name))
        headers += [("set-cookie", f"{name}={v}" + (f"; {a}" if a else "")) for v, a in values]
    return status, description, tuple(headers), _body(result.get("body"))


def _body(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, dict) and isinstance(body.get("data"), str):
        encoding = body.get("encoding", "text")
        if encoding == "text":
            return str(body["data"]).encode("utf-8")
        if encoding == "base64":
            try:
                return base64.b64decode(body["data"], validate=True)
            except (binascii.Error, ValueError):
                raise FunctionValidationError("response.body.data is not valid base64") from None
    raise FunctionValidationError(
        'response.body must be a string or {"encoding": "text" | "base64", "data": "..."}'
    )


def _entry_values(where: str, entry: Any, before: dict[str, Any] | None) -> list[str]:
    """The values of one map entry under the multi-value update rule."""
    if not isinstance(entry, dict):
        raise FunctionValidationError(f'{where} must be an object {{"value": "..."}}')
    many = entry.get("multiValue")
    before_many = (before or {}).get("multiValue")
    if many is not None and many != before_many:
        if not isinstance(many, list) or not all(
            isinstance(x, dict) and isinstance(x.get("value"), str) for x in many
        ):
            raise FunctionValidationError(f'{where}.multiValue must be a list of {{"value": ""}}')
        return [x["value"] for x in many]
    value = entry.get("value")
    if not isinstance(value, str):
        raise FunctionValidationError(f"{where}.value must be a string, found {_kind(value)}")
    old = [x["value"] for x in before_many] if before_many else None
    if old and before is not None and value != before.get("value"):
        return [value, *old[1:]]
    return old if old and value == (before or {}).get("value") else [value]


def _pairs(where: str, mapping: Any, before: dict[str, Any]) -> list[tuple[str, str]]:
    if not isinstance(mapping, dict):
        raise FunctionValidationError(f"{where} must be an object")
    out: list[tuple[str, str]] = []
    for name, entry in mapping.items():
        old = before.get(name)
        if (
            old is not None and entry == old
        ):  # unchanged: its values as they came (the common case, kept fast)
            many = old.get("multiValue")
            if many is None:
                out.append((name, old["value"]))
            else:
                out += [(name, x["value"]) for x in many]
            continue
        out += [(name, v) for v in _entry_values(f"{where}[{name!r}]", entry, old)]
    return out


def _cookie_values(name: str, entry: Any, before: dict[str, Any] | None) -> list[tuple[str, str]]:
    where = f"response.cookies[{name!r}]"
    if not isinstance(entry, dict):
        raise FunctionValidationError(f'{where} must be an object {{"value": "..."}}')
    many = entry.get("multiValue")
    if many is not None and many != (before or {}).get("multiValue"):
        if not isinstance(many, list) or not all(isinstance(x, dict) for x in many):
            raise FunctionValidationError(f"{where}.multiValue must be a list of objects")
        return [(str(x.get("value", "")), str(x.get("attributes", ""))) for x in many]
    value = entry.get("value")
    if not isinstance(value, str):
        raise FunctionValidationError(f"{where}.value must be a string, found {_kind(value)}")
    return [(value, str(entry.get("attributes", "")))]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def sample_function_event(
    event_type: FunctionEventType,
    *,
    uri: str = "/",
    method: str = "GET",
    querystring: str = "",
    headers: Sequence[tuple[str, str]] = (),
    status: int = 200,
) -> dict[str, Any]:
    """A valid CloudFront Functions event (`edge events cloudfront-function TRIGGER`)."""
    shown = list(headers) or [("host", "d111111abcdef8.cloudfront.net"), ("accept", "*/*")]
    request = Request(
        client_ip="198.51.100.11", method=method, uri=uri, querystring=querystring, headers=shown
    )
    response = Response(
        status=status,
        status_description="OK" if status == 200 else "",
        headers=[("content-type", "text/html"), ("server", "origin")],
    )
    config = EventConfig(
        "d111111abcdef8.cloudfront.net",
        "EDFDVBD6EXAMPLE",
        "4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==",
    )
    return build_function_event(event_type, config, request, response).document


def is_function_event(document: Any) -> bool:
    """Whether `document` has the CloudFront Functions event shape (version 1.0, viewer)."""
    return (
        isinstance(document, dict)
        and document.get("version") == "1.0"
        and isinstance(document.get("context"), dict)
        and document["context"].get("eventType") in ("viewer-request", "viewer-response")
        and isinstance(document.get("request"), dict)
    )
