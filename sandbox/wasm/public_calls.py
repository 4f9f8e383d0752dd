"""wasmtime-py's public API for everything an invocation does: the fallback of `raw_calls`.

Used when the raw path's self-test fails (a wasmtime release whose private bindings changed) or
when an engine is told not to use it. Each call goes through `Func.__call__`, which converts
every value through `Val`: an echo invocation costs ~160-190 µs more than on the raw path
(measured: ~420 µs fresh, ~260 µs reused, against ~230 and ~100); memory is copied through
`Memory.data_ptr` as on the fast path, and `edge.log` is a `Linker.define_func` callback.
A WASI command's stdin comes from a temporary file (the public API has no stdin bytes),
unlinked once the store holds it; stdout and stderr go to the same capture.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from ctypes import addressof, string_at
from typing import Any

import wasmtime

from sandbox.wasm import abi, guest


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def _failure(exc: Exception) -> Exception:
    """The guest failure a wasmtime exception stands for."""
    if isinstance(exc, wasmtime.ExitTrap):
        return guest.GuestExit(exc.code)
    if isinstance(exc, wasmtime.Trap):
        code = exc.trap_code
        message, frames = guest.split_trap_message(exc.message)
        return guest.GuestTrap(None if code is None else code.name, message, frames)
    return guest.exhaustion(str(exc)) or guest.GuestAbiViolation(str(exc))


def _log(caller: wasmtime.Caller, ptr: int, length: int) -> None:
    # An exception raised here ends the guest's call and comes out of it as it is (wasmtime-py
    # re-raises it): the same GuestAbiViolation as the raw path's host trap.
    try:
        ptr &= 0xFFFF_FFFF
        length &= 0xFFFF_FFFF
        memory = caller.get(abi.MEMORY_EXPORT)
        if not isinstance(memory, wasmtime.Memory):
            raise guest.GuestAbiViolation("edge.log: the guest exports no memory")
        if ptr + length > memory.data_len(caller):
            raise guest.GuestAbiViolation(guest.log_outside_memory(ptr, length))
        capture = guest.current_capture()
        if capture is not None:
            base = addressof(memory.data_ptr(caller).contents)
            capture.log_message(base + ptr, length, string_at)
    except guest.GuestAbiViolation:
        raise
    except Exception:  # noqa: BLE001 - the guest is told as the raw path tells it
        raise guest.GuestAbiViolation("edge.log: host error") from None


def _reader(data: bytes) -> Callable[[int, int], bytes]:
    return lambda address, length: data[address : address + length]


def _configure_wasi(store: wasmtime.Store, wasi: guest.WasiSetup) -> None:
    config = wasmtime.WasiConfig()
    config.argv = wasi.argv
    config.env = wasi.environment
    capture = wasi.capture
    config.stdout_custom = lambda data: capture.write_stdout(0, len(data), _reader(data))
    config.stderr_custom = lambda data: capture.write_stderr(0, len(data), _reader(data))
    fd, path = tempfile.mkstemp(prefix="edge-wasi-stdin-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(wasi.stdin)
        config.stdin_file = path
        store.set_wasi(config)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


class PublicLinked(guest.Linked):
    """A module pre-linked with `edge.log` (and WASI when asked) through the public API."""

    def __init__(
        self, engine: wasmtime.Engine, module: wasmtime.Module, *, wasi: bool, has_reset: bool
    ) -> None:
        self.engine = engine
        self.has_reset = has_reset
        linker = wasmtime.Linker(engine)
        log_type = wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], [])
        linker.define_func(abi.LOG_MODULE, abi.LOG_NAME, log_type, _log, access_caller=True)
        if wasi:
            linker.define_wasi()
        self._linker = linker
        self.pre = linker.instantiate_pre(module)

    def instantiate(
        self, limits: guest.StoreLimits, wasi: guest.WasiSetup | None = None
    ) -> PublicInstance:
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=limits.memory_limit_bytes)
        try:
            store.set_epoch_deadline(limits.deadline_ticks)
            if limits.fuel is not None:
                store.set_fuel(limits.fuel)
            if wasi is not None:
                _configure_wasi(store, wasi)
            instance = self.pre.instantiate(store)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise _failure(exc) from None
        return PublicInstance(store, instance, has_reset=self.has_reset)


class PublicInstance(guest.LiveInstance):
    """One instance in its own store, called through wasmtime-py's `Func`."""

    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance, **kw: bool) -> None:
        super().__init__(**kw)
        self.store = store
        self._exports = instance.exports(store)
        memory = self._exports.get(abi.MEMORY_EXPORT)
        assert isinstance(memory, wasmtime.Memory)  # checked at link time
        self._memory = memory
        self._funcs: dict[str, wasmtime.Func] = {}

    def _call(self, name: str, *args: int) -> Any:
        func = self._funcs.get(name)
        if func is None:
            found = self._exports.get(name)
            if not isinstance(found, wasmtime.Func):
                raise guest.GuestAbiViolation(f"the instance has no export {name!r}")
            func = self._funcs[name] = found
        try:
            return func(self.store, *args)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise _failure(exc) from None

    def set_limits(self, *, deadline_ticks: int, fuel: int | None) -> None:
        self.store.set_epoch_deadline(deadline_ticks)
        if fuel is not None:
            self.store.set_fuel(fuel)

    def memory_bytes(self) -> int:
        return self._memory.data_len(self.store)

    def memory_address(self) -> int:
        return addressof(self._memory.data_ptr(self.store).contents)

    def alloc(self, size: int) -> int:
        return int(self._call(abi.ALLOC_EXPORT, _signed32(size))) & 0xFFFF_FFFF

    def call_entry(self, entry: str, ptr: int, length: int) -> int:
        return int(self._call(entry, _signed32(ptr), _signed32(length)))

    def call_void(self, name: str) -> None:
        self._call(name)
