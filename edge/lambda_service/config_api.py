"""Lambda's management calls that change a running function, on the admin listener.

AWS's REST-JSON shapes and paths (botocore's `lambda` model), so boto3 works with
`endpoint_url`:

- UpdateFunctionCode (`PUT /2015-03-31/functions/NAME/code`, a zip as `ZipFile` base64):
  unpacked under `[server] state_dir`, it becomes the function's `$LATEST` code.
- UpdateFunctionConfiguration (`PUT .../configuration`): Timeout, MemorySize, Environment,
  Description, Handler; any other member is refused (InvalidParameterValueException).
- GetFunctionConfiguration (`GET .../configuration`).
- Put/Get/DeleteFunctionConcurrency: reserved concurrency.
- Put/Get/DeleteProvisionedConcurrencyConfig: by version or alias (`Qualifier`), never
  `$LATEST` (as Lambda); which qualifiers exist is `Qualifiers`' answer.

A change is checked as a reload checks edge.toml (the code must be able to start; a Lambda@Edge
function keeps its trigger's limits), written to the state file, and applied through
`edge.reload.Reloader` in this process; the other processes follow the state file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge.config import EdgeConfig
from edge.config.checks import check_references, check_reserved_concurrency
from edge.invoke import errors
from edge.invoke.api import FunctionDescriptions
from edge.invoke.errors import InvokeApiError
from edge.invoke.names import LATEST, function_arn, parse_function_name
from edge.invoke.service import InvokeService
from edge.lambda_service.overrides import (
    FunctionOverride,
    FunctionState,
    UploadedCode,
    configured_code_path,
    read_state,
    unpack_code,
    write_state,
)
from edge.lambda_service.store import StateUnavailable, shared_store
from edge.reload import Reloader
from sandbox import new_request_id

# A zip of at most 50 MB (Lambda's direct upload), as base64 in a JSON body.
MAX_CODE_BODY_BYTES = 70 * 1024 * 1024
MAX_CONFIGURATION_BODY_BYTES = 64 * 1024

_JSON = "application/json"
_SETTABLE = ("Timeout", "MemorySize", "Environment", "Description", "Handler", "RevisionId")
_ENVIRONMENT_KEY = re.compile(r"[a-zA-Z]\w*")


class Qualifiers(Protocol):
    """Which versions and aliases of a function exist: `version_of(name, qualifier)` is the
    version a qualifier names, or None when there is no such version or alias."""

    def version_of(self, name: str, qualifier: str) -> str | None: ...


class StoreQualifiers:
    """Published versions and aliases, as the function registry resolves them."""

    def __init__(self, service: InvokeService) -> None:
        self._service = service

    def version_of(self, name: str, qualifier: str) -> str | None:
        if qualifier == LATEST:
            return LATEST
        try:
            return self._service.registry.resolve(name, qualifier)
        except LookupError:
            return None


class LatestOnly:
    """Until versions are published, `$LATEST` is the only version, and there are no aliases."""

    def version_of(self, name: str, qualifier: str) -> str | None:
        return LATEST if qualifier == LATEST else None


def configuration_routes(
    service: InvokeService, reloader: Reloader, qualifiers: Qualifiers | None = None
) -> list[Route]:
    """The routes, to mount on the admin app beside the Invoke API's."""
    api = _ConfigurationApi(service, reloader, qualifiers or StoreQualifiers(service))
    service.describe_changes = api.changes  # GetFunction and ListFunctions show them too
    functions = "/2015-03-31/functions/{name}"
    return [
        Route(f"{functions}/code", api.endpoint(api.update_code), methods=["PUT"]),
        Route(
            f"{functions}/configuration",
            api.endpoint(api.update_configuration),
            methods=["PUT"],
        ),
        # GET .../configuration is the Invoke API's (edge.invoke.api): every version and alias,
        # with these changes laid over $LATEST through `describe_changes`.
        Route(
            "/2017-10-31/functions/{name}/concurrency",
            api.endpoint(api.put_concurrency),
            methods=["PUT"],
        ),
        Route(
            "/2017-10-31/functions/{name}/concurrency",
            api.endpoint(api.delete_concurrency),
            methods=["DELETE"],
        ),
        Route(
            "/2019-09-30/functions/{name}/concurrency",
            api.endpoint(api.get_concurrency),
            methods=["GET"],
        ),
        Route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            api.endpoint(api.provisioned),
            methods=["PUT", "GET", "DELETE"],
        ),
    ]


def resource_conflict(message: str) -> InvokeApiError:
    return InvokeApiError(409, "ResourceConflictException", message)


def precondition_failed(message: str) -> InvokeApiError:
    return InvokeApiError(412, "PreconditionFailedException", message)


def provisioned_not_found(message: str) -> InvokeApiError:
    return InvokeApiError(404, "ProvisionedConcurrencyConfigNotFoundException", message)


class _ConfigurationApi:
    def __init__(self, service: InvokeService, reloader: Reloader, qualifiers: Qualifiers) -> None:
        self.service = service
        self.reloader = reloader
        self.qualifiers = qualifiers
        self.descriptions = FunctionDescriptions(service)
        # One change at a time: read the state, change it, check, write, apply.
        self.lock = asyncio.Lock()

    def endpoint(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            request_id = new_request_id()
            try:
                response = await handler(request)
            except InvokeApiError as error:
                return errors.error_response(error, request_id)
            response.headers["x-amzn-RequestId"] = request_id
            return response

        return run

    # -- helpers ----------------------------------------------------------------------------

    def _function(self, request: Request, *, qualified: bool = False) -> tuple[str, str | None]:
        try:
            ref = parse_function_name(
                request.path_params["name"], request.query_params.get("Qualifier")
            )
        except ValueError as exc:
            raise errors.invalid_parameter(str(exc)) from None
        if ref.name not in self.reloader.config.functions:
            raise errors.function_not_found(ref.name, ref.qualifier)
        # These calls change $LATEST only.
        if ref.qualifier not in (None, LATEST) and not qualified:
            raise errors.invalid_parameter(
                f"Unsupported qualifier {ref.qualifier!r}: this call changes $LATEST"
            )
        return ref.name, ref.qualifier

    async def _document(self, request: Request, limit_bytes: int) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
            error = errors.request_too_large(int(declared), limit_bytes)
            error.headers["Connection"] = "close"
            raise error
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit_bytes:
                error = errors.request_too_large(size, limit_bytes)
                error.headers["Connection"] = "close"
                raise error
            chunks.append(chunk)
        try:
            document = orjson.loads(b"".join(chunks) or b"{}")
        except orjson.JSONDecodeError as exc:
            raise errors.invalid_content(f"Could not parse request body into json: {exc}") from None
        if not isinstance(document, dict):
            raise errors.invalid_content("Could not parse request body into json: not an object")
        return document

    def _problems(self, config: EdgeConfig, name: str) -> list[str]:
        """What keeps `config` from serving, for function `name`: its code, its trigger's
        limits, the node's unreserved concurrency."""
        raw = {
            "behaviors": [b.model_dump(by_alias=True, exclude_none=True) for b in config.behaviors]
        }
        problems = check_references(config, raw) + check_reserved_concurrency(config)
        return [p for p in problems if f"functions.{name}." in p]

    async def _change(
        self, name: str, change: Callable[[FunctionOverride], FunctionOverride]
    ) -> FunctionState:
        """Apply `change` to `name`'s override: checked, written, served. Hold `self.lock`."""
        if self.reloader.busy():
            raise resource_conflict(
                "The operation cannot be performed at this time. An update is in progress for "
                f"resource: {function_arn(name)}"
            )
        state_file = self.reloader.state_file
        shared = shared_store(self.reloader.config.server.state_dir)

        def checked_and_written() -> FunctionState:
            # With a cluster, under its lock: read what every node has, store it everywhere.
            holding = shared.hold() if shared is not None else contextlib.nullcontext()
            with holding as held:
                current = read_state(state_file)
                state = current.with_function(name, change(current.get(name)))
                config, code_problems = self.reloader.candidate(state)
                problems = [p for p in code_problems if p.startswith(f"functions.{name}.")]
                problems += self._problems(config, name)
                if problems:
                    raise errors.invalid_parameter("; ".join(problems))
                write_state(state_file, state, held)
                return state

        try:
            state = await asyncio.to_thread(checked_and_written)
        except StateUnavailable as exc:
            raise errors.service_error(str(exc)) from None
        outcome = await self.reloader.apply_state(state, reason=f"management API: {name}")
        if not outcome.applied:
            raise errors.service_error("; ".join(outcome.problems))
        return state

    def _configuration(self, name: str) -> dict[str, Any]:
        return self.descriptions.configuration(name)

    def changes(self, name: str, document: dict[str, Any]) -> dict[str, Any]:
        """The members of function `name`'s description that the API changed."""
        changed: dict[str, Any] = {}
        override = self.reloader.state.get(name)
        function = self.reloader.config.functions.get(name)
        code = override.code
        if code is not None and function is not None and code.directory == str(function.code):
            changed["CodeSha256"] = code.sha256
            changed["CodeSize"] = code.size
        if "Description" in override.configuration:
            changed["Description"] = override.configuration["Description"]
        if override.last_modified:
            changed["LastModified"] = override.last_modified
        sha = changed.get("CodeSha256", document["CodeSha256"])
        changed["RevisionId"] = _revision_id(sha, override.revision)
        return changed

    def _json(self, document: dict[str, Any], status: int = 200) -> Response:
        return Response(orjson.dumps(document), status, media_type=_JSON)

    def _check_revision(self, name: str, document: dict[str, Any]) -> None:
        wanted = document.get("RevisionId")
        if wanted is not None and wanted != self._configuration(name)["RevisionId"]:
            raise precondition_failed(
                "The Revision Id provided does not match the latest Revision Id. Call the "
                "GetFunction/GetAlias API to retrieve the latest Revision Id"
            )

    # -- the calls ----------------------------------------------------------------------------

    async def update_code(self, request: Request) -> Response:
        name, _ = self._function(request)
        document = await self._document(request, MAX_CODE_BODY_BYTES)
        function = self.reloader.config.functions[name]
        base_function = self.reloader.base.functions[name]
        for member in ("S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri"):
            if document.get(member):
                raise errors.invalid_parameter(
                    f"{member} is not supported by this edge: send the deployment package as "
                    "ZipFile"
                )
        if not (function.runtime == "python" or function.is_nodejs):
            raise errors.invalid_parameter(
                f"UpdateFunctionCode takes Python and Node.js functions; {name} is "
                f"{function.runtime}: change its file and reload"
            )
        if document.get("Publish") or document.get("DryRun"):
            raise errors.invalid_parameter("Publish and DryRun are not supported by this edge")
        encoded = document.get("ZipFile")
        if not isinstance(encoded, str) or not encoded:
            raise errors.invalid_parameter("Please provide a source for function code.")
        try:
            zip_bytes = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise errors.invalid_parameter("ZipFile must be base64") from None
        async with self.lock:
            self._check_revision(name, document)
            try:
                directory, sha = await asyncio.to_thread(
                    unpack_code, self.reloader.config.server.state_dir, name, zip_bytes
                )
            except ValueError as exc:
                raise errors.invalid_parameter(str(exc)) from None
            code = UploadedCode(
                str(directory), sha, len(zip_bytes), configured_code_path(base_function)
            )
            await self._change(name, lambda override: replace(override, code=code))
        return self._json(self._configuration(name))

    async def update_configuration(self, request: Request) -> Response:
        name, _ = self._function(request)
        document = await self._document(request, MAX_CONFIGURATION_BODY_BYTES)
        function = self.reloader.config.functions[name]
        unsupported = sorted(k for k, v in document.items() if k not in _SETTABLE and v)
        if unsupported:
            raise errors.invalid_parameter(
                f"{', '.join(unsupported)}: not supported by this edge (it sets Timeout, "
                "MemorySize, Environment, Description and Handler)"
            )
        settings: dict[str, Any] = {}
        if "Timeout" in document:
            timeout = document["Timeout"]
            if not isinstance(timeout, int) or not 1 <= timeout <= 900:
                raise errors.invalid_parameter(
                    f"1 validation error detected: Value '{timeout}' at 'timeout' failed to "
                    "satisfy constraint: Member must have value between 1 and 900"
                )
            settings["Timeout"] = timeout
        if "MemorySize" in document:
            memory = document["MemorySize"]
            low, high = (1, 4096) if function.runtime == "wasm" else (128, 10240)
            if not isinstance(memory, int) or not low <= memory <= high:
                raise errors.invalid_parameter(
                    f"1 validation error detected: Value '{memory}' at 'memorySize' failed to "
                    f"satisfy constraint: Member must have value between {low} and {high}"
                )
            settings["MemorySize"] = memory
        if "Environment" in document:
            variables = (document["Environment"] or {}).get("Variables") or {}
            if not isinstance(variables, dict) or not all(
                isinstance(k, str) and _ENVIRONMENT_KEY.fullmatch(k) and isinstance(v, str)
                for k, v in variables.items()
            ):
                raise errors.invalid_parameter(
                    "Environment.Variables: expected names of letters, digits and _ "
                    "(a letter first) with string values"
                )
            settings["Environment"] = variables
        if "Description" in document:
            description = document["Description"]
            if not isinstance(description, str) or len(description) > 256:
                raise errors.invalid_parameter("Description: at most 256 characters")
            settings["Description"] = description
        if "Handler" in document:
            handler = document["Handler"]
            if not (function.runtime == "python" or function.is_nodejs):
                raise errors.invalid_parameter(f"Handler: {name} is {function.runtime}")
            if not isinstance(handler, str) or not re.fullmatch(r"[^\s]{1,128}", handler):
                raise errors.invalid_parameter("Handler: expected module.function")
            settings["Handler"] = handler
        async with self.lock:
            self._check_revision(name, document)
            await self._change(
                name,
                lambda override: replace(
                    override, configuration={**override.configuration, **settings}
                ),
            )
        return self._json(self._configuration(name))

    async def get_configuration(self, request: Request) -> Response:
        name, qualifier = self._function(request, qualified=True)
        if qualifier is not None and self.qualifiers.version_of(name, qualifier) != LATEST:
            raise errors.function_not_found(name, qualifier)
        return self._json(self._configuration(name))

    async def put_concurrency(self, request: Request) -> Response:
        name, _ = self._function(request)
        document = await self._document(request, MAX_CONFIGURATION_BODY_BYTES)
        reserved = document.get("ReservedConcurrentExecutions")
        if not isinstance(reserved, int) or reserved < 0:
            raise errors.invalid_parameter(
                "1 validation error detected: Value at 'reservedConcurrentExecutions' failed "
                "to satisfy constraint: Member must have value greater than or equal to 0"
            )
        async with self.lock:
            await self._change(
                name, lambda override: replace(override, reserved_concurrency=reserved)
            )
        return self._json({"ReservedConcurrentExecutions": reserved})

    async def delete_concurrency(self, request: Request) -> Response:
        name, _ = self._function(request)
        async with self.lock:
            await self._change(name, lambda override: replace(override, reserved_concurrency=None))
        return Response(b"", 204)

    async def get_concurrency(self, request: Request) -> Response:
        name, _ = self._function(request)
        reserved = self.reloader.config.functions[name].reserved_concurrency
        if reserved is None:
            return self._json({})
        return self._json({"ReservedConcurrentExecutions": reserved})

    async def provisioned(self, request: Request) -> Response:
        name, _ = self._function(request, qualified=True)
        qualifier = request.query_params.get("Qualifier")
        if not qualifier:
            raise errors.invalid_parameter(
                "1 validation error detected: Value null at 'qualifier' failed to satisfy "
                "constraint: Member must not be null"
            )
        if qualifier == LATEST:
            raise errors.invalid_parameter(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions."
            )
        if self.qualifiers.version_of(name, qualifier) is None:
            raise errors.function_not_found(name, qualifier)
        override = self.reloader.state.get(name)
        if request.method == "GET":
            count = override.provisioned.get(qualifier)
            if count is None:
                raise provisioned_not_found(
                    f"No Provisioned Concurrency Config found for this function: "
                    f"{function_arn(name, qualifier)}"
                )
            return self._json(_provisioned_document(count, override.last_modified))
        if request.method == "DELETE":
            if qualifier not in override.provisioned:
                raise provisioned_not_found(
                    f"No Provisioned Concurrency Config found for this function: "
                    f"{function_arn(name, qualifier)}"
                )
            async with self.lock:
                await self._change(
                    name,
                    lambda o: replace(
                        o, provisioned={k: v for k, v in o.provisioned.items() if k != qualifier}
                    ),
                )
            return Response(b"", 204)
        document = await self._document(request, MAX_CONFIGURATION_BODY_BYTES)
        count = document.get("ProvisionedConcurrentExecutions")
        if not isinstance(count, int) or count < 1:
            raise errors.invalid_parameter(
                "1 validation error detected: Value at 'provisionedConcurrentExecutions' "
                "failed to satisfy constraint: Member must have value greater than or equal "
                "to 1"
            )
        reserved = self.reloader.config.functions[name].reserved_concurrency
        others = sum(v for k, v in override.provisioned.items() if k != qualifier)
        if reserved is not None and count + others > reserved:
            raise errors.invalid_parameter(
                f"Requested Provisioned Concurrency should not be greater than the "
                f"reservedConcurrentExecution for function: {reserved}"
            )
        async with self.lock:
            state = await self._change(
                name, lambda o: replace(o, provisioned={**o.provisioned, qualifier: count})
            )
        return self._json(
            _provisioned_document(count, state.get(name).last_modified, ready=False), 202
        )


def _provisioned_document(
    count: int, modified: str | None, *, ready: bool = True
) -> dict[str, Any]:
    return {
        "RequestedProvisionedConcurrentExecutions": count,
        "AvailableProvisionedConcurrentExecutions": count if ready else 0,
        "AllocatedProvisionedConcurrentExecutions": count if ready else 0,
        "Status": "READY" if ready else "IN_PROGRESS",
        "LastModified": modified or "",
    }


def _revision_id(sha: str, revision: int) -> str:
    """A stable id of the function's code and configuration revision."""
    digest = base64.b16encode(base64.b64decode(sha)[:8]).decode().lower()
    return f"{digest[:8]}-{digest[8:12]}-{revision:04d}-{digest[12:16]}-{revision:012d}"
