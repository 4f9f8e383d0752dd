"""The admin listener's deployment API (JSON):

- `POST /deployments` starts one: `{"function", "alias", "version", "strategy"}` and optionally
  `"pre_traffic_hook"`, `"post_traffic_hook"` (function names), `"max_error_rate"`,
  `"max_throttles"`, `"max_p99_ms"`, `"min_invocations"` (null: not checked) and
  `"time_scale"`; answers 201 with the deployment, 400 / 404 / 409 with
  `{"error", "code"}` (409: a deployment of that alias is in progress).
- `GET /deployments` (`?function=&alias=`): `{"deployments": [...]}`, newest first.
- `GET /deployments/{id}`: one deployment, with the current step's counts per version.
- `POST /deployments/{id}/stop`: rolls it back; answers once it ended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

import orjson
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.config import EdgeConfig
from edge.invoke import InvokeService
from edge.lambda_service.deploy import Deployer, DeploymentRefused
from edge.lambda_service.deploy_record import DeploymentRequest, Thresholds

MAX_BODY_BYTES = 16 * 1024

_THRESHOLDS = {f.name for f in dataclasses.fields(Thresholds)}
_FIELDS = {
    "function",
    "alias",
    "version",
    "strategy",
    "pre_traffic_hook",
    "post_traffic_hook",
    "time_scale",
} | _THRESHOLDS


def _refused(refusal: DeploymentRefused) -> Response:
    return JSONResponse({"error": refusal.message, "code": refusal.code}, refusal.status)


def parse_request(document: Any) -> DeploymentRequest:
    """The deployment `document` asks for (DeploymentRefused 400 when it is not one)."""
    if not isinstance(document, dict):
        raise _invalid("the body must be a JSON object")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise _invalid(
            f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(_FIELDS))}"
        )
    names: dict[str, str] = {}
    for key in ("function", "alias", "version", "strategy"):
        value = document.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and key == "version":
            value = str(value)
        if not isinstance(value, str) or not value:
            raise _invalid(f'"{key}" is required (a string)')
        names[key] = value
    hooks: dict[str, str | None] = {}
    for key in ("pre_traffic_hook", "post_traffic_hook"):
        value = document.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise _invalid(f'"{key}" must be a function name')
        hooks[key] = value
    defaults = Thresholds()
    limits: dict[str, Any] = {}
    for key in sorted(_THRESHOLDS):
        if key not in document:
            continue
        value = document[key]
        if key == "min_invocations" and value is None:
            raise _invalid('"min_invocations" must be a number')
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise _invalid(f'"{key}" must be a number at least 0, or null (not checked)')
        limits[key] = value
    if limits.get("max_error_rate") is not None and limits["max_error_rate"] > 1:
        raise _invalid('"max_error_rate" is a fraction: 0.05 is 5 %')
    for key in ("max_throttles", "min_invocations"):
        if limits.get(key) is not None:
            limits[key] = int(limits[key])
    scale = document.get("time_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise _invalid('"time_scale" must be a number above 0')
    return DeploymentRequest(
        function=names["function"],
        alias=names["alias"],
        version=names["version"],
        strategy=names["strategy"],
        thresholds=dataclasses.replace(defaults, **limits),
        time_scale=float(scale),
        pre_traffic_hook=hooks["pre_traffic_hook"],
        post_traffic_hook=hooks["post_traffic_hook"],
    )


def _invalid(message: str) -> DeploymentRefused:
    return DeploymentRefused(400, "InvalidRequest", message)


def deployment_routes(deployer: Deployer) -> list[Route]:
    """The API's routes, to mount on the admin app."""

    async def create(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _refused(DeploymentRefused(413, "TooLarge", "the body is too large"))
        try:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise _invalid(f"the body is not JSON: {exc}") from None
            deployment = deployer.start(parse_request(document))
        except DeploymentRefused as refusal:
            return _refused(refusal)
        return JSONResponse(deployer.document(deployment), 201)

    async def listing(request: Request) -> Response:
        found = deployer.list(
            request.query_params.get("function"), request.query_params.get("alias")
        )
        return JSONResponse({"deployments": [deployer.document(d) for d in found]})

    async def one(request: Request) -> Response:
        try:
            deployment = deployer.get(request.path_params["id"])
        except DeploymentRefused as refusal:
            return _refused(refusal)
        return JSONResponse(deployer.document(deployment))

    async def stop(request: Request) -> Response:
        try:
            deployment = await deployer.stop(request.path_params["id"])
        except DeploymentRefused as refusal:
            return _refused(refusal)
        return JSONResponse(deployer.document(deployment))

    return [
        Route("/deployments", create, methods=["POST"]),
        Route("/deployments", listing, methods=["GET"]),
        Route("/deployments/{id}", one, methods=["GET"]),
        Route("/deployments/{id}/stop", stop, methods=["POST"]),
    ]


def build_deployer(
    config: EdgeConfig,
    invoke: InvokeService,
    *,
    metrics: CollectorRegistry | None,
    flush: Callable[[], None] | None = None,
) -> Deployer:
    """The deployer of the admin listener's process: the store of `[server] state_dir`, hooks
    run through `invoke` (Lambda's Invoke, `$LATEST` of the hook function), alarms read from
    `metrics` (what `/metrics` shows; None: the default registry) and the Invoke API's own."""
    from prometheus_client import REGISTRY

    from edge.lambda_service.deploy import DeploymentOwners
    from edge.lambda_service.deploy_metrics import RegistrySampler
    from edge.lambda_service.store import FunctionStore, shared_store
    from sandbox import new_request_id

    async def run_hook(name: str, payload: bytes) -> bytes:
        result = await invoke.invoke(name, payload, new_request_id())
        return result.payload

    scraped = metrics if metrics is not None else REGISTRY
    # With a cluster, deployments are claimed per node and taken over when a node dies.
    shared = shared_store(config.server.state_dir)
    owners = cast("DeploymentOwners | None", shared if hasattr(shared, "claim") else None)
    return Deployer(
        FunctionStore(config.server.state_dir),
        owners=owners,
        claim_seconds=max(config.cluster.lease_seconds, 1.0),
        run_hook=run_hook,
        sample=RegistrySampler(lambda: (scraped, invoke.metrics_registry), flush=flush),
        state_dir=config.server.state_dir,
        functions=frozenset(config.functions),
    )
