"""What a guest instance is to an invocation, whichever way wasmtime is called.

`LiveInstance` is one instance in its own store with the few operations an invocation needs
(call `edge_alloc`, copy the event in, call an entry point, copy the result out, run a WASI
command); `Linked` makes them from a pre-linked module. Two implementations exist:
`raw_calls` (ctypes over wasmtime's private bindings, the fast path) and `public_calls`
(wasmtime-py's public API, the fallback). Guest failures surface as `GuestTrap`, `GuestExit` or
`GuestAbiViolation` from either. A guest's `edge.log` lines go to the capture its thread set.

Every guest call also exists "sliced", as a generator (`Slices`): it yields each time the guest
has run past its epoch deadline and is suspended there (wasmtime's async call on its own fiber
stack), and returns the call's answer. Whoever drives it decides at each yield whether the guest
goes on (here, or on another thread: a suspended call may be resumed from any thread, never
from two at once) or is killed (`throw` an `INTERRUPT` `GuestTrap` in; the call is dropped).
Only `raw_calls` suspends (`Linked.sliced`); elsewhere a sliced call runs to its end at once and
a deadline traps, as a plain call does.

A store is used by one thread at a time; nothing here touches asyncio.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Generator
from ctypes import memmove, string_at
from dataclasses import dataclass
from typing import TypeVar

from sandbox.wasm import abi
from sandbox.wasm.capture import OutputCapture

_T = TypeVar("_T")
# A sliced guest call: yields while the guest is suspended at a deadline, returns its answer.
Slices = Generator[None, None, _T]

INTERRUPT = "INTERRUPT"  # the trap code of a guest stopped at its deadline


class GuestTrap(Exception):
    """The guest trapped; `code` is wasmtime's trap code name (`UNREACHABLE`, `INTERRUPT`,
    `OUT_OF_FUEL`...) or None, `frames` the wasm backtrace lines."""

    def __init__(self, code: str | None, message: str, frames: list[str]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frames = frames


class InstancesExhausted(Exception):
    """No new instance now: every slot of the engine's pooling allocator is taken."""


def exhaustion(message: str) -> InstancesExhausted | None:
    """The pooling allocator's refusal in wasmtime's error text, if that is what it is."""
    if "maximum concurrent limit of" in message:
        return InstancesExhausted(message)
    return None


class GuestExit(Exception):
    """A WASI guest called `proc_exit(code)`."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit status {code}")
        self.code = code


class GuestAbiViolation(Exception):
    """The guest broke the ABI at run time (e.g. a result outside its memory)."""


class ModuleAbiError(ValueError):
    """The module cannot run under its ABI (a missing export, a wrong signature...)."""


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


# -- where edge.log lines go ----------------------------------------------------------------

_current = threading.local()


def set_capture(capture: OutputCapture | None) -> None:
    """Route this thread's `edge.log` calls to `capture` (the thread's current invocation)."""
    _current.capture = capture


def current_capture() -> OutputCapture | None:
    """The capture of this thread's current invocation, if any."""
    capture: OutputCapture | None = getattr(_current, "capture", None)
    return capture


def log_outside_memory(ptr: int, length: int) -> str:
    """The trap message of an `edge.log` call whose message is not in the guest's memory."""
    return f"edge.log: message at {ptr:#x} ({length} bytes) is outside memory"


# -- one instance ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """What a new store is armed with: its memory cap, the epoch deadline, the fuel (None:
    the engine does not meter fuel)."""

    memory_limit_bytes: int
    deadline_ticks: int
    fuel: int | None


@dataclass(frozen=True, slots=True)
class WasiSetup:
    """What a WASI command gets: `argv`, its environment, the event as stdin, and where its
    stdout (the result) and stderr (log lines) go."""

    argv: list[str]
    environment: list[tuple[str, str]]
    stdin: bytes
    capture: OutputCapture


class LiveInstance(abc.ABC):
    """One instance in its own store. Use from one thread at a time."""

    def __init__(self, *, has_reset: bool) -> None:
        self._has_reset = has_reset

    @abc.abstractmethod
    def set_limits(self, *, deadline_ticks: int, fuel: int | None) -> None:
        """Arm a (reused) instance for its next invocation."""

    @abc.abstractmethod
    def memory_bytes(self) -> int:
        """The current size of the guest's memory (it never shrinks: also its peak)."""

    @abc.abstractmethod
    def memory_address(self) -> int:
        """Where the guest's memory starts in this process, now (it moves when it grows)."""

    def write(self, ptr: int, data: bytes) -> None:
        """Copy `data` into guest memory at `ptr` (bounds-checked: GuestAbiViolation)."""
        if ptr + len(data) > self.memory_bytes():
            raise GuestAbiViolation(
                f"edge_alloc returned {ptr:#x}, which has no room for {len(data)} bytes"
            )
        memmove(self.memory_address() + ptr, data, len(data))

    def read(self, ptr: int, length: int) -> bytes:
        """Copy `length` bytes out of guest memory at `ptr` (bounds-checked)."""
        problem = abi.result_location_error(ptr, length, self.memory_bytes())
        if problem is not None:
            raise GuestAbiViolation(problem)
        return string_at(self.memory_address() + ptr, length)

    @abc.abstractmethod
    def alloc(self, size: int) -> int:
        """Call `edge_alloc(size)`; the pointer it returned (0: it could not)."""

    @abc.abstractmethod
    def call_entry(self, entry: str, ptr: int, length: int) -> int:
        """Call an entry point `(ptr, len) -> i64`; its packed result."""

    @abc.abstractmethod
    def call_void(self, name: str) -> None:
        """Call an export of type `() -> ()` (`edge_reset`, `_initialize`, `_start`)."""

    def reset(self) -> None:
        """Call `edge_reset()` if the guest has one."""
        if self._has_reset:
            self.call_void(abi.RESET_EXPORT)

    def run_start(self) -> None:
        """Run a WASI command's `_start` (returns normally for exit status 0)."""
        try:
            self.call_void(abi.WASI_START)
        except GuestExit as exit_:
            if exit_.code != 0:
                raise

    # Sliced calls (see the module docstring). These run the plain call; `raw_calls` suspends.

    def alloc_sliced(self, size: int) -> Slices[int]:
        """`alloc`, sliced."""
        return self.alloc(size)
        yield  # a generator that never suspends

    def call_entry_sliced(self, entry: str, ptr: int, length: int) -> Slices[int]:
        """`call_entry`, sliced."""
        return self.call_entry(entry, ptr, length)
        yield

    def call_void_sliced(self, name: str) -> Slices[None]:
        """`call_void`, sliced."""
        self.call_void(name)
        return
        yield

    def reset_sliced(self) -> Slices[None]:
        """`reset`, sliced."""
        if self._has_reset:
            yield from self.call_void_sliced(abi.RESET_EXPORT)

    # The same without a generator while nothing is suspended (the hot path): `start_*` runs
    # the call until it ends (None; `answer` then has its result) or is suspended (the call,
    # to `resume` until it ends). Only `raw_calls` suspends.

    answer = 0

    def start_alloc(self, size: int) -> object | None:
        """`alloc(size)`, started; `answer` is the pointer (unsigned)."""
        self.answer = self.alloc(size)
        return None

    def start_entry(self, entry: str, ptr: int, length: int) -> object | None:
        """`call_entry(...)`, started; `answer` is the packed result."""
        self.answer = self.call_entry(entry, ptr, length)
        return None

    def start_void(self, name: str) -> object | None:
        """`call_void(name)`, started."""
        self.call_void(name)
        return None

    def resume(self, suspended: object) -> Slices[None]:
        """Run a suspended call until it ends (yielding at each deadline); sets `answer`."""
        raise AssertionError("only raw calls are suspended")
        yield


class Linked(abc.ABC):
    """A module pre-linked with the host's imports (`edge.log`, WASI when asked).
    `has_reset`: its instances call `edge_reset` in `reset()`."""

    has_reset: bool
    # Whether its core instances suspend at their deadline (else the deadline traps).
    sliced: bool = False

    @abc.abstractmethod
    def instantiate(self, limits: StoreLimits, wasi: WasiSetup | None = None) -> LiveInstance:
        """A new instance in a new store with its limits set. Raises GuestTrap / GuestExit /
        GuestAbiViolation when the module's start function fails."""

    def instantiate_sliced(self, limits: StoreLimits) -> Slices[LiveInstance]:
        """`instantiate` (core ABI), sliced: a start function may be suspended."""
        return self.instantiate(limits)
        yield
