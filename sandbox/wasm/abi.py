"""The core WASM ABI, host side, as pure functions: entry points, signatures, the packed result.

No wasmtime, no clock, no I/O. The contract itself is `sandbox/wasm/ABI.md` (and `edge_abi.h`
for C guests): the host asks `edge_alloc(len)` for room, writes the event JSON there, calls
the entry point `(ptr, len) -> i64` and reads the result at `(ret >> 32, ret & 0xffffffff)`;
0 means "continue unchanged".
"""

from __future__ import annotations

from typing import Final, Literal

# An entry point's 0 (and `WasmFunction.invoke`'s payload then): nothing changed.
from sandbox.runtime.result import CONTINUE as CONTINUE

ValueKind = Literal["i32", "i64", "f32", "f64", "other"]

# The entry points a core guest may export, one per trigger, plus the generic `handler`.
ENTRY_POINTS: Final = frozenset(
    {"viewer_request", "origin_request", "origin_response", "viewer_response", "handler"}
)
ALLOC_EXPORT: Final = "edge_alloc"
RESET_EXPORT: Final = "edge_reset"
# A reactor's start function (WASI's reactor convention, AssemblyScript's `--exportStart`):
# called once on every new instance, before anything else.
INITIALIZE_EXPORT: Final = "_initialize"
MEMORY_EXPORT: Final = "memory"
LOG_MODULE: Final = "edge"
LOG_NAME: Final = "log"
WASI_START: Final = "_start"

# Expected (params, results) of each host-called export and of the host import.
ENTRY_SIGNATURE: Final = (("i32", "i32"), ("i64",))
ALLOC_SIGNATURE: Final = (("i32",), ("i32",))
RESET_SIGNATURE: Final = ((), ())
INITIALIZE_SIGNATURE: Final = ((), ())
LOG_SIGNATURE: Final = (("i32", "i32"), ())
START_SIGNATURE: Final = ((), ())


_U32: Final = 0xFFFF_FFFF
WASM_PAGE_BYTES: Final = 65536


def pack_result(ptr: int, length: int) -> int:
    """The i64 an entry point returns for a result at `ptr` of `length` bytes (signed, as wasm
    passes it)."""
    value = ((ptr & _U32) << 32) | (length & _U32)
    return value - (1 << 64) if value >= 1 << 63 else value


def unpack_result(value: int) -> tuple[int, int]:
    """`(ptr, len)` from an entry point's i64 return value (read as unsigned)."""
    unsigned = value & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & _U32


def result_location_error(ptr: int, length: int, memory_bytes: int) -> str | None:
    """Why `(ptr, length)` cannot be a result in a memory of `memory_bytes`, or None if it can."""
    if ptr + length > memory_bytes:
        return (
            f"result at {ptr:#x}..{ptr + length:#x} ({length} bytes) is outside the guest's "
            f"memory ({memory_bytes} bytes)"
        )
    return None


def signature_error(
    name: str,
    actual: tuple[tuple[ValueKind, ...], tuple[ValueKind, ...]],
    expected: tuple[tuple[str, ...], tuple[str, ...]],
) -> str | None:
    """A message naming the export whose type differs from the ABI's, or None if it matches."""
    if actual == expected:
        return None
    return f"export {name!r} has type {_show(actual)}, the ABI requires {_show(expected)}"


def _show(signature: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    params, results = signature
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def memory_exceeded(memory_bytes: int, limit_bytes: int, requested_bytes: int = 0) -> bool:
    """Whether a failed invocation is best explained by the memory cap.

    True when `requested_bytes` more would not fit, or when the guest's memory is within
    1/16 of the cap (at least one page): wasm's `memory.grow` only returns -1 at the cap, and
    guest allocators grow in chunks, so a guest that failed that close to the cap was almost
    certainly refused memory. The C API offers no hook to observe the refused grow itself.
    """
    if requested_bytes and memory_bytes + requested_bytes > limit_bytes:
        return True
    headroom = max(WASM_PAGE_BYTES, limit_bytes // 16)
    return memory_bytes + headroom > limit_bytes


def describe_memory_limit(limit_bytes: int) -> str:
    """A memory cap as a guest author reads it: `128 MB (2048 pages)`, `1 page, 64 KiB`."""
    pages = limit_bytes // WASM_PAGE_BYTES
    if limit_bytes % (1 << 20) == 0:
        return f"{limit_bytes >> 20} MB ({pages} pages)"
    return f"{pages} page{'s' if pages != 1 else ''}, {limit_bytes >> 10} KiB"


def log_line(stamp: str, request_id: str, message: str) -> str:
    """One `edge.log` line as the log shows it: `<time>\\t<request id>\\tINFO\\t<message>`.

    The shape of Lambda's console.log lines (Node.js runtimes), the closest analogue of a
    host log import; `stamp` is `log_lines.utc_timestamp(...)`.
    """
    return f"{stamp}\t{request_id}\tINFO\t{message.rstrip(chr(10))}\n"
