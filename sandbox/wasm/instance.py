"""A guest module linked under its ABI: the checks, then the way wasmtime will be called.

`LinkedModule` checks a compiled module against the ABI once (exports and their types, imports,
initial memory) and pre-links it with the host's imports, through `raw_calls` (ctypes over
wasmtime's private bindings, ~2 µs a call) or `public_calls` (the public API), as the engine
decided after its self-test. `instantiate` gives a `LiveInstance` with its limits set.
"""

from __future__ import annotations

import wasmtime

from sandbox.wasm import abi
from sandbox.wasm.guest import (
    Linked,
    LiveInstance,
    ModuleAbiError,
    Slices,
    StoreLimits,
    WasiSetup,
)
from sandbox.wasm.public_calls import PublicLinked
from sandbox.wasm.raw_calls import RawLinked
from sandbox.wasm.spec import Abi


def _kinds(types: list[wasmtime.ValType]) -> tuple[abi.ValueKind, ...]:
    kinds: list[abi.ValueKind] = []
    for value_type in types:
        name = str(value_type)
        kinds.append(name if name in ("i32", "i64", "f32", "f64") else "other")  # type: ignore[arg-type]
    return tuple(kinds)


class LinkedModule:
    """A compiled module checked against its ABI and pre-linked with the host's imports.

    `raw_calls`: call wasmtime through its private bindings (`raw_calls`, fast; the engine
    decides after a self-test), else through its public API (`public_calls`).
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        abi_name: Abi,
        *,
        memory_limit_bytes: int,
        raw_calls: bool = True,
    ) -> None:
        self.engine = engine
        self.module = module
        self.abi = abi_name
        functions: dict[str, tuple[tuple[abi.ValueKind, ...], tuple[abi.ValueKind, ...]]] = {}
        memory_min_pages: int | None = None
        for export in module.exports:
            kind = export.type
            if isinstance(kind, wasmtime.FuncType):
                functions[export.name] = (_kinds(kind.params), _kinds(kind.results))
            elif isinstance(kind, wasmtime.MemoryType) and export.name == abi.MEMORY_EXPORT:
                if kind.is_64:
                    raise ModuleAbiError("the exported memory must be a 32-bit memory")
                memory_min_pages = kind.limits.min
        self._check_imports(abi_name)
        if memory_min_pages is None:
            raise ModuleAbiError("the module must export its memory as 'memory'")
        if memory_min_pages * abi.WASM_PAGE_BYTES > memory_limit_bytes:
            raise ModuleAbiError(
                f"the module's initial memory ({memory_min_pages} pages of 64 KiB) is over the "
                f"function's memory limit ({abi.describe_memory_limit(memory_limit_bytes)})"
            )
        expectations: list[tuple[str, tuple[tuple[str, ...], tuple[str, ...]]]] = []
        if abi_name == "core":
            self.entries = frozenset(abi.ENTRY_POINTS & functions.keys())
            expectations += [(entry, abi.ENTRY_SIGNATURE) for entry in sorted(self.entries)]
            if self.entries and abi.ALLOC_EXPORT not in functions:
                raise ModuleAbiError("the module must export 'edge_alloc' (the ABI allocator)")
            if abi.ALLOC_EXPORT in functions:
                expectations.append((abi.ALLOC_EXPORT, abi.ALLOC_SIGNATURE))
            if abi.RESET_EXPORT in functions:
                expectations.append((abi.RESET_EXPORT, abi.RESET_SIGNATURE))
            if abi.INITIALIZE_EXPORT in functions:
                expectations.append((abi.INITIALIZE_EXPORT, abi.INITIALIZE_SIGNATURE))
        else:
            if abi.WASI_START not in functions:
                raise ModuleAbiError("a WASI command must export '_start'")
            expectations.append((abi.WASI_START, abi.START_SIGNATURE))
            self.entries = abi.ENTRY_POINTS  # the command handles whatever it is given
        for name, expected in expectations:
            problem = abi.signature_error(name, functions[name], expected)
            if problem is not None:
                raise ModuleAbiError(problem)
        self.has_reset = abi_name == "core" and abi.RESET_EXPORT in functions
        self.has_initialize = abi_name == "core" and abi.INITIALIZE_EXPORT in functions
        names = {
            *self.entries,
            abi.ALLOC_EXPORT,
            abi.RESET_EXPORT,
            abi.INITIALIZE_EXPORT,
            abi.WASI_START,
        }
        self.raw_calls = raw_calls
        wasi = abi_name == "wasi"
        self._linked: Linked = (
            RawLinked(engine, module, wasi=wasi, has_reset=self.has_reset, names=names)
            if raw_calls
            else PublicLinked(engine, module, wasi=wasi, has_reset=self.has_reset)
        )
        # Whether its invocations may start on the event loop: their guest can be suspended at
        # the end of a slice and resumed on a thread (raw calls, core ABI).
        self.sliced = self._linked.sliced

    def _check_imports(self, abi_name: Abi) -> None:
        for item in self.module.imports:
            if item.module == abi.LOG_MODULE and item.name == abi.LOG_NAME:
                kind = item.type
                if not isinstance(kind, wasmtime.FuncType) or abi.signature_error(
                    "edge.log", (_kinds(kind.params), _kinds(kind.results)), abi.LOG_SIGNATURE
                ):
                    raise ModuleAbiError("import 'edge.log' must have type (i32, i32) -> ()")
                continue
            if abi_name == "wasi" and item.module == "wasi_snapshot_preview1":
                continue
            allowed = "'edge.log'" + (" and WASI preview1" if abi_name == "wasi" else "")
            raise ModuleAbiError(
                f"the module imports '{item.module}.{item.name}'; the {abi_name} ABI offers "
                f"only {allowed}"
            )

    def instantiate(
        self,
        *,
        memory_limit_bytes: int,
        deadline_ticks: int,
        fuel: int | None,
        wasi: WasiSetup | None = None,
    ) -> LiveInstance:
        """A new instance in a new store with its limits set, a reactor's `_initialize` run.
        Raises GuestTrap/GuestExit/GuestAbiViolation when a start function fails."""
        instance = self._linked.instantiate(
            StoreLimits(memory_limit_bytes, deadline_ticks, fuel), wasi
        )
        if self.has_initialize:
            instance.call_void(abi.INITIALIZE_EXPORT)
        return instance

    def instantiate_sliced(
        self, *, memory_limit_bytes: int, deadline_ticks: int, fuel: int | None
    ) -> Slices[LiveInstance]:
        """`instantiate` (core ABI), sliced: a start function or `_initialize` may suspend."""
        instance = yield from self._linked.instantiate_sliced(
            StoreLimits(memory_limit_bytes, deadline_ticks, fuel)
        )
        if self.has_initialize:
            yield from instance.call_void_sliced(abi.INITIALIZE_EXPORT)
        return instance
