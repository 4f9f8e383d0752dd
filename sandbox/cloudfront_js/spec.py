"""What a CloudFront Function is: the frozen description `CloudFrontFunction` runs. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sandbox.cloudfront_js.source import RuntimeVersion
from sandbox.runtime.limits import DEFAULT_PAYLOAD_LIMIT_BYTES

# CloudFront's quota: 2 MB of memory per function.
MEMORY_LIMIT_BYTES: Final = 2 * 1024 * 1024
# CloudFront does not publish the time behind "compute utilization"; this default leaves room
# for a loaded machine while stopping a runaway loop within milliseconds.
DEFAULT_COMPUTE_BUDGET_MS: Final = 5.0


@dataclass(frozen=True, slots=True)
class CloudFrontJsSpec:
    """One CloudFront Function: its JavaScript `code` file and runtime (`"1.0"`, `"2.0"`).

    `compute_budget_ms` is the CPU time a run may use (its compute utilization is the share of
    it used, 0-100; past it the run is stopped). `key_value_store` is the import-format JSON file
    of the store `cf.kvs()` reads, reloaded when it changes; `key_value_store_name` its name.
    """

    name: str
    code: Path
    runtime: RuntimeVersion = "2.0"
    version: str = "$LATEST"
    compute_budget_ms: float = DEFAULT_COMPUTE_BUDGET_MS
    memory_limit_bytes: int = MEMORY_LIMIT_BYTES
    key_value_store: Path | None = None
    key_value_store_name: str = ""
    timeout_seconds: float = 5.0
    max_event_bytes: int = DEFAULT_PAYLOAD_LIMIT_BYTES

    def __post_init__(self) -> None:
        if self.runtime not in ("1.0", "2.0"):
            raise ValueError(f"runtime={self.runtime!r}: expected '1.0' or '2.0'")
        if self.compute_budget_ms <= 0:
            raise ValueError("compute_budget_ms must be positive")
        if self.key_value_store is not None and self.runtime != "2.0":
            raise ValueError("a KeyValueStore needs runtime cloudfront-js-2.0")
