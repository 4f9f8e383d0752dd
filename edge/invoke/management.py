"""Lambda's version and alias calls on the admin listener, in AWS's REST-JSON shapes.

PublishVersion, ListVersionsByFunction, CreateAlias, GetAlias, UpdateAlias, DeleteAlias and
ListAliases (the 2015-03-31 paths), so boto3's `lambda` client and the AWS CLI work with
`endpoint_url`. The record is `edge.lambda_service.FunctionStore` in the state directory: it
survives restarts, and every process serving the same edge.toml sees a change within a second
(the alias router looks at the store's file). Errors are those of `edge.invoke.errors`, plus
ResourceConflictException (409) and PreconditionFailedException (412).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge.config import EdgeConfig, FunctionOriginConfig
from edge.config.schema import TRIGGERS
from edge.functions import latest_code_sha256, publish_function
from edge.invoke import errors
from edge.invoke.errors import InvokeApiError
from edge.invoke.names import LATEST, function_arn, parse_function_name
from edge.invoke.service import InvokeService
from edge.lambda_service import (
    Alias,
    AliasConflict,
    CodeTooLarge,
    InvalidAlias,
    NotFound,
    RevisionMismatch,
    StateUnavailable,
)

API_PREFIX = "/2015-03-31/functions"
_JSON = "application/json"
# The largest management request body (a description is at most 256 characters).
_BODY_LIMIT_BYTES = 64 * 1024

Handler = Callable[[Request, str], Awaitable[Response]]
Endpoint = Callable[[Handler], Callable[[Request], Awaitable[Response]]]


class Descriptions(Protocol):
    def configuration(self, name: str, version: str = LATEST) -> dict[str, Any]: ...


def conflict(message: str) -> InvokeApiError:
    return InvokeApiError(409, "ResourceConflictException", message)


def precondition_failed(message: str) -> InvokeApiError:
    return InvokeApiError(412, "PreconditionFailedException", message)


def _not_found(name: str, qualifier: str | None, what: str = "Function") -> InvokeApiError:
    error = errors.function_not_found(name, qualifier)
    if what != "Function":
        error.message = f"{what} not found: {function_arn(name, qualifier)}"
    return error


def alias_document(alias: Alias) -> dict[str, Any]:
    """Lambda's AliasConfiguration."""
    document: dict[str, Any] = {
        "AliasArn": function_arn(alias.function, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.additional_weights:
        document["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.additional_weights)}
    return document


def referenced_aliases(config: EdgeConfig) -> dict[tuple[str, str], str]:
    """(function, alias) -> the key of edge.toml that names it (triggers, function origins,
    `[functions.NAME.aliases.ALIAS]`): such an alias cannot be deleted through the API."""
    found: dict[tuple[str, str], str] = {}
    for index, behavior in enumerate(config.behaviors):
        for trigger in TRIGGERS:
            association = behavior.association(trigger)
            if association is not None and association.qualifier:
                found[(association.name, association.qualifier)] = f"behaviors[{index}].{trigger}"
    for name, origin in config.origins.items():
        if isinstance(origin, FunctionOriginConfig) and ":" in origin.function:
            function, _, qualifier = origin.function.partition(":")
            found[(function, qualifier)] = f"origins.{name}.function"
    for name, function_config in config.functions.items():
        for alias in function_config.aliases:
            found[(name, alias)] = f"functions.{name}.aliases.{alias}"
    return found


def _page(request: Request, items: list[Any], default: int = 50) -> tuple[list[Any], str | None]:
    """Lambda's Marker / MaxItems pagination over `items` (the marker is an offset)."""
    marker = request.query_params.get("Marker")
    start = int(marker) if marker and marker.isdigit() else 0
    text = request.query_params.get("MaxItems", str(default))
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise errors.invalid_parameter(
            f"1 validation error detected: Value '{text}' at 'maxItems' failed to satisfy "
            "constraint: Member must have value between 1 and 10000"
        )
    end = start + int(text)
    return items[start:end], (str(end) if end < len(items) else None)


async def _json_body(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _BODY_LIMIT_BYTES:
            raise errors.request_too_large(len(body), _BODY_LIMIT_BYTES)
    if not body:
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.invalid_content(f"Could not parse request body into json: {exc}") from None
    if not isinstance(document, dict):
        raise errors.invalid_content("The request body must be a JSON object")
    return document


def _text(document: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = document.get(key)
    if value is None:
        if required:
            raise errors.invalid_parameter(
                f"1 validation error detected: Value null at '{key[0].lower()}{key[1:]}' "
                "failed to satisfy constraint: Member must not be null"
            )
        return None
    if not isinstance(value, str):
        raise errors.invalid_parameter(f"{key} must be a string, found {value!r}")
    return value


def _weights(document: Mapping[str, Any]) -> dict[str, float] | None:
    """RoutingConfig.AdditionalVersionWeights; None when RoutingConfig is absent."""
    routing = document.get("RoutingConfig")
    if routing is None:
        return None
    weights = routing.get("AdditionalVersionWeights", {}) if isinstance(routing, dict) else None
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in weights.items()
    ):
        raise errors.invalid_parameter(
            "RoutingConfig.AdditionalVersionWeights must map a version to a weight from 0.0 "
            f"to 1.0, found {routing!r}"
        )
    return {k: float(v) for k, v in weights.items()}


def management_routes(
    service: InvokeService, descriptions: Descriptions, endpoint: Endpoint
) -> list[Route]:
    """The version and alias routes, to mount beside the Invoke API's."""
    store = service.registry.store
    router = service.registry.router
    # Read per call: a reload (or UpdateFunctionCode) replaces the service's configuration.
    referenced = referenced_aliases(service.config)

    def function_of(request: Request) -> str:
        """The function a management call names (an unqualified name or ARN)."""
        try:
            ref = parse_function_name(request.path_params["name"])
        except ValueError as exc:
            raise errors.invalid_parameter(str(exc)) from None
        if ref.qualifier is not None:
            raise errors.invalid_parameter(
                f"Unsupported qualifier {ref.qualifier!r} in the function name: this call takes "
                "an unqualified function name or ARN"
            )
        if service.function_config(ref.name) is None:
            raise errors.function_not_found(ref.name)
        return ref.name

    def ok(document: Mapping[str, Any], request_id: str, status: int = 200) -> Response:
        return Response(
            orjson.dumps(document), status, {"x-amzn-RequestId": request_id}, media_type=_JSON
        )

    async def change(call: Callable[[], Any], name: str, qualifier: str | None) -> Any:
        """Run a store change in a thread (it copies files and fsyncs), mapping its errors."""
        try:
            result = await asyncio.to_thread(call)
        except NotFound as missing:
            qualified = str(missing).partition(":")[2] or qualifier
            what = "Function" if qualified and qualified.isdigit() else "Alias"
            raise _not_found(name, qualified, what) from None
        except AliasConflict:
            raise conflict(f"Alias already exists: {function_arn(name, qualifier)}") from None
        except (InvalidAlias, CodeTooLarge) as exc:
            raise errors.invalid_parameter(str(exc)) from None
        except RevisionMismatch as exc:
            raise precondition_failed(str(exc)) from None
        except StateUnavailable as exc:
            raise errors.service_error(str(exc)) from None
        except OSError as exc:
            raise errors.service_error(f"The state directory could not be changed: {exc}") from None
        router.refresh_now()
        return result

    async def publish_version(request: Request, request_id: str) -> Response:
        name = function_of(request)
        document = await _json_body(request)
        description = _text(document, "Description") or ""
        expected_sha = _text(document, "CodeSha256")
        revision = _text(document, "RevisionId")
        if revision is not None and revision != descriptions.configuration(name)["RevisionId"]:
            raise precondition_failed(
                "The Revision Id provided does not match the latest Revision Id. Call the "
                "GetFunction/GetAlias API to retrieve the latest Revision Id"
            )
        if expected_sha is not None:
            current, _ = await asyncio.to_thread(latest_code_sha256, service.config, name)
            if current != expected_sha:
                raise errors.invalid_parameter(
                    f"CodeSHA256 ({expected_sha}) is different from current CodeSHA256 in "
                    f"$LATEST ({current}). Please try again with the CodeSHA256 in $LATEST."
                )
        version = await change(
            lambda: publish_function(service.config, store, name, description=description),
            name,
            None,
        )
        return ok(descriptions.configuration(name, version.number), request_id, 201)

    async def list_versions(request: Request, request_id: str) -> Response:
        name = function_of(request)
        numbers = [LATEST, *(v.number for v in store.versions(name))]
        page, marker = _page(request, numbers)
        document: dict[str, Any] = {"Versions": [descriptions.configuration(name, n) for n in page]}
        if marker is not None:
            document["NextMarker"] = marker
        return ok(document, request_id)

    async def create_alias(request: Request, request_id: str) -> Response:
        name = function_of(request)
        document = await _json_body(request)
        alias = _text(document, "Name", required=True) or ""
        version = _text(document, "FunctionVersion", required=True) or ""
        description = _text(document, "Description") or ""
        weights = _weights(document)
        created = await change(
            lambda: store.create_alias(
                name, alias, version, additional_weights=weights, description=description
            ),
            name,
            alias,
        )
        return ok(alias_document(created), request_id, 201)

    async def get_alias(request: Request, request_id: str) -> Response:
        name = function_of(request)
        alias = request.path_params["alias"]
        try:
            found = store.alias(name, alias)
        except NotFound:
            raise _not_found(name, alias, "Alias") from None
        return ok(alias_document(found), request_id)

    async def update_alias(request: Request, request_id: str) -> Response:
        name = function_of(request)
        alias = request.path_params["alias"]
        document = await _json_body(request)
        version = _text(document, "FunctionVersion")
        description = _text(document, "Description")
        revision = _text(document, "RevisionId")
        weights = _weights(document)
        updated = await change(
            lambda: store.update_alias(
                name,
                alias,
                version=version,
                additional_weights=weights,
                description=description,
                revision_id=revision,
            ),
            name,
            alias,
        )
        return ok(alias_document(updated), request_id)

    async def delete_alias(request: Request, request_id: str) -> Response:
        name = function_of(request)
        alias = request.path_params["alias"]
        where = referenced.get((name, alias))
        if where is not None:
            raise conflict(
                f"Alias {function_arn(name, alias)} is named in edge.toml ({where}): remove it "
                "there first"
            )
        await change(lambda: store.delete_alias(name, alias), name, alias)
        return Response(b"", 204, {"x-amzn-RequestId": request_id})

    async def list_aliases(request: Request, request_id: str) -> Response:
        name = function_of(request)
        wanted = request.query_params.get("FunctionVersion")
        aliases = [
            a
            for a in store.aliases(name)
            if wanted is None or a.version == wanted or wanted in a.additional_weights
        ]
        page, marker = _page(request, aliases)
        document: dict[str, Any] = {"Aliases": [alias_document(a) for a in page]}
        if marker is not None:
            document["NextMarker"] = marker
        return ok(document, request_id)

    base = f"{API_PREFIX}/{{name}}"
    return [
        Route(f"{base}/versions", endpoint(publish_version), methods=["POST"]),
        Route(f"{base}/versions", endpoint(list_versions), methods=["GET"]),
        Route(f"{base}/aliases", endpoint(create_alias), methods=["POST"]),
        Route(f"{base}/aliases", endpoint(list_aliases), methods=["GET"]),
        Route(f"{base}/aliases/{{alias}}", endpoint(get_alias), methods=["GET"]),
        Route(f"{base}/aliases/{{alias}}", endpoint(update_alias), methods=["PUT"]),
        Route(f"{base}/aliases/{{alias}}", endpoint(delete_alias), methods=["DELETE"]),
    ]
