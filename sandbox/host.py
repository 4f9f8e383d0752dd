"""The one place that knows every runtime: it makes each function's `Runtime` from its spec.

`RuntimeHost` owns what runtimes share (the wasmtime engine and its module cache, the isolation
policy of Python zygotes, the log sink) and picks the runtime by the kind of spec: a
`FunctionSpec` runs in Python worker processes, a `NodeFunctionSpec` in `node` processes, a
`ProvidedFunctionSpec` (a custom runtime) as its own `bootstrap` behind a Runtime API agent, a
`WasmFunctionSpec` on wasmtime, a `CloudFrontJsSpec` (a CloudFront Function) in process on
QuickJS. A new runtime is one more spec type and one more branch here; its callers do not
change.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.cloudfront_js.function import CloudFrontFunction
from sandbox.cloudfront_js.spec import CloudFrontJsSpec
from sandbox.node_worker.function import NodeFunctionPool
from sandbox.node_worker.spec import NodeFunctionSpec, check_node
from sandbox.provided_worker.function import ProvidedFunctionPool
from sandbox.provided_worker.spec import ProvidedFunctionSpec, check_bootstrap
from sandbox.python_worker.code_check import check_handler
from sandbox.python_worker.function import PythonFunctionPool
from sandbox.python_worker.isolation import SandboxPolicy
from sandbox.python_worker.spec import FunctionSpec
from sandbox.runtime.protocol import HANDLER_ENTRY, Runtime
from sandbox.runtime.result import InvocationResult
from sandbox.runtime.sink import LogSink
from sandbox.wasm.engine import WasmEngine
from sandbox.wasm.function import WasmFunction, link
from sandbox.wasm.spec import WasmFunctionSpec

RuntimeSpec = (
    FunctionSpec | NodeFunctionSpec | ProvidedFunctionSpec | WasmFunctionSpec | CloudFrontJsSpec
)


class RuntimeHost:
    """Makes runtimes; `close()` when every runtime it made is closed.

    `isolation` confines Python functions (default: the best this machine offers);
    `wasm_cache_dir` is the compiled-module cache (None: the user's cache directory, False:
    none). `log_sink` receives every invocation's log text.
    """

    def __init__(
        self,
        *,
        log_sink: LogSink | None = None,
        isolation: SandboxPolicy | None = None,
        wasm_cache_dir: Path | str | bool | None = None,
    ) -> None:
        self._log_sink = log_sink
        self._isolation = isolation
        self._wasm_cache_dir = wasm_cache_dir
        self._engine: WasmEngine | None = None

    def create(self, spec: RuntimeSpec, *, log_sink: LogSink | None = None) -> Runtime:
        """The runtime for `spec`, not started yet; `log_sink` (default: the host's) receives
        its log text."""
        sink = log_sink or self._log_sink
        if isinstance(spec, WasmFunctionSpec):
            return WasmFunction(spec, engine=self._wasm_engine(), log_sink=sink)
        if isinstance(spec, NodeFunctionSpec):
            return NodeFunctionPool(spec, log_sink=sink, policy=self._isolation)
        if isinstance(spec, ProvidedFunctionSpec):
            return ProvidedFunctionPool(spec, log_sink=sink, policy=self._isolation)
        if isinstance(spec, CloudFrontJsSpec):
            return CloudFrontFunction(spec, log_sink=sink)
        return PythonFunctionPool(spec, log_sink=sink, sandbox=self._isolation)

    def check(self, spec: RuntimeSpec, *, link_modules: bool = True) -> None:
        """Refuse code that cannot run at all, before serving: raises `FunctionCodeInvalid`
        naming the problem. Nothing of the function runs: a Python handler's module is found
        and parsed, and must define the function; a Node.js function needs its `node` and its
        handler's module file; a custom runtime its executable `bootstrap`; a WASM module is
        compiled and linked under its ABI (unless `link_modules` is false: wasmtime's threads
        must not be started in a process that forks workers afterwards). Each runtime brings
        its own check here. Blocking."""
        if isinstance(spec, WasmFunctionSpec):
            if link_modules:
                link(spec, self._wasm_engine())
            return
        if isinstance(spec, NodeFunctionSpec):
            check_node(spec)
            return
        if isinstance(spec, ProvidedFunctionSpec):
            check_bootstrap(spec)
            return
        if isinstance(spec, CloudFrontJsSpec):
            CloudFrontFunction(spec).load()
            return
        check_handler(spec)

    def _wasm_engine(self) -> WasmEngine:
        if self._engine is None:
            self._engine = WasmEngine(cache_dir=self._wasm_cache_dir)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


async def invoke_once(
    spec: RuntimeSpec,
    event: bytes,
    *,
    entry: str = HANDLER_ENTRY,
    isolation: SandboxPolicy | None = None,
    wasm_cache_dir: Path | str | bool | None = None,
) -> InvocationResult:
    """Start `spec`'s runtime, invoke it once at `entry`, stop everything (`edge invoke`).

    A cold start in a real environment: the same process (or instance), variables, limits and
    log text as under the edge. Raises what `Runtime.start` and `Runtime.invoke` raise.
    """
    host = RuntimeHost(isolation=isolation, wasm_cache_dir=wasm_cache_dir)
    runtime = host.create(spec)
    try:
        await runtime.start()
        return await runtime.invoke(event, entry=entry)
    finally:
        await runtime.aclose()
        host.close()
