"""An AWS Lambda Powertools `ALBResolver` app, as deployed to an ALB target: `handler`."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import ALBResolver, Response, content_types
from aws_lambda_powertools.shared.cookies import Cookie

from tests.alb_functions import BINARY_BODY

# The ALB passes query parameters still percent-encoded (lambda-edge-spec §7.1): decode them.
app = ALBResolver(decode_query_parameters=True)

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def _echo() -> dict[str, Any]:
    event = app.current_event
    query = [
        [name, value]
        for name, values in event.resolved_query_string_parameters.items()
        for value in values
    ]
    body = event.body or ""
    raw = base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")
    return {
        "method": event.http_method,
        "path": unquote(event.path),
        "query": query,
        "headers": {
            name.lower(): value if isinstance(value, str) else ", ".join(value)
            for name, value in event.resolved_headers_field.items()
        },
        "body_base64": base64.b64encode(raw).decode("ascii"),
    }


@app.route("/echo", method=METHODS)
def echo() -> dict[str, Any]:
    return _echo()


@app.route("/echo/<rest>", method=METHODS)
def echo_rest(rest: str) -> dict[str, Any]:
    return _echo()


@app.get("/binary")
def binary() -> Response[bytes]:
    return Response(status_code=200, content_type="image/png", body=BINARY_BODY)


@app.get("/cookies")
def cookies() -> Response[str]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body='{"cookies": 2}',
        cookies=[Cookie(name="a", value="1"), Cookie(name="b", value="2")],
    )


@app.get("/missing")
def missing() -> Response[str]:
    return Response(
        status_code=404,
        content_type=content_types.APPLICATION_JSON,
        body='{"error": "no such thing"}',
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
