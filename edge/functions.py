"""The function registry: one runtime object per configured function, behind one door.

Python functions get an execution-environment pool each, and each pool its own zygote,
confined by the `[sandbox]` policy to that function's code and network: one function's
environments cannot reach another's, and a zygote that dies is relaunched for its function
alone. WASM functions share one wasmtime engine and its compiled module cache. Each
invocation's Lambda log (START .. REPORT) goes to the log sink, by default the edge's stderr,
as Lambda writes it to CloudWatch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.config import EdgeConfig, FunctionConfig
from sandbox import SandboxPolicy
from sandbox.pool import PythonFunctionPool
from sandbox.python_worker.environment import InvocationResult
from sandbox.python_worker.spec import FunctionSpec
from sandbox.wasm import WasmEngine, WasmFunction, WasmFunctionSpec

LogSink = Callable[[str], None]


def stderr_sink(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


class Limiter(Protocol):
    """Admission by concurrency (edge.invoke.ConcurrencyLimiter)."""

    def acquire(self, name: str) -> AbstractContextManager[None]: ...


class Runtime(Protocol):
    """What the registry needs of a function's runtime (both sandboxes provide it)."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """What the pipeline needs to know of a function besides invoking it."""

    name: str
    runtime: str
    version: str
    memory_mb: int
    timeout_seconds: float | None  # None: the trigger's limit


def spec_for(name: str, function: FunctionConfig, *, timeout_seconds: float) -> FunctionSpec:
    """The Python sandbox's description of function `name` (config already resolved paths)."""
    code_dir, handler = function.code_dir_and_handler
    return FunctionSpec(
        name=name,
        handler=handler,
        code_dir=code_dir,
        memory_mb=function.memory,
        timeout_seconds=function.timeout or timeout_seconds,
        environment=dict(function.environment),
        max_concurrency=function.max_concurrency,
        idle_seconds=function.idle_timeout,
        provisioned=min(function.provisioned, function.max_concurrency),
        max_wait_seconds=function.max_wait,
        network=function.network,
        writable_paths=tuple(function.writable_paths),
        ephemeral_storage_mb=function.ephemeral_storage,
    )


def sandbox_policy(config: EdgeConfig) -> SandboxPolicy:
    """The `[sandbox]` table as the sandbox takes it, with the edge's own files to hide from
    functions should their code directory contain any: the configuration, the admin
    listener's secret key file, the cache directory, the async-invocation queue and the `.edge`
    folder beside the configuration."""
    hidden = [config.base_dir / ".edge", config.invoke.queue_path]
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
        timeout_seconds=function.timeout or timeout_seconds,
        environment=dict(function.environment),
        max_concurrency=function.max_concurrency,
        reuse_instance=function.reuse_instance,
        fuel=function.fuel,
    )


class FunctionRegistry:
    """Runtimes by function name; `invoke` is the one door to the sandboxes."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        log_sink: LogSink | None = stderr_sink,
        wasm_cache_dir: str | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self._limiter = limiter
        self._python_specs: dict[str, FunctionSpec] = {}
        self._wasm_specs: dict[str, WasmFunctionSpec] = {}
        self._runtimes: dict[str, Any] = {}
        self._log_sink = log_sink
        self._sandbox = sandbox_policy(config)
        self._queue_dir = config.invoke.queue_path.resolve().parent
        self._engine: WasmEngine | None = None
        self._wasm_cache_dir = wasm_cache_dir
        self.info: dict[str, FunctionInfo] = {}
        # A function used on origin triggers may run up to the origin limit; the trigger's own
        # limit is applied per invocation as a deadline.
        longest = max(config.lambda_edge.viewer_timeout, config.lambda_edge.origin_timeout)
        for name, function in config.functions.items():
            if function.runtime == "wasm":
                wasm = wasm_spec_for(name, function, timeout_seconds=longest)
                self._wasm_specs[name] = wasm
                version = wasm.version
            else:
                spec = spec_for(name, function, timeout_seconds=longest)
                self._python_specs[name] = spec
                version = spec.version
            self.info[name] = FunctionInfo(
                name, function.runtime, version, function.memory, function.timeout
            )

    @property
    def runtimes(self) -> Mapping[str, Any]:
        return self._runtimes

    async def start(self) -> None:
        self._make_hidden_directories()
        if self._wasm_specs and self._engine is None:
            self._engine = WasmEngine(cache_dir=self._wasm_cache_dir)
        for name, spec in self._python_specs.items():
            if name not in self._runtimes:
                pool = PythonFunctionPool(spec, log_sink=self._log_sink, sandbox=self._sandbox)
                self._runtimes[name] = pool
                await pool.start()
        for name, wasm in self._wasm_specs.items():
            if name not in self._runtimes:
                assert self._engine is not None
                function = WasmFunction(wasm, engine=self._engine, log_sink=self._log_sink)
                self._runtimes[name] = function
                await function.start()

    def _make_hidden_directories(self) -> None:
        """Create the queue's directory now when it would sit in a function's code directory:
        the sandbox can hide only what exists when it starts (the queue makes it later)."""
        queue_dir = self._queue_dir
        if queue_dir.exists():
            return
        if any(queue_dir.is_relative_to(s.code_dir.resolve()) for s in self._python_specs.values()):
            queue_dir.mkdir(parents=True, exist_ok=True)

    def has_entry(self, name: str, entry: str) -> bool:
        """False when function `name` cannot handle `entry` (a WASM module without that
        export): the caller continues unchanged without building an event."""
        runtime = self._runtimes.get(name)
        if isinstance(runtime, WasmFunction):
            return runtime.has_entry(entry)
        return True

    async def invoke(
        self,
        name: str,
        event: bytes,
        *,
        request_id: str,
        deadline: float,
        timeout_seconds: float | None = None,
        entry: str = "handler",
    ) -> InvocationResult:
        """Run function `name` once; raises the sandbox's errors (see sandbox.errors).

        A WASM result with an empty payload means "continue unchanged" (see ABI.md).
        """
        if self._limiter is not None:
            # Lambda's concurrency: the function's reserved share and the node-wide limit.
            with self._limiter.acquire(name):
                return await self._invoke(name, event, request_id, deadline, timeout_seconds, entry)
        return await self._invoke(name, event, request_id, deadline, timeout_seconds, entry)

    async def _invoke(
        self,
        name: str,
        event: bytes,
        request_id: str,
        deadline: float,
        timeout_seconds: float | None,
        entry: str,
    ) -> InvocationResult:
        runtime = self._runtimes[name]
        if isinstance(runtime, WasmFunction):
            return await runtime.invoke(
                event,
                entry=entry,
                request_id=request_id or None,
                deadline=deadline,
                timeout_seconds=timeout_seconds,
            )
        result: InvocationResult = await runtime.invoke(
            event, request_id=request_id, deadline=deadline, timeout_seconds=timeout_seconds
        )
        return result

    async def aclose(self) -> None:
        for runtime in self._runtimes.values():
            await runtime.aclose()
        if self._engine is not None:
            self._engine.close()
            self._engine = None
