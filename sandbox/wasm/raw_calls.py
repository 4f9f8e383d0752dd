"""The fast way to call wasmtime: ctypes over its private bindings, with unchecked calls.

wasmtime-py's public `Func.__call__` converts every value through `Val` (~38 µs a call here);
the C API's `wasmtime_func_call_unchecked` with a reused raw argument buffer costs ~2 µs
(PERFORMANCE.md), memory is copied with `memmove`/`string_at`, and `edge.log` is a raw ctypes
callback. The signatures were checked at link time, which is what makes unchecked calls safe.

A core module's stores are "sliced": at its epoch deadline the guest does not trap but is
suspended (`epoch_deadline_async_yield_and_update`), because every call into it is an async call
(`wasmtime_func_call_async`, the guest on its own fiber stack) that `wasmtime_call_future_poll`
runs until it finishes or yields. A suspended call is resumed by the next poll, from whichever
thread polls: that is how an invocation that outlives its slice on the event loop moves to a
thread; deleting the future drops the call (a timeout). An async call costs ~2.5 µs more than an
unchecked one. WASI commands keep plain calls and a trapping deadline (they run on a thread).

These are private names of `wasmtime._bindings` (a leading underscore: no stability promise).
So the version pin in pyproject.toml names the releases this was tested with
(`TESTED_VERSIONS`), and `self_test()` runs every binding used here on a tiny module before an
engine relies on them; when one is missing or answers wrong, the engine takes `public_calls`.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import itertools
import threading
import weakref
from collections.abc import Callable
from ctypes import POINTER, addressof, byref, string_at
from typing import Any, TypeVar

import wasmtime

from sandbox.wasm import abi
from sandbox.wasm.capture import OutputCapture
from sandbox.wasm.guest import (
    GuestAbiViolation,
    GuestExit,
    GuestTrap,
    Linked,
    LiveInstance,
    Slices,
    StoreLimits,
    WasiSetup,
    current_capture,
    exhaustion,
    log_outside_memory,
    set_capture,
    split_trap_message,
)

# The wasmtime releases whose private bindings this module was tested with (pyproject.toml
# pins the same); any other release takes the public API.
TESTED_VERSIONS = ("50.",)

_MEMORY_NAME = abi.MEMORY_EXPORT.encode()
_POINTER, _PACKED = 0, 1  # how the last sliced call's result reads: an i32 pointer, an i64
_T = TypeVar("_T")


class _Bindings:
    """The private functions and types used here, looked up once (AttributeError if one is
    missing), and the callbacks made from them."""

    def __init__(self) -> None:
        from wasmtime import _bindings as ffi

        self.ffi = ffi
        self.call_unchecked = ffi._wasmtime_func_call_unchecked
        self.export_get = ffi._wasmtime_instance_export_get
        self.memory_data = ffi._wasmtime_memory_data
        self.memory_size = ffi._wasmtime_memory_data_size
        self.set_epoch_deadline = ffi._wasmtime_context_set_epoch_deadline
        self.set_fuel = ffi._wasmtime_context_set_fuel
        self.instantiate_pre = ffi._wasmtime_instance_pre_instantiate
        self.caller_context = ffi._wasmtime_caller_context
        self.caller_export_get = ffi._wasmtime_caller_export_get
        self.trap_new = ffi._wasmtime_trap_new
        self.define_func_unchecked = ffi.wasmtime_linker_define_func_unchecked
        self.trap_pointer = POINTER(ffi.wasm_trap_t)
        self.error_pointer = POINTER(ffi.wasmtime_error_t)
        self.val_raw = ffi.wasmtime_val_raw_t
        self.val = ffi.wasmtime_val_t
        # Sliced (async) calls. wasmtime 50's `..._yield_and_update` returns nothing, whatever
        # the generated binding says: a private prototype with no result.
        self.call_async = ffi._wasmtime_func_call_async
        self.instantiate_pre_async = ffi._wasmtime_instance_pre_instantiate_async
        self.future_poll = ffi._wasmtime_call_future_poll
        self.future_delete = ffi._wasmtime_call_future_delete
        yield_and_update = ffi.dll["wasmtime_context_epoch_deadline_async_yield_and_update"]  # type: ignore[attr-defined]
        yield_and_update.restype = None
        yield_and_update.argtypes = [POINTER(ffi.wasmtime_context_t), ctypes.c_uint64]
        self.yield_at_deadline = yield_and_update
        self.extern = ffi.wasmtime_extern_t
        self.instance = ffi.wasmtime_instance_t
        self.log_callback = ffi.wasmtime_func_unchecked_callback_t(self._log)
        # WASI: the event as stdin bytes, stdout and stderr into the capture.
        self.byte_vec = ffi.wasm_byte_vec_t
        self.byte = ffi.wasm_byte_t
        self.byte_vec_new = ffi.wasm_byte_vec_new
        self.set_stdin_bytes = ffi.wasi_config_set_stdin_bytes
        self.set_stdout_custom = ffi.wasi_config_set_stdout_custom
        self.set_stderr_custom = ffi.wasi_config_set_stderr_custom
        self.error_from = wasmtime.WasmtimeError._from_ptr
        self.trap_from = wasmtime.Trap._from_ptr

    def new_trap(self, message: str) -> int:
        raw = message.encode()
        trap = self.trap_new(raw, len(raw))
        return ctypes.cast(trap, ctypes.c_void_p).value or 0

    def _log(self, _env: Any, caller: Any, args: Any, _nargs: int) -> int:
        try:
            ptr = args[0].i32 & 0xFFFF_FFFF
            length = args[1].i32 & 0xFFFF_FFFF
            item = self.extern()
            if not self.caller_export_get(caller, _MEMORY_NAME, len(_MEMORY_NAME), byref(item)):
                return self.new_trap("edge.log: the guest exports no memory")
            context = self.caller_context(caller)
            memory = item.of.memory
            if ptr + length > self.memory_size(context, byref(memory)):
                return self.new_trap(log_outside_memory(ptr, length))
            capture = current_capture()
            if capture is not None:
                base = addressof(self.memory_data(context, byref(memory)).contents)
                # The capture reads only what it can keep (never a whole 100 MB message).
                capture.log_message(base + ptr, length, string_at)
            return 0
        except Exception:  # noqa: BLE001 - an exception must not unwind through wasm frames
            return self.new_trap("edge.log: host error")

    def check(self, error: Any, trap: Any) -> None:
        """Raise the guest failure an unchecked call or instantiation reported, if any."""
        if error:
            failure = self.error_from(error)
            if isinstance(failure, wasmtime.ExitTrap):
                raise GuestExit(failure.code)
            text = str(failure)
            exhausted = exhaustion(text)
            if exhausted is not None:
                raise exhausted
            # A trap made by a host function (edge.log) comes back as an error: its cause is
            # the host's message, after wasmtime's backtrace.
            raise GuestAbiViolation(split_trap_message(text)[0])
        if trap:
            wrapped = self.trap_from(trap)
            code = wrapped.trap_code
            message, frames = split_trap_message(wrapped.message)
            raise GuestTrap(None if code is None else code.name, message, frames)


_bound: list[_Bindings] = []


def _bindings() -> _Bindings:
    if not _bound:
        _bound.append(_Bindings())
    return _bound[0]


# -- WASI stdout / stderr -------------------------------------------------------------------

_OutputCallback = ctypes.CFUNCTYPE(
    ctypes.c_ssize_t, ctypes.c_void_p, POINTER(ctypes.c_ubyte), ctypes.c_size_t
)
_Finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FINALIZER = _Finalizer()  # a NULL function pointer
# sink(address, length, read): the capture copies out only what it keeps. Entries are removed
# when their instance is collected, not by a wasmtime finalizer: wasmtime may drop a WASI
# stream on one of its own threads after the store, even while the interpreter exits, and a
# Python callback then aborts the process.
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


def _drop_sinks(keys: list[int]) -> None:
    for key in keys:
        _sinks.pop(key, None)


def _configure_wasi(bound: _Bindings, store: wasmtime.Store, wasi: WasiSetup) -> list[int]:
    """Give `store` the WASI context of `wasi`; the keys of its two output sinks."""
    config = wasmtime.WasiConfig()
    config.argv = wasi.argv
    config.env = wasi.environment
    # No preopened directories, no inherited streams: the guest sees only these three.
    stdin = wasi.stdin
    vector = bound.byte_vec()
    buffer = (bound.byte * max(1, len(stdin))).from_buffer_copy(stdin or b"\0")
    bound.byte_vec_new(byref(vector), len(stdin), buffer)
    bound.set_stdin_bytes(config.ptr(), byref(vector))  # takes the vector
    capture = wasi.capture
    keys: list[int] = []
    for setter, sink in (
        (bound.set_stdout_custom, capture.write_stdout),
        (bound.set_stderr_custom, capture.write_stderr),
    ):
        key = next(_sink_ids)
        _sinks[key] = sink
        keys.append(key)
        setter(config.ptr(), _output_callback, key, _NO_FINALIZER)
    store.set_wasi(config)
    return keys


# -- the linked module and its instances ----------------------------------------------------


class RawLinked(Linked):
    """A module pre-linked with `edge.log` as a raw callback (and WASI when asked)."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        *,
        wasi: bool,
        has_reset: bool,
        names: set[str],
    ) -> None:
        bound = _bindings()
        self._bound = bound
        self.engine = engine
        self.has_reset = has_reset
        linker = wasmtime.Linker(engine)
        log_type = wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], [])
        module_name, log_name = abi.LOG_MODULE.encode(), abi.LOG_NAME.encode()
        error = bound.define_func_unchecked(
            linker.ptr(),
            module_name,
            len(module_name),
            log_name,
            len(log_name),
            log_type.ptr(),
            bound.log_callback,
            None,
            _NO_FINALIZER,
        )
        if error:
            raise bound.error_from(error)
        if wasi:
            linker.define_wasi()
        self._linker = linker
        self.pre = linker.instantiate_pre(module)
        self._pre_ptr = self.pre.ptr()
        self.names = {name: name.encode() for name in names}
        self.sliced = not wasi

    def _store(self, limits: StoreLimits) -> tuple[wasmtime.Store, Any]:
        bound = self._bound
        store = wasmtime.Store(self.engine)
        context = store._context()
        store.set_limits(memory_size=limits.memory_limit_bytes)
        bound.set_epoch_deadline(context, limits.deadline_ticks)
        if self.sliced:
            # Past a deadline: suspend, and give the guest one more tick when resumed.
            bound.yield_at_deadline(context, 1)
        if limits.fuel is not None:
            bound.check(bound.set_fuel(context, limits.fuel), None)
        return store, context

    def instantiate_sliced(self, limits: StoreLimits) -> Slices[LiveInstance]:
        if not self.sliced:
            return self.instantiate(limits)
        bound = self._bound
        store, context = self._store(limits)
        instance = bound.instance()
        trap = bound.trap_pointer()
        error = bound.error_pointer()
        future = bound.instantiate_pre_async(
            self._pre_ptr, context, byref(instance), byref(trap), byref(error)
        )
        try:
            while not bound.future_poll(future):
                yield
        finally:
            bound.future_delete(future)
        bound.check(error, trap)
        return RawInstance(self, store, context, instance)

    def instantiate(self, limits: StoreLimits, wasi: WasiSetup | None = None) -> RawInstance:
        bound = self._bound
        if self.sliced:
            return drive(self.instantiate_sliced(limits))  # type: ignore[return-value]
        store, context = self._store(limits)
        keys = _configure_wasi(bound, store, wasi) if wasi is not None else []
        instance = bound.instance()
        trap = bound.trap_pointer()
        try:
            bound.check(
                bound.instantiate_pre(self._pre_ptr, context, byref(instance), byref(trap)), trap
            )
        except BaseException:
            _drop_sinks(keys)
            raise
        live = RawInstance(self, store, context, instance)
        if keys:
            weakref.finalize(live, _drop_sinks, keys)
        return live


class RawInstance(LiveInstance):
    """One instance in its own store, called through the unchecked C API."""

    def __init__(
        self, linked: RawLinked, store: wasmtime.Store, context: Any, instance: Any
    ) -> None:
        super().__init__(has_reset=linked.has_reset)
        self._bound = linked._bound
        self.linked = linked
        self.store = store
        self.context = context
        self._instance = instance
        self._args = (self._bound.val_raw * 2)()
        self._trap = self._bound.trap_pointer()
        # The sliced calls' arguments (two i32: kind 0) and result, trap and error slots.
        self._values = (self._bound.val * 2)()
        self._result = (self._bound.val * 1)()
        self._async_trap = self._bound.trap_pointer()
        self._async_error = self._bound.error_pointer()
        self._kind = _PACKED
        self._answer = 0
        memory = self._export(abi.MEMORY_EXPORT)
        assert memory is not None  # checked at link time
        self._memory = memory.of.memory
        self._funcs: dict[str, Any] = {}

    def _export(self, name: str) -> Any:
        item = self._bound.extern()
        raw = self.linked.names.get(name) or name.encode()
        if not self._bound.export_get(
            self.context, byref(self._instance), raw, len(raw), byref(item)
        ):
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
        error = self._bound.call_unchecked(self.context, func, self._args, count, byref(trap))
        if error or trap:
            self._trap = self._bound.trap_pointer()
            self._bound.check(error, trap)

    def _call_sliced(self, name: str, count: int, results: int) -> Slices[None]:
        bound = self._bound
        trap, error = self._async_trap, self._async_error
        future = bound.call_async(
            self.context,
            byref(self._func(name)),
            self._values,
            count,
            self._result,
            results,
            byref(trap),
            byref(error),
        )
        try:
            while not bound.future_poll(future):
                yield
        finally:
            bound.future_delete(future)
        if error or trap:
            self._async_trap = bound.trap_pointer()
            self._async_error = bound.error_pointer()
            bound.check(error, trap)

    def _start(self, name: str, count: int, results: int) -> object | None:
        bound = self._bound
        trap, error = self._async_trap, self._async_error
        future = bound.call_async(
            self.context,
            byref(self._func(name)),
            self._values,
            count,
            self._result,
            results,
            byref(trap),
            byref(error),
        )
        if not bound.future_poll(future):
            suspended: object = future
            return suspended
        bound.future_delete(future)
        if error or trap:
            self._async_trap = bound.trap_pointer()
            self._async_error = bound.error_pointer()
            bound.check(error, trap)
        return None

    def _resume(self, future: Any) -> Slices[None]:
        bound = self._bound
        trap, error = self._async_trap, self._async_error
        try:
            while not bound.future_poll(future):
                yield
        finally:
            bound.future_delete(future)
        if error or trap:
            self._async_trap = bound.trap_pointer()
            self._async_error = bound.error_pointer()
            bound.check(error, trap)

    def start_alloc(self, size: int) -> object | None:
        if not self.linked.sliced:
            return super().start_alloc(size)
        self._values[0].of.i32 = size
        self._kind = _POINTER
        return self._start(abi.ALLOC_EXPORT, 1, 1)

    def start_entry(self, entry: str, ptr: int, length: int) -> object | None:
        if not self.linked.sliced:
            return super().start_entry(entry, ptr, length)
        values = self._values
        values[0].of.i32 = ptr
        values[1].of.i32 = length
        self._kind = _PACKED
        return self._start(entry, 2, 1)

    def start_void(self, name: str) -> object | None:
        if not self.linked.sliced:
            return super().start_void(name)
        return self._start(name, 0, 0)

    def resume(self, suspended: object) -> Slices[None]:
        return self._resume(suspended)

    @property
    def answer(self) -> int:
        if not self.linked.sliced:
            return self._answer
        if self._kind == _POINTER:
            return int(self._result[0].of.i32) & 0xFFFF_FFFF
        return int(self._result[0].of.i64)

    @answer.setter
    def answer(self, value: int) -> None:
        self._answer = value

    def alloc_sliced(self, size: int) -> Slices[int]:
        if not self.linked.sliced:
            return self.alloc(size)
        self._values[0].of.i32 = size
        yield from self._call_sliced(abi.ALLOC_EXPORT, 1, 1)
        return int(self._result[0].of.i32) & 0xFFFF_FFFF

    def call_entry_sliced(self, entry: str, ptr: int, length: int) -> Slices[int]:
        if not self.linked.sliced:
            return self.call_entry(entry, ptr, length)
        values = self._values
        values[0].of.i32 = ptr
        values[1].of.i32 = length
        yield from self._call_sliced(entry, 2, 1)
        return int(self._result[0].of.i64)

    def call_void_sliced(self, name: str) -> Slices[None]:
        if not self.linked.sliced:
            return self.call_void(name)
        yield from self._call_sliced(name, 0, 0)

    def set_limits(self, *, deadline_ticks: int, fuel: int | None) -> None:
        bound = self._bound
        bound.set_epoch_deadline(self.context, deadline_ticks)
        if fuel is not None:
            bound.check(bound.set_fuel(self.context, fuel), None)

    def memory_bytes(self) -> int:
        return int(self._bound.memory_size(self.context, byref(self._memory)))

    def memory_address(self) -> int:
        return addressof(self._bound.memory_data(self.context, byref(self._memory)).contents)

    def alloc(self, size: int) -> int:
        if self.linked.sliced:
            return drive(self.alloc_sliced(size))
        self._args[0].i32 = size
        self._call(abi.ALLOC_EXPORT, 1)
        return int(self._args[0].i32) & 0xFFFF_FFFF

    def call_entry(self, entry: str, ptr: int, length: int) -> int:
        if self.linked.sliced:
            return drive(self.call_entry_sliced(entry, ptr, length))
        args = self._args
        args[0].i32 = ptr
        args[1].i32 = length
        self._call(entry, 2)
        return int(args[0].i64)

    def call_void(self, name: str) -> None:
        if self.linked.sliced:
            return drive(self.call_void_sliced(name))
        self._call(name, 0)
        return None


def drive(call: Slices[_T]) -> _T:
    """Run a sliced call to its end on this thread (a plain call of a sliced store: it goes on
    past every deadline, so only for calls that cannot spin, such as the self-test's)."""
    while True:
        try:
            next(call)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


# -- the self-test --------------------------------------------------------------------------

_PROBE = """
(module
  (import "edge" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "edge_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "edge_reset"))
  (func (export "handler") (param $p i32) (param $n i32) (result i64)
    (call $log (local.get $p) (local.get $n))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  (func (export "viewer_request") (param i32 i32) (result i64) unreachable)
  (func (export "origin_request") (param i32 i32) (result i64)
    (call $log (i32.const 65530) (i32.const 100))
    (i64.const 0))
  (func (export "origin_response") (param $p i32) (param $n i32) (result i64)
    (loop $spin
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $spin (local.get $n)))
    (i64.const 42)))
"""

_PROBE_WASI = """
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; iovec at 0: (buffer 64, length 16); read stdin, then write what came to stdout and stderr
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def _probe_core(engine: wasmtime.Engine) -> None:
    module = wasmtime.Module(engine, _PROBE)
    names = {
        "handler",
        "viewer_request",
        "origin_request",
        "origin_response",
        abi.ALLOC_EXPORT,
        abi.RESET_EXPORT,
    }
    linked = RawLinked(engine, module, wasi=False, has_reset=True, names=names)
    instance = linked.instantiate(StoreLimits(1 << 20, 1000, 1_000_000))
    capture = OutputCapture(
        max_log_bytes=1024, max_stdout_bytes=1024, format_log_line=lambda m: m + "\n"
    )
    set_capture(capture)
    try:
        ptr = instance.alloc(5)
        _expect(ptr == 1024, f"edge_alloc answered {ptr}")
        instance.write(ptr, b"probe")
        packed = instance.call_entry("handler", ptr, 5)
        _expect(abi.unpack_result(packed) == (1024, 5), f"an entry point answered {packed}")
        _expect(instance.read(1024, 5) == b"probe", "memory read back other bytes")
        _expect(capture.text() == "probe\n", "edge.log delivered other text")
        _expect(instance.memory_bytes() == abi.WASM_PAGE_BYTES, "memory has the wrong size")
        instance.reset()
        instance.set_limits(deadline_ticks=1000, fuel=1_000_000)
        try:
            instance.call_entry("viewer_request", 0, 0)
        except GuestTrap as trap:
            _expect(trap.code == "UNREACHABLE", f"a trap came with code {trap.code}")
        else:
            raise AssertionError("`unreachable` did not trap")
        try:
            instance.call_entry("origin_request", 0, 0)
        except GuestAbiViolation as violation:
            _expect(str(violation) == log_outside_memory(65530, 100), f"{violation}")
        else:
            raise AssertionError("edge.log outside memory did not trap")
        _probe_suspend(engine, instance)
    finally:
        set_capture(None)


def _probe_suspend(engine: wasmtime.Engine, instance: RawInstance) -> None:
    """A call past its deadline is suspended, resumed on another thread, and finishes there;
    a suspended call that is dropped leaves the store usable."""
    instance.set_limits(deadline_ticks=1, fuel=1_000_000)
    engine.increment_epoch()
    engine.increment_epoch()
    call = instance.call_entry_sliced("origin_response", 0, 1000)
    try:
        next(call)
    except StopIteration:
        raise AssertionError("a call past its deadline was not suspended") from None
    answers: list[int] = []

    def resume() -> None:
        answers.append(drive(call))

    thread = threading.Thread(target=resume)
    thread.start()
    thread.join()
    _expect(answers == [42], f"a resumed call answered {answers}")
    instance.set_limits(deadline_ticks=1, fuel=1_000_000)
    engine.increment_epoch()
    engine.increment_epoch()
    dropped = instance.call_entry_sliced("origin_response", 0, 1000)
    next(dropped)
    dropped.close()
    instance.set_limits(deadline_ticks=1000, fuel=1_000_000)
    _expect(instance.call_entry("origin_response", 0, 10) == 42, "a dropped call broke the store")


def _probe_wasi(engine: wasmtime.Engine) -> None:
    module = wasmtime.Module(engine, _PROBE_WASI)
    linked = RawLinked(engine, module, wasi=True, has_reset=False, names={abi.WASI_START})
    capture = OutputCapture(
        max_log_bytes=1024, max_stdout_bytes=1024, format_log_line=lambda m: m + "\n"
    )
    instance = linked.instantiate(
        StoreLimits(1 << 20, 1000, 1_000_000),
        WasiSetup(argv=["probe"], environment=[], stdin=b"stdin", capture=capture),
    )
    instance.run_start()
    _expect(bytes(capture.stdout) == b"stdin", "WASI stdout came back other")
    _expect(capture.text() == "stdin\n", "WASI stderr came back other")


@functools.cache
def self_test() -> str | None:
    """None when the raw path works with the installed wasmtime, else why it must not be used.

    Runs once per process: a core module through every call used here (instantiate, alloc,
    copy in and out, an entry point, `edge.log`, reset, limits, two traps, a call suspended at
    its deadline and resumed on another thread, one dropped) and a WASI command
    (stdin bytes, custom stdout and stderr).
    """
    version = importlib.metadata.version("wasmtime")
    if not version.startswith(TESTED_VERSIONS):
        return f"wasmtime {version} is not a release the raw calls were tested with"
    try:
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.consume_fuel = True
        engine = wasmtime.Engine(config)
        _probe_core(engine)
        _probe_wasi(engine)
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use this path
        return f"the raw-call self-test failed: {type(exc).__name__}: {exc}"
    return None
