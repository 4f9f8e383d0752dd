"""Execution environments for edge functions, behind one small async interface.

`RuntimeHost().create(spec)` gives a function version's `Runtime` (a `FunctionSpec` runs in
Python worker processes, a `NodeFunctionSpec` in `node` processes, a `ProvidedFunctionSpec`
(a custom runtime's `bootstrap`) behind a Runtime API agent, a `WasmFunctionSpec` on
wasmtime): `start()`, `invoke(event, ...) -> InvocationResult`, `stats()`, `aclose()`, raising
the errors exported here. Callers use
`sandbox` through these names only. Exports are loaded on first use: the zygote imports this
package before it forks environments and must not pay for asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.cloudfront_js.kvs import edit_store
    from sandbox.cloudfront_js.spec import CloudFrontJsSpec
    from sandbox.host import RuntimeHost, invoke_once
    from sandbox.node_worker.spec import NodeFunctionSpec
    from sandbox.provided_worker.spec import ProvidedFunctionSpec
    from sandbox.python_worker.isolation import SandboxPolicy, probe_isolation
    from sandbox.python_worker.spec import FunctionSpec
    from sandbox.runtime.errors import (
        FunctionCodeInvalid,
        FunctionCrashed,
        FunctionError,
        FunctionMemoryExceeded,
        FunctionThrottled,
        FunctionTimeout,
        PayloadTooLarge,
        PoolClosed,
        SandboxError,
    )
    from sandbox.runtime.layers import check_layers
    from sandbox.runtime.limits import check_environment
    from sandbox.runtime.log_lines import log_tail
    from sandbox.runtime.protocol import Runtime
    from sandbox.runtime.request_ids import new_request_id
    from sandbox.runtime.result import InvocationResult
    from sandbox.runtime.sink import LogSink
    from sandbox.runtime.stats import RuntimeStats
    from sandbox.wasm.engine import wasm_cache_dir
    from sandbox.wasm.spec import WasmFunctionSpec

__all__ = [
    "CloudFrontJsSpec",
    "FunctionCodeInvalid",
    "FunctionCrashed",
    "FunctionError",
    "FunctionMemoryExceeded",
    "FunctionSpec",
    "FunctionThrottled",
    "FunctionTimeout",
    "InvocationResult",
    "LogSink",
    "NodeFunctionSpec",
    "PayloadTooLarge",
    "PoolClosed",
    "ProvidedFunctionSpec",
    "Runtime",
    "RuntimeHost",
    "RuntimeStats",
    "SandboxError",
    "SandboxPolicy",
    "WasmFunctionSpec",
    "check_environment",
    "check_layers",
    "edit_store",
    "invoke_once",
    "log_tail",
    "new_request_id",
    "probe_isolation",
    "wasm_cache_dir",
]

_MODULES = {
    "edit_store": "sandbox.cloudfront_js.kvs",
    "CloudFrontJsSpec": "sandbox.cloudfront_js.spec",
    "RuntimeHost": "sandbox.host",
    "invoke_once": "sandbox.host",
    "NodeFunctionSpec": "sandbox.node_worker.spec",
    "ProvidedFunctionSpec": "sandbox.provided_worker.spec",
    "SandboxPolicy": "sandbox.python_worker.isolation",
    "probe_isolation": "sandbox.python_worker.isolation",
    "FunctionSpec": "sandbox.python_worker.spec",
    "FunctionCodeInvalid": "sandbox.runtime.errors",
    "FunctionCrashed": "sandbox.runtime.errors",
    "FunctionError": "sandbox.runtime.errors",
    "FunctionMemoryExceeded": "sandbox.runtime.errors",
    "FunctionThrottled": "sandbox.runtime.errors",
    "FunctionTimeout": "sandbox.runtime.errors",
    "PayloadTooLarge": "sandbox.runtime.errors",
    "PoolClosed": "sandbox.runtime.errors",
    "SandboxError": "sandbox.runtime.errors",
    "check_environment": "sandbox.runtime.limits",
    "check_layers": "sandbox.runtime.layers",
    "log_tail": "sandbox.runtime.log_lines",
    "Runtime": "sandbox.runtime.protocol",
    "new_request_id": "sandbox.runtime.request_ids",
    "InvocationResult": "sandbox.runtime.result",
    "LogSink": "sandbox.runtime.sink",
    "RuntimeStats": "sandbox.runtime.stats",
    "WasmFunctionSpec": "sandbox.wasm.spec",
    "wasm_cache_dir": "sandbox.wasm.engine",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
