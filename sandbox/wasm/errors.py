"""The WASM runtime's own error: a module that cannot run at all.

Everything an invocation can do wrong is one of `sandbox.errors`; this one is about the
function's code before any invocation (unreadable file, invalid WebAssembly, ABI not followed),
so it is a `SandboxError` and not a `FunctionError`: there is no request to blame.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.errors import SandboxError


class WasmModuleError(SandboxError):
    """The function's module cannot be loaded, compiled or linked under its ABI."""

    def __init__(self, function_name: str, module: Path, reason: str) -> None:
        super().__init__(f"function {function_name!r}: module {str(module)!r}: {reason}")
        self.function_name = function_name
        self.module = module
        self.reason = reason
