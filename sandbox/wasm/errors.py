"""The WASM runtime's own error: a module that cannot run at all.

Everything an invocation can do wrong is one of `sandbox.runtime.errors`; this one is about the
function's code before any invocation (unreadable file, invalid WebAssembly, ABI not followed),
so it is a `FunctionCodeInvalid` and not a `FunctionError`: there is no request to blame.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.runtime.errors import FunctionCodeInvalid


class WasmModuleError(FunctionCodeInvalid):
    """The function's module cannot be loaded, compiled or linked under its ABI."""

    def __init__(self, function_name: str, module: Path, reason: str) -> None:
        super().__init__(function_name, f"module {str(module)!r}: {reason}")
        self.module = module
