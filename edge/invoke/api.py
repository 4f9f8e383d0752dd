"""Lambda's Invoke HTTP API on the admin listener: Invoke, GetFunction, ListFunctions.

Enough of AWS's REST-JSON protocol (spec §8) that boto3's `lambda` client and the AWS CLI work
with `endpoint_url`: the paths, the `X-Amz-*` headers, the status per invocation type, and the
error shapes of `edge.invoke.errors`. Every response carries `x-amzn-RequestId`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import math
import platform
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge.config import FunctionConfig
from edge.functions import latest_code_sha256
from edge.invoke import errors
from edge.invoke.errors import InvokeApiError
from edge.invoke.management import management_routes
from edge.invoke.names import ACCOUNT_ID, LATEST, function_arn, parse_function_name
from edge.invoke.service import InvokeService
from edge.lambda_service import NotFound, is_version_number
from edge.traces import TRACE_HEADER_BYTES
from sandbox import FunctionError, SandboxError, log_tail, new_request_id

API_PREFIX = "/2015-03-31/functions"
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
LOG_TYPES = ("None", "Tail")
# Spec §14: `X-Amz-Client-Context` at most 3,583 bytes of base64.
CLIENT_CONTEXT_BYTES = 3583
LOG_TAIL_BYTES = 4096
_JSON = "application/json"

Handler = Callable[[Request, str], Awaitable[Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        request_id = new_request_id()
        try:
            return await handler(request, request_id)
        except InvokeApiError as error:
            return errors.error_response(error, request_id)

    return endpoint


async def _read_body(request: Request, limit_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise _unread(errors.request_too_large(int(declared), limit_bytes))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise _unread(errors.request_too_large(size, limit_bytes))
        chunks.append(chunk)
    return b"".join(chunks)


def _unread(error: InvokeApiError) -> InvokeApiError:
    # The rest of the body is left unread: the connection cannot carry another request.
    error.headers["Connection"] = "close"
    return error


def _client_context(header: str | None) -> dict[str, Any] | None:
    """`X-Amz-Client-Context` decoded (base64 JSON object), or None when it was not sent."""
    if header is None:
        return None
    if len(header) > CLIENT_CONTEXT_BYTES:
        raise errors.invalid_parameter(
            f"Client context must be at most {CLIENT_CONTEXT_BYTES} bytes of base64"
        )
    try:
        document = orjson.loads(base64.b64decode(header, validate=True))
    except (ValueError, orjson.JSONDecodeError):
        document = None
    if not isinstance(document, dict):
        raise errors.invalid_content("Client context must be a valid Base64-encoded JSON object.")
    return document


def _runtime_name(function: FunctionConfig) -> str:
    if function.runtime == "wasm":
        return "provided"
    if function.is_nodejs or function.is_provided:
        return function.runtime
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def _lambda_time(iso: str) -> str:
    """An ISO time as Lambda writes LastModified: 2019-10-26T18:50:52.000+0000."""
    moment = datetime.datetime.fromisoformat(iso).astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


class FunctionDescriptions:
    """The `FunctionConfiguration` documents of GetFunction / ListFunctions, built once."""

    def __init__(self, service: InvokeService) -> None:
        self._service = service
        self._cache: dict[str, dict[str, Any]] = {}
        self._config = service.config
        started = datetime.datetime.now(datetime.UTC)
        # Lambda's LastModified format: 2019-10-26T18:50:52.000+0000.
        self._modified = started.strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def configuration(self, name: str, version: str = LATEST) -> dict[str, Any]:
        """Version `version`'s FunctionConfiguration (`$LATEST`: the working copy's, with what
        the management API changed laid over it: the service's `describe_changes`)."""
        document = self._configured(name, version)
        changes = self._service.describe_changes
        if version == LATEST and changes is not None:
            return {**document, **changes(name, document)}
        return document

    def _configured(self, name: str, version: str) -> dict[str, Any]:
        if self._service.config is not self._config:  # reloaded: describe it anew
            self._config = self._service.config
            self._cache.clear()
        key = name if version == LATEST else f"{name}:{version}"
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if version == LATEST:
            function = self._service.config.functions[name]
            sha, size = latest_code_sha256(self._service.config, name)
            description, modified, arn = "", self._modified, function_arn(name)
            revision = sha[:8]
        else:
            store = self._service.registry.store
            published = store.version(name, version)
            function = store.version_config(name, version)
            sha, size = published.code_sha256, published.code_size
            description, modified = published.description, _lambda_time(published.created)
            arn = function_arn(name, version)
            revision = hashlib.sha256(f"{name}:{version}:{sha}".encode()).hexdigest()[:8]
        handler = (
            function.handler
            if function.runtime == "python" or function.is_nodejs or function.is_provided
            else "handler"
        )
        document: dict[str, Any] = {
            "FunctionName": name,
            "FunctionArn": arn,
            "Runtime": _runtime_name(function),
            "Role": f"arn:aws:iam::{ACCOUNT_ID}:role/edge-function",
            "Handler": handler or "",
            "CodeSize": size,
            "Description": description,
            "Timeout": math.ceil(self._service.timeout_of(name, version)),
            "MemorySize": function.memory_size_mb,
            "LastModified": modified,
            "CodeSha256": sha,
            "Version": version,
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": revision,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"],
            "EphemeralStorage": {"Size": function.ephemeral_storage},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
        }
        if function.environment:
            document["Environment"] = {"Variables": dict(function.environment)}
        if function.dead_letter:
            document["DeadLetterConfig"] = {"TargetArn": function.dead_letter}
        self._cache[key] = document
        return document


def invoke_routes(service: InvokeService) -> list[Route]:
    """The API's routes, to mount on the admin app."""
    descriptions = FunctionDescriptions(service)

    def resolve(request: Request) -> tuple[str, str | None, str]:
        """(function, qualifier as given, the version it runs now)."""
        try:
            ref = parse_function_name(
                request.path_params["name"], request.query_params.get("Qualifier")
            )
        except ValueError as exc:
            raise errors.invalid_parameter(str(exc)) from None
        if service.function_config(ref.name) is None:
            raise errors.function_not_found(ref.name, ref.qualifier)
        try:
            version = service.resolve(ref.name, ref.qualifier)
        except NotFound:
            raise errors.function_not_found(ref.name, ref.qualifier) from None
        return ref.name, ref.qualifier, version

    async def invoke(request: Request, request_id: str) -> Response:
        name, qualifier, version = resolve(request)
        headers = request.headers
        invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
        if invocation_type not in INVOCATION_TYPES:
            raise errors.invalid_parameter(
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
                f"failed to satisfy constraint: Member must satisfy enum value set: "
                f"[{', '.join(INVOCATION_TYPES)}]"
            )
        log_type = headers.get("x-amz-log-type", "None")
        if log_type not in LOG_TYPES:
            raise errors.invalid_parameter(
                f"1 validation error detected: Value '{log_type}' at 'logType' failed to "
                f"satisfy constraint: Member must satisfy enum value set: [Tail, None]"
            )
        # Lambda passes it to the function for synchronous invocations only (spec §8.1).
        client_context = _client_context(headers.get("x-amz-client-context"))
        limits = service.config.invoke
        asynchronous = invocation_type == "Event"
        limit = limits.async_payload_bytes if asynchronous else limits.sync_payload_bytes
        payload = await _read_body(request, limit) or b"{}"
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise errors.invalid_content(f"Could not parse request body into json: {exc}") from None
        base = {"x-amzn-RequestId": request_id}
        if invocation_type == "DryRun":
            return Response(b"", 204, base)
        if asynchronous:
            await service.enqueue(name, qualifier or LATEST, payload, request_id)
            return Response(b"", 202, base)
        try:
            result = await service.invoke(
                name,
                payload,
                request_id,
                client_context,
                _trace_of(headers),
                version=version,
                qualifier=qualifier,
            )
        except FunctionError as error:
            # Spec §8.2: a function error is still a 200, flagged by X-Amz-Function-Error.
            failed = {
                **base,
                "X-Amz-Function-Error": "Unhandled",
                "X-Amz-Executed-Version": version,
            }
            if log_type == "Tail":
                failed["X-Amz-Log-Result"] = base64.b64encode(
                    log_tail(error.log, LOG_TAIL_BYTES)
                ).decode()
            return Response(error.payload_bytes, 200, failed, media_type=_JSON)
        except SandboxError as error:
            raise errors.from_sandbox(error) from None
        ok = {**base, "X-Amz-Executed-Version": result.executed_version or version}
        if log_type == "Tail":
            ok["X-Amz-Log-Result"] = base64.b64encode(log_tail(result.log, LOG_TAIL_BYTES)).decode()
        return Response(result.payload, 200, ok, media_type=_JSON)

    def configuration_of(request: Request) -> dict[str, Any]:
        name, qualifier, _ = resolve(request)
        version = qualifier or LATEST
        if not is_version_number(version) and version != LATEST:
            # An alias: its own version's configuration, under the alias's ARN (as Lambda).
            try:
                version = service.registry.store.alias(name, version).version
            except NotFound:
                raise errors.function_not_found(name, qualifier) from None
        document = descriptions.configuration(name, version)
        if qualifier is not None and qualifier != version:
            document = {**document, "FunctionArn": function_arn(name, qualifier)}
        return document

    async def get_function_configuration(request: Request, request_id: str) -> Response:
        return Response(
            orjson.dumps(configuration_of(request)),
            200,
            {"x-amzn-RequestId": request_id},
            media_type=_JSON,
        )

    async def get_function(request: Request, request_id: str) -> Response:
        configuration = configuration_of(request)
        function = service.config.functions[configuration["FunctionName"]]
        document: dict[str, Any] = {
            "Configuration": configuration,
            "Code": {"RepositoryType": "S3", "Location": ""},
            "Tags": {},
        }
        if function.reserved_concurrency is not None:
            document["Concurrency"] = {
                "ReservedConcurrentExecutions": function.reserved_concurrency
            }
        return Response(
            orjson.dumps(document), 200, {"x-amzn-RequestId": request_id}, media_type=_JSON
        )

    async def list_functions(request: Request, request_id: str) -> Response:
        names = sorted(service.config.functions)
        marker = request.query_params.get("Marker")
        start = int(marker) if marker and marker.isdigit() else 0
        max_items_text = request.query_params.get("MaxItems", "50")
        if not max_items_text.isdigit() or not 1 <= int(max_items_text) <= 10_000:
            raise errors.invalid_parameter("MaxItems must be between 1 and 10000")
        end = start + int(max_items_text)
        document: dict[str, Any] = {
            "Functions": [descriptions.configuration(n) for n in names[start:end]]
        }
        if end < len(names):
            document["NextMarker"] = str(end)
        return Response(
            orjson.dumps(document), 200, {"x-amzn-RequestId": request_id}, media_type=_JSON
        )

    return [
        Route(f"{API_PREFIX}/{{name}}/invocations", _endpoint(invoke), methods=["POST"]),
        Route(f"{API_PREFIX}/", _endpoint(list_functions), methods=["GET"]),
        Route(API_PREFIX, _endpoint(list_functions), methods=["GET"]),
        Route(f"{API_PREFIX}/{{name}}", _endpoint(get_function), methods=["GET"]),
        Route(
            f"{API_PREFIX}/{{name}}/configuration",
            _endpoint(get_function_configuration),
            methods=["GET"],
        ),
        *management_routes(service, descriptions, _endpoint),
    ]


def _trace_of(headers: Any) -> str | None:
    """The caller's `X-Amzn-Trace-Id` when it names a trace (`Root=...`), bounded; else None
    (the invocation gets a trace of its own, as Lambda gives one)."""
    value = headers.get("x-amzn-trace-id")
    return value if value and len(value) <= TRACE_HEADER_BYTES and "Root=" in value else None
