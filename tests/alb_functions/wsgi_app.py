"""A plain WSGI app behind apig-wsgi, as deployed to an ALB target: `handler`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from apig_wsgi import make_lambda_handler

from tests.alb_functions import BINARY_BODY

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _json(start_response: StartResponse, status: str, data: object) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [body]


def _echo(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    return _json(
        start_response,
        "200 OK",
        {
            "method": environ["REQUEST_METHOD"],
            # PEP 3333: PATH_INFO carries the decoded bytes as ISO-8859-1.
            "path": environ["PATH_INFO"].encode("latin-1").decode("utf-8"),
            "query": [list(pair) for pair in parse_qsl(environ["QUERY_STRING"], True)],
            "headers": headers,
            "body_base64": base64.b64encode(body).decode("ascii"),
        },
    )


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/echo" or path.startswith("/echo/"):
        return _echo(environ, start_response)
    if path == "/binary":
        start_response("200 OK", [("Content-Type", "image/png")])
        return [BINARY_BODY]
    if path == "/cookies":
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Set-Cookie", "a=1; Path=/"),
                ("Set-Cookie", "b=2; Path=/"),
            ],
        )
        return [b'{"cookies": 2}']
    return _json(start_response, "404 Not Found", {"error": "no such thing"})


handler = make_lambda_handler(app, binary_support=True)
