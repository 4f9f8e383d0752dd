"""A Starlette ASGI app behind Mangum, as deployed to an ALB target: `handler`."""

from __future__ import annotations

import base64

from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.alb_functions import BINARY_BODY

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": [list(pair) for pair in request.query_params.multi_items()],
            "headers": dict(request.headers),
            "body_base64": base64.b64encode(body).decode("ascii"),
        }
    )


async def binary(request: Request) -> Response:
    return Response(BINARY_BODY, media_type="image/png")


async def cookies(request: Request) -> Response:
    response = JSONResponse({"cookies": 2})
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


async def missing(request: Request) -> Response:
    return JSONResponse({"error": "no such thing"}, status_code=404)


app = Starlette(
    routes=[
        Route("/echo", echo, methods=METHODS),
        Route("/echo/{rest:path}", echo, methods=METHODS),
        Route("/binary", binary),
        Route("/cookies", cookies),
        Route("/missing", missing),
    ]
)

handler = Mangum(app, lifespan="off")
