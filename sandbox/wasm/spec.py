"""What a WASM function version is: the frozen description `WasmFunction` runs.

Pure: validation only, no wasmtime and no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sandbox.runtime.limits import (
    DEFAULT_LOG_LIMIT_BYTES,
    DEFAULT_PAYLOAD_LIMIT_BYTES,
    MAX_MEMORY_MB,
    MIB,
    check_common_limits,
)

Abi = Literal["core", "wasi"]

# A wasm32 memory holds at most 4 GiB; the Lambda floor (128 MB) is no use to a guest that
# needs a few pages, so the WASM runtime allows from 1 MB.
MIN_WASM_MEMORY_MB = 1
MAX_WASM_MEMORY_MB = min(MAX_MEMORY_MB, 4096)
WASM_PAGE_BYTES = 65536
MAX_WASM_PAGES = 65536


@dataclass(frozen=True, slots=True)
class WasmFunctionSpec:
    """One WASM function version.

    `module` is a `.wasm` binary or a `.wat` text file. `abi` is `core` (exports, see ABI.md)
    or `wasi` (a WASI preview1 command: event on stdin, result on stdout). `memory_mb` caps the
    guest's linear memory, or `memory_pages` (64 KiB pages, wasm's own unit) when set;
    `timeout_seconds` each invocation; `fuel`, if set, the instructions an invocation may
    execute (wasmtime fuel units). At most `max_concurrency` invocations run at once, each in
    its own execution slot. `reuse_instance` keeps one warm instance per slot (globals persist
    between invocations, as in a warm Lambda environment; `edge_reset` is called first); by
    default every invocation gets a fresh instance.
    """

    name: str
    module: Path
    abi: Abi = "core"
    version: str = "$LATEST"
    memory_mb: int = 128
    memory_pages: int | None = None
    timeout_seconds: float = 3.0
    environment: Mapping[str, str] = field(default_factory=dict)
    max_concurrency: int = 10
    reuse_instance: bool = False
    fuel: int | None = None
    region: str = "us-east-1"
    max_event_bytes: int = DEFAULT_PAYLOAD_LIMIT_BYTES
    max_result_bytes: int = DEFAULT_PAYLOAD_LIMIT_BYTES
    max_log_bytes: int = DEFAULT_LOG_LIMIT_BYTES

    def __post_init__(self) -> None:
        check_common_limits(self)
        if self.abi not in ("core", "wasi"):
            raise ValueError(f"abi={self.abi!r}: expected 'core' or 'wasi'")
        if self.memory_pages is not None and not 1 <= self.memory_pages <= MAX_WASM_PAGES:
            raise ValueError(
                f"memory_pages={self.memory_pages}: a wasm32 memory has 1..{MAX_WASM_PAGES} "
                "pages of 64 KiB"
            )
        if not MIN_WASM_MEMORY_MB <= self.memory_mb <= MAX_WASM_MEMORY_MB:
            raise ValueError(
                f"memory_mb={self.memory_mb}: a WASM function allows "
                f"{MIN_WASM_MEMORY_MB}..{MAX_WASM_MEMORY_MB} MB"
            )
        if self.fuel is not None and self.fuel <= 0:
            raise ValueError("fuel must be positive (or None for no fuel limit)")
        if self.reuse_instance and self.abi == "wasi":
            # A WASI command runs `_start` once; running it again on the same instance is
            # undefined behaviour for every libc that targets it.
            raise ValueError("reuse_instance is only for the core ABI (a WASI command runs once)")
        if Path(self.module).suffix not in (".wasm", ".wat"):
            raise ValueError(f"module {str(self.module)!r}: expected a .wasm or .wat file")

    @property
    def memory_limit_bytes(self) -> int:
        """The store's linear-memory limit."""
        if self.memory_pages is not None:
            return self.memory_pages * WASM_PAGE_BYTES
        return self.memory_mb * MIB

    @property
    def memory_size_mb(self) -> int:
        """The limit in whole MB, rounded up: what Lambda's REPORT line and
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE say."""
        return math.ceil(self.memory_limit_bytes / MIB)

    def wasi_environment(self) -> dict[str, str]:
        """The variables a WASI guest sees: the configured ones plus Lambda's basic facts."""
        variables = dict(self.environment)
        variables.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": self.name,
                "AWS_LAMBDA_FUNCTION_VERSION": self.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_size_mb),
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
            }
        )
        return variables
