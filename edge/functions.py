"""The function registry: one runtime object per configured function, behind one door.

Each function gets the `sandbox.Runtime` its configuration asks for, made by one
`sandbox.RuntimeHost`: Python, Node.js and custom-runtime functions an execution-environment
pool each, each Python pool with its own zygote, each Node.js environment a `node` process of
its own and each custom-runtime environment its `bootstrap` behind a Runtime API agent, all
confined by the `[sandbox]` policy to that function's code and network (one function's
environments cannot reach another's, and a zygote that dies is relaunched for its function
alone); WASM functions share one wasmtime engine and its compiled module cache. The
registry never asks which runtime it holds. Each invocation's Lambda log (START .. REPORT) goes
to the function logs (`edge.function_logs`: the edge's stderr by default), every line naming
the function and the trigger it ran at, as `[server] function_logs` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
import time
from collections.abc import Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.config import EdgeConfig, FunctionConfig
from edge.function_logs import FunctionLogs
from edge.lambda_service import AliasRouter, FunctionStore, Version, code_digest
from sandbox import (
    CloudFrontJsSpec,
    FunctionCodeInvalid,
    FunctionError,
    FunctionSpec,
    InvocationResult,
    NodeFunctionSpec,
    ProvidedFunctionSpec,
    Runtime,
    RuntimeHost,
    RuntimeStats,
    SandboxPolicy,
    WasmFunctionSpec,
    new_request_id,
)

logger = logging.getLogger("edge.functions")

# No admission to take when the registry has no limiter (nullcontext is reusable).
_NO_LEASE = contextlib.nullcontext()

LATEST = "$LATEST"

# The request id of an invocation's log text.
_START_LINE = re.compile(r"^START RequestId: (\S+) ", re.MULTILINE)


class Limiter(Protocol):
    """Admission by concurrency (edge.invoke.ConcurrencyLimiter)."""

    def lease(self, name: str) -> AbstractAsyncContextManager[None]: ...


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """What the pipeline needs to know of a function besides invoking it."""

    name: str
    runtime: str
    version: str
    memory_mb: int
    timeout_seconds: float | None  # None: the trigger's limit


def spec_for(
    name: str,
    function: FunctionConfig,
    *,
    timeout_seconds: float,
    state_dir: Path | None = None,
) -> FunctionSpec:
    """The Python sandbox's description of function `name` (config already resolved paths).
    `state_dir`: the edge's own folder (`.edge` beside edge.toml), where merged layers are
    kept (None: the sandbox's default)."""
    code_dir, handler = function.code_dir_and_handler
    return FunctionSpec(
        name=name,
        handler=handler,
        code_dir=code_dir,
        memory_mb=function.memory,
        timeout_seconds=function.timeout or timeout_seconds,
        environment=_logging_variables(function) | dict(function.environment),
        max_concurrency=function.max_concurrency,
        idle_seconds=function.idle_timeout,
        provisioned=min(function.provisioned, function.max_concurrency),
        max_wait_seconds=function.max_wait,
        max_environments=function.max_environments,
        environment_wait_seconds=function.environment_wait,
        network=function.network,
        writable_paths=tuple(function.writable_paths),
        ephemeral_storage_mb=function.ephemeral_storage,
        layers=tuple(function.layers),
        layer_cache_dir=None if state_dir is None else state_dir / "layers",
    )


def edge_state_dir(config: EdgeConfig) -> Path:
    """The edge's own folder beside edge.toml (hidden from functions): merged layers live in
    its `layers/`."""
    return (config.base_dir / ".edge").resolve()


def _logging_variables(function: FunctionConfig) -> dict[str, str]:
    """What Lambda sets from a function's logging configuration, for its runtime to read."""
    if function.log_format != "json":
        return {}
    # Lambda's application log level in the JSON format defaults to INFO.
    return {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": function.log_level or "INFO"}


def sandbox_policy(config: EdgeConfig) -> SandboxPolicy:
    """The `[sandbox]` table as the sandbox takes it, with the edge's own files to hide from
    functions should their code directory contain any: the configuration, the admin
    listener's secret key file, the cache directory, the async-invocation queue, the `.edge`
    folder beside the configuration and the state directory (`[server] state_dir`)."""
    hidden = [config.base_dir / ".edge", config.server.state_dir, config.invoke.queue_path]
    hidden += [
        config.invoke.queue_path.with_name(config.invoke.queue_path.name + suffix)
        for suffix in ("-wal", "-shm", "-journal")
    ]
    if config.source not in ("<memory>", "--origin"):
        hidden.append(Path(config.source))
    if config.cache.disk_directory is not None:
        hidden.append(config.cache.disk_directory)
    secret = config.admin.secret_access_key_file
    if secret is not None:
        hidden.append(secret if secret.is_absolute() else config.base_dir / secret)
    settings = config.sandbox
    return SandboxPolicy(
        isolation=settings.isolation,
        uid_base=settings.uid_base,
        uid_count=settings.uid_count,
        hidden_paths=tuple(Path(p).resolve() for p in hidden),
    )


def publish_function(
    config: EdgeConfig, store: FunctionStore, name: str, *, description: str = ""
) -> Version:
    """Publish function `name`'s `$LATEST` (its code and its `[functions.NAME]` settings) as
    a version in `store`, leaving out the edge's own files (`sandbox_policy`'s hidden paths);
    the latest version when nothing changed since it was published."""
    return store.publish(
        name,
        config.functions[name],
        description=description,
        exclude=sandbox_policy(config).hidden_paths,
    )


def latest_code_sha256(config: EdgeConfig, name: str) -> tuple[str, int]:
    """`$LATEST`'s CodeSha256 and size: what a version published now would have."""
    return code_digest(config.functions[name], sandbox_policy(config).hidden_paths)


def wasm_spec_for(
    name: str, function: FunctionConfig, *, timeout_seconds: float
) -> WasmFunctionSpec:
    """The WASM sandbox's description of function `name`."""
    assert function.module is not None
    return WasmFunctionSpec(
        name=name,
        module=function.module,
        abi=function.abi,
        memory_mb=function.memory,
        memory_pages=function.memory_pages,
        timeout_seconds=function.timeout or timeout_seconds,
        environment=dict(function.environment),
        max_concurrency=function.max_concurrency,
        reuse_instance=function.reuse_instance,
        fuel=function.fuel,
    )


def node_spec_for(
    name: str,
    function: FunctionConfig,
    *,
    timeout_seconds: float,
    state_dir: Path | None = None,
) -> NodeFunctionSpec:
    """The Node.js sandbox's description of function `name` (the same keys as Python's)."""
    python = spec_for(name, function, timeout_seconds=timeout_seconds, state_dir=state_dir)
    return NodeFunctionSpec(
        name=name,
        handler=python.handler,
        code_dir=python.code_dir,
        memory_mb=python.memory_mb,
        timeout_seconds=python.timeout_seconds,
        environment=python.environment,
        max_concurrency=python.max_concurrency,
        idle_seconds=python.idle_seconds,
        provisioned=python.provisioned,
        max_wait_seconds=python.max_wait_seconds,
        max_environments=python.max_environments,
        environment_wait_seconds=python.environment_wait_seconds,
        network=python.network,
        writable_paths=python.writable_paths,
        ephemeral_storage_mb=python.ephemeral_storage_mb,
        layers=python.layers,
        layer_cache_dir=python.layer_cache_dir,
    )


def provided_spec_for(
    name: str,
    function: FunctionConfig,
    *,
    timeout_seconds: float,
    state_dir: Path | None = None,
) -> ProvidedFunctionSpec:
    """A custom runtime's description of function `name` (the same keys as Python's, its
    `code` the task root with the bootstrap, its handler only passed on)."""
    python = spec_for(name, function, timeout_seconds=timeout_seconds, state_dir=state_dir)
    return ProvidedFunctionSpec(
        name=name,
        handler=python.handler,
        code_dir=python.code_dir,
        memory_mb=python.memory_mb,
        timeout_seconds=python.timeout_seconds,
        environment=python.environment,
        max_concurrency=python.max_concurrency,
        idle_seconds=python.idle_seconds,
        provisioned=python.provisioned,
        max_wait_seconds=python.max_wait_seconds,
        max_environments=python.max_environments,
        environment_wait_seconds=python.environment_wait_seconds,
        network=python.network,
        writable_paths=python.writable_paths,
        ephemeral_storage_mb=python.ephemeral_storage_mb,
        layers=python.layers,
        layer_cache_dir=python.layer_cache_dir,
    )


RuntimeSpec = (
    FunctionSpec | NodeFunctionSpec | ProvidedFunctionSpec | WasmFunctionSpec | CloudFrontJsSpec
)


def cloudfront_spec_for(
    name: str, function: FunctionConfig, key_value_stores: Mapping[str, Path] | None = None
) -> CloudFrontJsSpec:
    """The description of CloudFront Function `name` (`key_value_stores`: store files by name)."""
    assert function.code is not None
    store = function.key_value_store
    return CloudFrontJsSpec(
        name=name,
        code=function.code,
        runtime="1.0" if function.runtime == "cloudfront-js-1.0" else "2.0",
        key_value_store=(key_value_stores or {}).get(store) if store else None,
        key_value_store_name=store or "",
    )


def runtime_spec_for(
    name: str,
    function: FunctionConfig,
    *,
    timeout_seconds: float,
    key_value_stores: Mapping[str, Path] | None = None,
    state_dir: Path | None = None,
) -> RuntimeSpec:
    """The sandbox's description of function `name`, for the runtime it names (`state_dir`:
    see `spec_for`)."""
    if function.runtime.startswith("cloudfront-js"):
        return cloudfront_spec_for(name, function, key_value_stores)
    if function.runtime == "wasm":
        return wasm_spec_for(name, function, timeout_seconds=timeout_seconds)
    if function.is_nodejs:
        return node_spec_for(name, function, timeout_seconds=timeout_seconds, state_dir=state_dir)
    if function.is_provided:
        return provided_spec_for(
            name, function, timeout_seconds=timeout_seconds, state_dir=state_dir
        )
    return spec_for(name, function, timeout_seconds=timeout_seconds, state_dir=state_dir)


def check_functions(
    config: EdgeConfig,
    *,
    wasm_cache_dir: str | None = None,
    link_modules: bool = True,
    keys: Mapping[str, str] | None = None,
) -> list[str]:
    """What keeps a configured function's code from running at all (a Python handler whose
    file is missing, does not parse or lacks the function; a WASM module that does not link
    under its ABI...), one line each under the function's key, as `edge check` shows
    configuration problems. Nothing of the functions runs. `link_modules`: compile WASM
    modules (into the module cache; blocking, and never before forking workers). `keys`: the
    key (or flag) to name for a function instead of `functions.NAME.handler`."""
    host = RuntimeHost(wasm_cache_dir=wasm_cache_dir)
    problems: list[str] = []
    try:
        for name, function in config.functions.items():
            spec = runtime_spec_for(
                name,
                function,
                timeout_seconds=_longest_timeout(config),
                key_value_stores=_store_files(config),
            )
            try:
                host.check(spec, link_modules=link_modules)
            except FunctionCodeInvalid as error:
                key = {"wasm": "module", "python": "handler"}.get(function.runtime, "code")
                if function.is_nodejs:
                    key = "handler"
                where = (keys or {}).get(name, f"functions.{name}.{key}")
                problems.append(f"{where}: {error.reason}")
    finally:
        host.close()
    return problems


def _store_files(config: EdgeConfig) -> dict[str, Path]:
    return {name: store.file for name, store in config.key_value_stores.items()}


def _longest_timeout(config: EdgeConfig) -> float:
    # A function used on origin triggers may run up to the origin limit; the trigger's own
    # limit is applied per invocation as a deadline.
    return max(config.lambda_edge.viewer_timeout, config.lambda_edge.origin_timeout)


class FunctionRegistry:
    """Runtimes by function name and version; `invoke` is the one door to the sandboxes.

    `$LATEST` of every function starts with the registry; a published version gets a runtime
    of its own (its own environments and cold starts, its snapshot's code and settings) the
    first time it is invoked. `resolve` turns a qualifier (`$LATEST`, a number, an alias) into
    the version to run, reading the store (`[server] state_dir`) only when it changed."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        logs: FunctionLogs | None = None,
        wasm_cache_dir: str | None = None,
        limiter: Limiter | None = None,
        store: FunctionStore | None = None,
    ) -> None:
        self._limiter = limiter
        self._specs: dict[str, RuntimeSpec] = {}
        self._runtimes: dict[str, Runtime] = {}
        self._versioned: dict[tuple[str, str], Runtime] = {}
        self._creating = asyncio.Lock()
        self.store = store if store is not None else FunctionStore(config.server.state_dir)
        self.router = AliasRouter(self.store)
        self._longest = _longest_timeout(config)
        self._store_files = _store_files(config)
        self._functions = config.functions
        self.logs = logs or FunctionLogs(config.server.function_logs)
        # Request ids of the invocations this registry awaits: it writes their logs itself,
        # knowing the trigger and the outcome.
        self._awaited: set[str] = set()
        self._host = RuntimeHost(isolation=sandbox_policy(config), wasm_cache_dir=wasm_cache_dir)
        self._queue_dir = config.invoke.queue_path.resolve().parent
        self._code_dirs = _code_dirs(config)
        self.info: dict[str, FunctionInfo] = {}
        # Provisioned concurrency of published versions (PutProvisionedConcurrencyConfig).
        self._provisioned: dict[tuple[str, str], int] = {}
        # Admitted invocations running now and the most at once, by function.
        self._in_flight: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._started = False
        # Runtimes replaced by `update`, finishing their invocations before they are closed.
        self._retiring: set[asyncio.Task[None]] = set()
        for name, (spec, info) in _described(config).items():
            self._specs[name] = spec
            self.info[name] = info

    @property
    def runtimes(self) -> Mapping[str, Runtime]:
        return self._runtimes

    async def start(self) -> None:
        """Start every function's runtime. A function whose code cannot run (its start raised
        `FunctionCodeInvalid`) is logged and left in place: its own invocations fail with that
        error, and every other function serves."""
        self._started = True
        self._make_hidden_directories()
        self.apply_declared_aliases()
        for name, spec in self._specs.items():
            if name in self._runtimes:
                continue
            runtime = self._host.create(spec, log_sink=functools.partial(self._sandbox_log, name))
            self._runtimes[name] = runtime
            try:
                await runtime.start()
            except FunctionCodeInvalid as error:
                logger.error("%s; its invocations fail until it is fixed", error)

    def apply_declared_aliases(self) -> None:
        """Make or update the aliases edge.toml declares (`FunctionStore.declare_alias`: only
        those that are new or whose declaration changed; `edge check` validated them)."""
        for name, function in self._functions.items():
            for alias, declared in function.aliases.items():
                try:
                    self.store.declare_alias(
                        name,
                        alias,
                        declared.version,
                        additional_weights=declared.weights,
                        description=declared.description,
                    )
                except (LookupError, ValueError, OSError) as error:
                    logger.error("functions.%s.aliases.%s: not applied: %s", name, alias, error)
        self.router.refresh_now()

    def _sandbox_log(self, name: str, text: str) -> None:
        """Log text from function `name`'s runtime that no awaited invocation will bring back
        (a provisioned environment's Init output; an invocation whose caller went away)."""
        found = _START_LINE.search(text)
        if found is not None and found[1] in self._awaited:
            return
        self.logs.record(name, None, text, failed="[ERROR]" in text)

    def _make_hidden_directories(self) -> None:
        """Create the queue's directory now when it would sit in a function's code directory:
        the sandbox can hide only what exists when it starts (the queue makes it later)."""
        queue_dir = self._queue_dir
        if queue_dir.exists():
            return
        if any(queue_dir.is_relative_to(code_dir) for code_dir in self._code_dirs):
            queue_dir.mkdir(parents=True, exist_ok=True)

    def resolve(self, name: str, qualifier: str | None) -> str:
        """The version of function `name` that `qualifier` runs now (an alias picks one per
        call); `edge.lambda_service.NotFound` when the qualifier does not exist."""
        return self.router.resolve(name, qualifier)

    async def _version_runtime(self, name: str, version: str) -> Runtime:
        """Published version `version`'s runtime, made and started on first use."""
        key = (name, version)
        async with self._creating:
            runtime = self._versioned.get(key)
            if runtime is not None:
                return runtime
            runtime = self._make_version_runtime(name, version)
            self._versioned[key] = runtime
        try:
            await runtime.start()
        except FunctionCodeInvalid as error:
            logger.error("%s (version %s); its invocations fail until it is fixed", error, version)
        return runtime

    def _make_version_runtime(self, name: str, version: str) -> Runtime:
        """Published version `version`'s runtime (not started), with its provisioned
        environments."""
        function = self.store.version_config(name, version)
        spec = runtime_spec_for(
            name,
            function,
            timeout_seconds=self._longest,
            key_value_stores=self._store_files,
        )
        changes: dict[str, Any] = {"version": version}
        provisioned = self._provisioned.get((name, version), 0)
        if provisioned and hasattr(spec, "provisioned"):
            changes["provisioned"] = min(provisioned, getattr(spec, "max_concurrency", 0))
        spec = dataclasses.replace(spec, **changes)
        return self._host.create(spec, log_sink=functools.partial(self._sandbox_log, name))

    async def set_provisioned(self, wanted: Mapping[str, Mapping[str, int]]) -> list[str]:
        """Take the provisioned concurrency of published versions and aliases (function ->
        qualifier -> environments; an alias provisions its version): a version whose count
        changed gets a new runtime that starts that many environments before it takes the
        next invocation, and the one it replaces finishes what it runs. Returns the
        `name:version`s changed."""
        resolved: dict[tuple[str, str], int] = {}
        for name, by_qualifier in wanted.items():
            if name not in self._specs:
                continue
            for qualifier, count in by_qualifier.items():
                try:
                    version = self.resolve(name, qualifier) if qualifier != LATEST else LATEST
                except LookupError:
                    continue
                if version != LATEST:
                    key = (name, version)
                    resolved[key] = resolved.get(key, 0) + count
        changed = [
            k
            for k in {*resolved, *self._provisioned}
            if resolved.get(k, 0) != self._provisioned.get(k, 0)
        ]
        self._provisioned = resolved
        for name, version in changed:
            key = (name, version)
            if not self._started or (key not in self._versioned and not resolved.get(key)):
                continue
            async with self._creating:
                runtime = self._make_version_runtime(name, version)
                try:
                    await runtime.start()
                except FunctionCodeInvalid as error:
                    logger.error("%s (version %s): %s", name, version, error)
                old = self._versioned.get(key)
                self._versioned[key] = runtime
            if old is not None:
                self._retire(old)
        return [f"{name}:{version}" for name, version in sorted(changed)]

    def has_entry(self, name: str, entry: str) -> bool:
        """False when function `name` cannot handle `entry` (a WASM module without that
        export): the caller continues unchanged without building an event."""
        runtime = self._runtimes.get(name)
        return runtime is None or runtime.has_entry(entry)

    async def invoke(
        self,
        name: str,
        event: bytes,
        *,
        request_id: str,
        deadline: float,
        timeout_seconds: float | None = None,
        entry: str = "handler",
        client_context: dict[str, Any] | None = None,
        trigger: str = "invoke",
        version: str = LATEST,
        invoked_arn: str | None = None,
        trace_id: str | None = None,
    ) -> InvocationResult:
        """Run version `version` (see `resolve`) of function `name` once; raises the
        sandbox's errors (see sandbox.Runtime).

        An empty payload means "continue unchanged" (a WASM guest's 0, see ABI.md).
        `client_context`: the Invoke API's `X-Amz-Client-Context`, decoded. `trigger` names
        the caller in the function's log lines (`viewer-request`, `origin`, `invoke`).
        `invoked_arn`: the ARN as the caller named it (with its qualifier), for the context.
        `trace_id`: the request's `X-Amzn-Trace-Id`, the function's `_X_AMZN_TRACE_ID`.
        """
        if version == LATEST:
            runtime = self._runtimes[name]
        else:
            runtime = self._versioned.get((name, version)) or await self._version_runtime(
                name, version
            )
        request_id = request_id or new_request_id()
        self._awaited.add(request_id)
        try:
            # Lambda's concurrency: the function's reserved share and the node-wide limit.
            async with self._limiter.lease(name) if self._limiter is not None else _NO_LEASE:
                running = self._in_flight[name] = self._in_flight.get(name, 0) + 1
                if running > self._peak.get(name, 0):
                    self._peak[name] = running
                try:
                    result = await runtime.invoke(
                        event,
                        entry=entry,
                        request_id=request_id,
                        deadline=deadline,
                        timeout_seconds=timeout_seconds,
                        invoked_arn=invoked_arn,
                        client_context=client_context,
                        trace_id=trace_id,
                    )
                finally:
                    self._in_flight[name] -= 1
        except FunctionError as error:
            self.logs.record(name, trigger, error.log, failed=True)
            raise
        finally:
            self._awaited.discard(request_id)
        self.logs.record(name, trigger, result.log, failed=False)
        return result

    def concurrency(self) -> dict[str, tuple[int, int]]:
        """(admitted invocations running now, the most at once so far) by function invoked."""
        return {name: (self._in_flight[name], peak) for name, peak in self._peak.items()}

    def stats(self) -> dict[str, RuntimeStats]:
        """Each started function's counters and gauges, for a metrics layer (`$LATEST` by
        name, a published version as `name:version`)."""
        found = {name: runtime.stats() for name, runtime in self._runtimes.items()}
        for (name, version), runtime in self._versioned.items():
            found[f"{name}:{version}"] = runtime.stats()
        return found

    async def update(
        self, config: EdgeConfig, *, replace: Collection[str] = ()
    ) -> tuple[list[str], list[str]]:
        """Take `config`'s functions: a function whose sandbox description changed, a new one
        and those named in `replace` (their code changed) get a new runtime, started before
        it takes the next invocation; the one it replaces finishes what it runs and is then
        closed. Unchanged functions keep their runtime and its warm environments. Returns
        (the names replaced or added, the names removed)."""
        described = _described(config)
        changed = [
            name
            for name, (spec, _) in described.items()
            if name in replace or self._specs.get(name) != spec
        ]
        removed = [name for name in self._specs if name not in described]
        self._code_dirs = _code_dirs(config)
        fresh: dict[str, Runtime] = {}
        for name in changed:
            spec, _ = described[name]
            if self._started:
                runtime = self._host.create(
                    spec, log_sink=functools.partial(self._sandbox_log, name)
                )
                try:
                    await runtime.start()
                except FunctionCodeInvalid as error:
                    logger.error("%s; its invocations fail until it is fixed", error)
                fresh[name] = runtime
        # The swap itself: no await between the first and the last, so an invocation sees
        # either every old runtime or every new one.
        for name in changed:
            spec, info = described[name]
            self._specs[name] = spec
            self.info[name] = info
            old = self._runtimes.pop(name, None)
            if name in fresh:
                self._runtimes[name] = fresh[name]
            if old is not None:
                self._retire(old)
        for name in removed:
            del self._specs[name]
            del self.info[name]
            old = self._runtimes.pop(name, None)
            if old is not None:
                self._retire(old)
        return changed, removed

    def _retire(self, runtime: Runtime) -> None:
        task = asyncio.get_running_loop().create_task(_drain_and_close(runtime))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        for runtime in [*self._runtimes.values(), *self._versioned.values()]:
            await runtime.aclose()
        self._host.close()


# How often a replaced runtime is asked whether its invocations have finished, and the most it
# is given beyond the longest timeout.
_DRAIN_POLL_SECONDS = 0.05
_DRAIN_GRACE_SECONDS = 2.0


async def _drain_and_close(runtime: Runtime) -> None:
    """Close `runtime` once nothing runs in it (at the latest after any invocation's timeout
    could have passed)."""
    try:
        deadline = time.monotonic() + _LONGEST_INVOCATION_SECONDS + _DRAIN_GRACE_SECONDS
        idle_polls = 0
        while time.monotonic() < deadline and idle_polls < 2:
            await asyncio.sleep(_DRAIN_POLL_SECONDS)
            idle_polls = idle_polls + 1 if runtime.stats().in_flight == 0 else 0
    finally:
        await runtime.aclose()


# Lambda's longest timeout (the Invoke API's): no invocation outlives it.
_LONGEST_INVOCATION_SECONDS = 900.0


def _code_dirs(config: EdgeConfig) -> list[Path]:
    return [
        function.code_dir_and_handler[0].resolve()
        for function in config.functions.values()
        if function.runtime == "python" or function.is_nodejs or function.is_provided
    ]


def _described(config: EdgeConfig) -> dict[str, tuple[RuntimeSpec, FunctionInfo]]:
    """Each function's sandbox description and what the pipeline knows of it."""
    longest = _longest_timeout(config)
    stores = _store_files(config)
    described: dict[str, tuple[RuntimeSpec, FunctionInfo]] = {}
    for name, function in config.functions.items():
        spec = runtime_spec_for(
            name,
            function,
            timeout_seconds=longest,
            key_value_stores=stores,
            state_dir=edge_state_dir(config),
        )
        info = FunctionInfo(
            name, function.runtime, spec.version, function.memory_size_mb, function.timeout
        )
        described[name] = (spec, info)
    return described
