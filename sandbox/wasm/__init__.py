"""WASM functions on wasmtime: a shared engine with a compiled-module cache, and per-function
slots that run each invocation in a fresh (or per-slot warm) instance with enforced limits.

`function` (the runtime, `WasmFunction`), `engine` (wasmtime engines, the module cache, the epoch
ticker), `instance` (linking under the ABI, one live instance), `invocation` (one invocation
start to finish), `capture` (what a guest writes), `abi` (the ABI as pure functions), `spec`.
The ABI for guest authors is `ABI.md` in this directory (C header: `edge_abi.h`).
"""

from sandbox.wasm.abi import CONTINUE
from sandbox.wasm.engine import CacheStats, WasmEngine, wasm_cache_dir
from sandbox.wasm.errors import WasmModuleError
from sandbox.wasm.function import WasmFunction, WasmStats
from sandbox.wasm.spec import WasmFunctionSpec

__all__ = [
    "CONTINUE",
    "CacheStats",
    "WasmEngine",
    "WasmFunction",
    "WasmFunctionSpec",
    "WasmModuleError",
    "WasmStats",
    "wasm_cache_dir",
]
