"""A small JSON API written as an AWS Lambda function behind an Application Load Balancer.

The function *is* the origin: the load balancer (or the edge, for a behavior whose origin is a
function) turns each HTTP request into an ALB event, calls `handler(event, context)` and turns the
returned JSON back into HTTP. Starlette does the routing; Mangum adapts ALB events to ASGI and
works with multi-value headers on or off.

Routes:

- `GET /api/items` -> `{"items": [...]}`; `?tag=a&tag=b` keeps items having any of the tags.
- `POST /api/items` with `{"name": str, "tags": [str, ...]}` -> 201 and the item, with `Location`.
- `GET /api/items/{id}` -> the item, or 404; `DELETE /api/items/{id}` -> 204, or 404.
- `ANY /api/echo[/...]` -> what the function saw: method, path, query pairs, headers, body.

Items live in memory, one store per execution environment, as in a warm Lambda container: a
sketch of an API, not a database.

Deploy to AWS (Python 3.11+):

1. `pip install starlette mangum -t build/ && cp examples/api/app.py build/`, zip `build/`.
2. `aws lambda create-function --function-name items-api --runtime python3.12
   --handler app.handler --zip-file fileb://api.zip --role <execution role ARN>`.
3. `aws elbv2 create-target-group --name items-api --target-type lambda`, then
   `aws lambda add-permission --function-name items-api --statement-id alb
   --principal elasticloadbalancing.amazonaws.com --action lambda:InvokeFunction
   --source-arn <target group ARN>` and `aws elbv2 register-targets --target-group-arn
   <target group ARN> --targets Id=<function ARN>`.
4. Optionally `aws elbv2 modify-target-group-attributes --target-group-arn <ARN>
   --attributes Key=lambda.multi_value_headers.enabled,Value=true` (repeated query keys and
   several `Set-Cookie` headers need it).
5. Forward `/api/*` to the target group with a listener rule.

Run it on the edge instead, as a function origin:

    [origins.api]
    function = "items-api"
    multi_value_headers = true

    [[behaviors]]
    path = "/api/*"
    origin = "api"
    cache = "disabled"

    [functions.items-api]
    runtime = "python"
    handler = "examples/api/app.handler"
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_items: dict[int, dict[str, Any]] = {}
_ids = itertools.count(1)


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def list_items(request: Request) -> Response:
    tags = set(request.query_params.getlist("tag"))
    items = [item for item in _items.values() if not tags or tags & set(item["tags"])]
    return JSONResponse({"items": items})


async def create_item(request: Request) -> Response:
    try:
        data = await request.json()
    except ValueError:
        return _problem(400, "the body must be JSON")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return _problem(400, "'name' must be a non-empty string")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return _problem(400, "'tags' must be a list of strings")
    item = {"id": next(_ids), "name": data["name"], "tags": tags}
    _items[item["id"]] = item
    return JSONResponse(item, status_code=201, headers={"Location": f"/api/items/{item['id']}"})


async def get_item(request: Request) -> Response:
    item = _items.get(request.path_params["item_id"])
    if item is None:
        return _problem(404, "no such item")
    return JSONResponse(item)


async def delete_item(request: Request) -> Response:
    if _items.pop(request.path_params["item_id"], None) is None:
        return _problem(404, "no such item")
    return Response(status_code=204)


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


_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

app = Starlette(
    routes=[
        Route("/api/items", list_items, methods=["GET"]),
        Route("/api/items", create_item, methods=["POST"]),
        Route("/api/items/{item_id:int}", get_item, methods=["GET"]),
        Route("/api/items/{item_id:int}", delete_item, methods=["DELETE"]),
        Route("/api/echo", echo, methods=_ANY),
        Route("/api/echo/{rest:path}", echo, methods=_ANY),
    ]
)

# The Lambda entry point. No lifespan: a Lambda environment has no startup/shutdown hooks to
# run them in.
handler = Mangum(app, lifespan="off")
