"""Execution environments for edge functions, behind one small async interface.

`PythonFunctionPool(spec).invoke(event_bytes) -> InvocationResult`, raising the errors of
`sandbox.errors`. Exports are loaded on first use: the zygote imports this package before it
forks environments and must not pay for asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.errors import (
        FunctionCrashed,
        FunctionError,
        FunctionMemoryExceeded,
        FunctionThrottled,
        FunctionTimeout,
        PayloadTooLarge,
        PoolClosed,
        SandboxError,
    )
    from sandbox.pool import PoolStats, PythonFunctionPool
    from sandbox.python_worker.environment import InvocationResult
    from sandbox.python_worker.isolation import SandboxPolicy, probe_isolation
    from sandbox.python_worker.oneshot import invoke_handler_file
    from sandbox.python_worker.spec import FunctionSpec, check_environment

__all__ = [
    "FunctionCrashed",
    "FunctionError",
    "FunctionMemoryExceeded",
    "FunctionSpec",
    "FunctionThrottled",
    "FunctionTimeout",
    "InvocationResult",
    "PayloadTooLarge",
    "PoolClosed",
    "PoolStats",
    "PythonFunctionPool",
    "SandboxError",
    "SandboxPolicy",
    "check_environment",
    "invoke_handler_file",
    "probe_isolation",
]

_MODULES = {
    "FunctionCrashed": "sandbox.errors",
    "FunctionError": "sandbox.errors",
    "FunctionMemoryExceeded": "sandbox.errors",
    "FunctionThrottled": "sandbox.errors",
    "FunctionTimeout": "sandbox.errors",
    "PayloadTooLarge": "sandbox.errors",
    "PoolClosed": "sandbox.errors",
    "SandboxError": "sandbox.errors",
    "PoolStats": "sandbox.pool",
    "PythonFunctionPool": "sandbox.pool",
    "InvocationResult": "sandbox.python_worker.environment",
    "invoke_handler_file": "sandbox.python_worker.oneshot",
    "SandboxPolicy": "sandbox.python_worker.isolation",
    "probe_isolation": "sandbox.python_worker.isolation",
    "FunctionSpec": "sandbox.python_worker.spec",
    "check_environment": "sandbox.python_worker.spec",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
