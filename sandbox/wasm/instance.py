"""Guest instances, on the cheapest paths wasmtime-py offers: one linked module, one live instance.

`LinkedModule` checks a compiled module against the ABI and pre-links it once (`InstancePre`);
`LiveInstance` is one instance in its own `Store`, with the few operations an invocation needs:
call `edge_alloc`, copy the event in, call an entry point, copy the result out. Calls go through
`wasmtime_func_call_unchecked` with a reused argument buffer and memory is copied with
`ctypes.memmove`/`string_at` (PERFORMANCE.md: ~2 µs per call instead of ~38 through the
high-level API). The signatures were checked at link time, which is what makes unchecked calls
safe. The `edge.log` import is a raw ctypes callback too.

Everything here runs on the worker thread that owns the store; nothing touches asyncio.
Guest failures surface as `GuestTrap`, `GuestExit` or `GuestAbiViolation`.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from ctypes import POINTER, addressof, byref, memmove, string_at
from typing import Any

import wasmtime
from wasmtime import _bindings as ffi

from sandbox.wasm import abi
from sandbox.wasm.capture import OutputCapture
from sandbox.wasm.spec import Abi

_call_unchecked = ffi._wasmtime_func_call_unchecked
_export_get = ffi._wasmtime_instance_export_get
_memory_data = ffi._wasmtime_memory_data
_memory_size = ffi._wasmtime_memory_data_size
_set_epoch_deadline = ffi._wasmtime_context_set_epoch_deadline
_set_fuel = ffi._wasmtime_context_set_fuel
_instantiate_pre = ffi._wasmtime_instance_pre_instantiate
_caller_context = ffi._wasmtime_caller_context
_caller_export_get = ffi._wasmtime_caller_export_get
_trap_new = ffi._wasmtime_trap_new
_TrapPointer = POINTER(ffi.wasm_trap_t)

_MEMORY_NAME = abi.MEMORY_EXPORT.encode()


class GuestTrap(Exception):
    """The guest trapped; `code` is wasmtime's trap code name (`UNREACHABLE`, `INTERRUPT`,
    `OUT_OF_FUEL`...) or None, `frames` the wasm backtrace lines."""

    def __init__(self, code: str | None, message: str, frames: list[str]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frames = frames


class GuestExit(Exception):
    """A WASI guest called `proc_exit(code)`."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit status {code}")
        self.code = code


class GuestAbiViolation(Exception):
    """The guest broke the ABI at run time (e.g. a result outside its memory)."""


class ModuleAbiError(ValueError):
    """The module cannot run under its ABI (a missing export, a wrong signature...)."""


# -- log capture ------------------------------------------------------------------------

_current = threading.local()


def set_capture(capture: OutputCapture | None) -> None:
    """Route this thread's `edge.log` calls to `capture` (the thread's current invocation)."""
    _current.capture = capture


def _new_trap(message: str) -> int:
    raw = message.encode()
    trap = _trap_new(raw, len(raw))
    return ctypes.cast(trap, ctypes.c_void_p).value or 0


@ffi.wasmtime_func_unchecked_callback_t  # type: ignore[untyped-decorator]
def _log_callback(_env: Any, caller: Any, args: Any, _nargs: int) -> int:
    try:
        ptr = args[0].i32 & 0xFFFF_FFFF
        length = args[1].i32 & 0xFFFF_FFFF
        item = ffi.wasmtime_extern_t()
        if not _caller_export_get(caller, _MEMORY_NAME, len(_MEMORY_NAME), byref(item)):
            return _new_trap("edge.log: the guest exports no memory")
        context = _caller_context(caller)
        memory = item.of.memory
        if ptr + length > _memory_size(context, byref(memory)):
            return _new_trap(f"edge.log: message at {ptr:#x} ({length} bytes) is outside memory")
        capture: OutputCapture | None = getattr(_current, "capture", None)
        if capture is not None:
            base = addressof(_memory_data(context, byref(memory)).contents)
            # The capture reads only what it can keep (never a whole 100 MB message).
            capture.log_message(base + ptr, length, string_at)
        return 0
    except Exception:  # noqa: BLE001 - an exception must not unwind through wasm frames
        return _new_trap("edge.log: host error")


# -- WASI stdout / stderr ---------------------------------------------------------------

_OutputCallback = ctypes.CFUNCTYPE(
    ctypes.c_ssize_t, ctypes.c_void_p, POINTER(ctypes.c_ubyte), ctypes.c_size_t
)
_Finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FINALIZER = _Finalizer()  # a NULL function pointer
# sink(address, length, read): the capture copies out only what it keeps.
_sinks: dict[int, Callable[[int, int, Callable[[int, int], bytes]], None]] = {}
_sink_ids = itertools.count(1)


@_OutputCallback  # type: ignore[untyped-decorator]
def _output_callback(key: int | None, data: Any, size: int) -> int:
    try:
        if size:
            _sinks[key or 0](addressof(data.contents), size, string_at)
        return size
    except Exception:  # noqa: BLE001 - report EIO to the guest rather than unwind
        return -5


@_Finalizer  # type: ignore[untyped-decorator]
def _output_finalizer(key: int | None) -> None:
    _sinks.pop(key or 0, None)


def _configure_wasi(
    store: wasmtime.Store,
    *,
    argv: list[str],
    environment: list[tuple[str, str]],
    stdin: bytes,
    capture: OutputCapture,
) -> None:
    config = wasmtime.WasiConfig()
    config.argv = argv
    config.env = environment
    # No preopened directories, no inherited streams: the guest sees only these three.
    vector = ffi.wasm_byte_vec_t()
    buffer = (ffi.wasm_byte_t * max(1, len(stdin))).from_buffer_copy(stdin or b"\0")
    ffi.wasm_byte_vec_new(byref(vector), len(stdin), buffer)
    ffi.wasi_config_set_stdin_bytes(config.ptr(), byref(vector))  # takes the vector
    for setter, sink in (
        (ffi.wasi_config_set_stdout_custom, capture.write_stdout),
        (ffi.wasi_config_set_stderr_custom, capture.write_stderr),
    ):
        key = next(_sink_ids)
        _sinks[key] = sink
        setter(config.ptr(), _output_callback, key, _output_finalizer)
    store.set_wasi(config)


# -- the linked module ------------------------------------------------------------------


def _kinds(types: list[wasmtime.ValType]) -> tuple[abi.ValueKind, ...]:
    kinds: list[abi.ValueKind] = []
    for value_type in types:
        name = str(value_type)
        kinds.append(name if name in ("i32", "i64", "f32", "f64") else "other")  # type: ignore[arg-type]
    return tuple(kinds)


class LinkedModule:
    """A compiled module checked against its ABI and pre-linked with the host's imports."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        abi_name: Abi,
        *,
        memory_limit_bytes: int,
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
                f"function's memory limit ({memory_limit_bytes // (1024 * 1024)} MB)"
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
        linker = wasmtime.Linker(engine)
        log_type = wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], [])
        module_name, log_name = abi.LOG_MODULE.encode(), abi.LOG_NAME.encode()
        error = ffi.wasmtime_linker_define_func_unchecked(
            linker.ptr(),
            module_name,
            len(module_name),
            log_name,
            len(log_name),
            log_type.ptr(),
            _log_callback,
            None,
            _NO_FINALIZER,
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if abi_name == "wasi":
            linker.define_wasi()
        self._linker = linker
        self.pre = linker.instantiate_pre(module)
        self._pre_ptr = self.pre.ptr()
        self.names = {
            export: export.encode()
            for export in (*self.entries, abi.ALLOC_EXPORT, abi.RESET_EXPORT, abi.WASI_START)
        }

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
        wasi: dict[str, Any] | None = None,
    ) -> LiveInstance:
        """A new instance in a new store with its limits set. Raises GuestTrap/GuestExit/
        GuestAbiViolation when the module's start function fails."""
        store = wasmtime.Store(self.engine)
        context = store._context()
        store.set_limits(memory_size=memory_limit_bytes)
        _set_epoch_deadline(context, deadline_ticks)
        if fuel is not None:
            _check(_set_fuel(context, fuel), None)
        if wasi is not None:
            _configure_wasi(store, **wasi)
        instance = ffi.wasmtime_instance_t()
        trap = _TrapPointer()
        _check(_instantiate_pre(self._pre_ptr, context, byref(instance), byref(trap)), trap)
        return LiveInstance(self, store, context, instance)


def _check(error: Any, trap: Any) -> None:
    """Raise the guest failure an unchecked call or instantiation reported, if any."""
    if error:
        failure = wasmtime.WasmtimeError._from_ptr(error)
        if isinstance(failure, wasmtime.ExitTrap):
            raise GuestExit(failure.code)
        raise GuestAbiViolation(str(failure))
    if trap:
        wrapped = wasmtime.Trap._from_ptr(trap)
        code = wrapped.trap_code
        message, frames = split_trap_message(wrapped.message)
        raise GuestTrap(None if code is None else code.name, message, frames)


def split_trap_message(text: str) -> tuple[str, list[str]]:
    """wasmtime's trap text -> (the cause, the backtrace lines).

    The text reads `error while executing at wasm backtrace:` / `  0: 0xb1 - <unknown>!f` /
    `` / `Caused by:` / `  wasm trap: wasm `unreachable` instruction executed`.
    """
    head, marker, cause = text.partition("Caused by:")
    lines = [line.strip() for line in head.splitlines()]
    frames = [line for line in lines if line and not line.endswith("wasm backtrace:")]
    if not marker:
        return (lines[0] if lines else text.strip()), frames[1:]
    return " ".join(line.strip() for line in cause.splitlines() if line.strip()), frames


class LiveInstance:
    """One instance in its own store. Use from one thread at a time."""

    def __init__(
        self, linked: LinkedModule, store: wasmtime.Store, context: Any, instance: Any
    ) -> None:
        self.linked = linked
        self.store = store
        self.context = context
        self._instance = instance
        self._args = (ffi.wasmtime_val_raw_t * 2)()
        self._trap = _TrapPointer()
        memory = self._export(abi.MEMORY_EXPORT)
        assert memory is not None  # checked at link time
        self._memory = memory.of.memory
        self._funcs: dict[str, Any] = {}

    def _export(self, name: str) -> Any:
        item = ffi.wasmtime_extern_t()
        raw = self.linked.names.get(name) or name.encode()
        if not _export_get(self.context, byref(self._instance), raw, len(raw), byref(item)):
            return None
        return item

    def _func(self, name: str) -> Any:
        func = self._funcs.get(name)
        if func is None:
            item = self._export(name)
            if item is None:
                raise GuestAbiViolation(f"the instance has no export {name!r}")
            func = self._funcs[name] = item.of.func
        return func

    def _call(self, name: str, count: int) -> None:
        trap = self._trap
        func = byref(self._func(name))
        error = _call_unchecked(self.context, func, self._args, count, byref(trap))
        if error or trap:
            self._trap = _TrapPointer()
            _check(error, trap)

    def set_limits(self, *, deadline_ticks: int, fuel: int | None) -> None:
        """Arm a (reused) instance for its next invocation."""
        _set_epoch_deadline(self.context, deadline_ticks)
        if fuel is not None:
            _check(_set_fuel(self.context, fuel), None)

    def memory_bytes(self) -> int:
        """The current size of the guest's memory (it never shrinks: also its peak)."""
        return int(_memory_size(self.context, byref(self._memory)))

    def alloc(self, size: int) -> int:
        """Call `edge_alloc(size)`; the pointer it returned (0: it could not)."""
        self._args[0].i32 = size
        self._call(abi.ALLOC_EXPORT, 1)
        return int(self._args[0].i32) & 0xFFFF_FFFF

    def reset(self) -> None:
        """Call `edge_reset()` if the guest has one."""
        if self.linked.has_reset:
            self._call(abi.RESET_EXPORT, 0)

    def write(self, ptr: int, data: bytes) -> None:
        """Copy `data` into guest memory at `ptr` (bounds-checked)."""
        memory = byref(self._memory)
        if ptr + len(data) > _memory_size(self.context, memory):
            raise GuestAbiViolation(
                f"edge_alloc returned {ptr:#x}, which has no room for {len(data)} bytes"
            )
        memmove(addressof(_memory_data(self.context, memory).contents) + ptr, data, len(data))

    def read(self, ptr: int, length: int) -> bytes:
        """Copy `length` bytes out of guest memory at `ptr` (bounds-checked)."""
        memory = byref(self._memory)
        problem = abi.result_location_error(ptr, length, _memory_size(self.context, memory))
        if problem is not None:
            raise GuestAbiViolation(problem)
        return string_at(addressof(_memory_data(self.context, memory).contents) + ptr, length)

    def call_entry(self, entry: str, ptr: int, length: int) -> int:
        """Call an entry point; its packed i64 result."""
        args = self._args
        args[0].i32 = ptr
        args[1].i32 = length
        self._call(entry, 2)
        return int(args[0].i64)

    def run_start(self) -> None:
        """Run a WASI command's `_start` (returns normally for exit status 0)."""
        try:
            self._call(abi.WASI_START, 0)
        except GuestExit as exit_:
            if exit_.code != 0:
                raise
