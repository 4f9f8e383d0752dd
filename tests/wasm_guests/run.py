"""A minimal host for the core WASM ABI on wasmtime-py, to run the example guests in tests.

It does what the ABI (sandbox/wasm/edge_abi.h) asks of a host and nothing more: write the event
through `edge_alloc`, call the entry point, unpack `(ptr << 32) | len`, read the result, collect
`edge.log` lines, call `edge_reset` before each invocation on a reused instance. No limits, no
deadlines: the real runtime in sandbox/wasm owns those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import wasmtime

REQUEST_ENTRY_POINTS = frozenset({"viewer_request", "origin_request"})
RESPONSE_ENTRY_POINTS = frozenset({"origin_response", "viewer_response"})
U32_MASK = 0xFFFF_FFFF
U64_MASK = 0xFFFF_FFFF_FFFF_FFFF


class GuestFailed(Exception):
    """The guest trapped or broke the ABI; `logs` holds what it logged before."""

    def __init__(self, message: str, logs: list[str]) -> None:
        super().__init__(message)
        self.logs = logs


class GuestHost:
    """One engine, each module compiled once."""

    def __init__(self) -> None:
        self.engine = wasmtime.Engine()
        self._modules: dict[Path, wasmtime.Module] = {}

    def module(self, path: Path) -> wasmtime.Module:
        if path not in self._modules:
            self._modules[path] = wasmtime.Module.from_file(self.engine, str(path))
        return self._modules[path]

    def instantiate(self, path: Path) -> GuestInstance:
        return GuestInstance(self.engine, self.module(path))

    def invoke(self, path: Path, entry: str, event: bytes) -> tuple[bytes | None, list[str]]:
        """One invocation in a fresh instance: (result JSON or None for "unchanged", log lines)."""
        instance = self.instantiate(path)
        return instance.call(entry, event), instance.logs


class GuestInstance:
    """An instantiated guest with its own Store; reusable, one invocation at a time."""

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module) -> None:
        self.logs: list[str] = []
        self._store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        i32 = wasmtime.ValType.i32()
        linker.define_func("edge", "log", wasmtime.FuncType([i32, i32], []), self._log)
        self._instance = linker.instantiate(self._store, module)
        self._exports = self._instance.exports(self._store)
        memory = self._exports["memory"]
        assert isinstance(memory, wasmtime.Memory), "the guest must export its memory"
        self._memory = memory
        self._calls = 0

    def _log(self, ptr: int, length: int) -> None:
        data = self._memory.read(self._store, ptr, ptr + length)
        self.logs.append(bytes(data).decode("utf-8", errors="replace"))

    def _func(self, name: str) -> wasmtime.Func | None:
        try:
            export = self._exports[name]
        except KeyError:
            return None
        return export if isinstance(export, wasmtime.Func) else None

    @property
    def memory_bytes(self) -> int:
        return self._memory.data_len(self._store)

    def call(self, entry: str, event: bytes) -> bytes | None:
        """Run `entry` on `event`; None means "continue unchanged" (return 0 or no such export)."""
        entry_fn = self._func(entry)
        if entry_fn is None:
            return None
        alloc = self._func("edge_alloc")
        if alloc is None:
            raise GuestFailed("the guest exports no edge_alloc", self.logs)
        reset = self._func("edge_reset")
        try:
            if self._calls and reset is not None:
                reset(self._store)
            self._calls += 1
            ptr = alloc(self._store, len(event))
            if not ptr:
                raise GuestFailed("edge_alloc returned 0", self.logs)
            self._memory.write(self._store, event, ptr)
            packed = entry_fn(self._store, ptr, len(event))
        except wasmtime.Trap as trap:
            raise GuestFailed(f"trap: {trap.message}", self.logs) from trap
        assert isinstance(packed, int)
        packed &= U64_MASK  # i64 comes back signed; the ABI packs unsigned
        if packed == 0:
            return None
        result_ptr, result_len = packed >> 32, packed & U32_MASK
        if result_ptr + result_len > self.memory_bytes:
            raise GuestFailed("result outside guest memory", self.logs)
        return bytes(self._memory.read(self._store, result_ptr, result_ptr + result_len))


def unchanged(entry: str, event: dict[str, Any]) -> Any:
    """What "continue unchanged" stands for: the request or response the event carried."""
    cf = event["Records"][0]["cf"]
    if entry in REQUEST_ENTRY_POINTS:
        return cf["request"]
    if entry in RESPONSE_ENTRY_POINTS:
        return cf["response"]
    raise ValueError(f"{entry!r} has no unchanged result")
