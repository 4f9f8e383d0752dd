"""Lambda's limits that every runtime shares, and the check of a function's user variables.

Spec §14 and §12.3. Pure: no clock, no I/O. A runtime may allow less where its nature asks
(a WASM guest's memory is counted in 64 KiB pages), never more than Lambda does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

MIB = 1024 * 1024
# §14: 5 layers per function.
MAX_LAYERS = 5

# §14: 128 MB - 10,240 MB; sync payloads 6 MB each way; env vars 4 KB in total; /tmp
# (ephemeral storage) 512 MB - 10,240 MB, 512 MB by default and at most on Lambda@Edge.
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10_240
MIN_EPHEMERAL_STORAGE_MB = 512
MAX_EPHEMERAL_STORAGE_MB = 10_240
DEFAULT_PAYLOAD_LIMIT_BYTES = 6 * MIB
ENVIRONMENT_LIMIT_BYTES = 4096
# §14: processes and threads of one execution environment (every runtime that has processes).
MAX_PROCESSES = 1024
# The log text an invocation keeps (its tail, after a marker line when more was written).
DEFAULT_LOG_LIMIT_BYTES = MIB

# §12.3: set by Lambda, not configurable. The credential variables are deliberately not in this
# set: outside AWS there is no execution role, so configuring them is how a function gets one.
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

# §12.3: keys start with a letter, at least 2 characters, letters, digits and underscores.
_VARIABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]+")


def check_environment(variables: Mapping[str, str]) -> None:
    """Raise ValueError unless `variables` obey Lambda's rules for user environment variables."""
    total = 0
    for key, value in variables.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"environment variable {key!r}: names and values must be strings")
        if not _VARIABLE_NAME.fullmatch(key):
            raise ValueError(
                f"environment variable {key!r}: a name starts with a letter and has at least "
                "2 characters among letters, digits and '_'"
            )
        if key in RESERVED_VARIABLES:
            raise ValueError(f"environment variable {key!r} is reserved by Lambda")
        total += len(key.encode("utf-8")) + len(value.encode("utf-8"))
    if total > ENVIRONMENT_LIMIT_BYTES:
        raise ValueError(
            f"environment variables total {total} bytes (names and values); "
            f"Lambda's limit is {ENVIRONMENT_LIMIT_BYTES} bytes"
        )


class CommonSettings(Protocol):
    """The settings every runtime's spec has."""

    @property
    def name(self) -> str: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def environment(self) -> Mapping[str, str]: ...


def check_common_limits(spec: CommonSettings) -> None:
    """Raise ValueError unless the settings every function version has are usable."""
    if not spec.name:
        raise ValueError("function name must not be empty")
    if spec.timeout_seconds <= 0:
        raise ValueError("timeout_seconds must be positive")
    if spec.max_concurrency < 0:
        raise ValueError("max_concurrency must be >= 0 (0 throttles every invocation)")
    check_environment(spec.environment)


class ProcessSettings(CommonSettings, Protocol):
    """The settings of a runtime whose environments are processes (Python, Node.js, custom)."""

    @property
    def memory_mb(self) -> int: ...
    @property
    def ephemeral_storage_mb(self) -> int: ...
    @property
    def provisioned(self) -> int: ...
    @property
    def idle_seconds(self) -> float: ...
    @property
    def max_environments(self) -> int: ...
    @property
    def environment_wait_seconds(self) -> float: ...
    @property
    def layers(self) -> tuple[object, ...]: ...


def check_process_limits(spec: ProcessSettings) -> None:
    """Raise ValueError unless a process runtime's settings are usable (and within Lambda's
    memory, ephemeral storage and layer limits); `check_common_limits` included."""
    check_common_limits(spec)
    if not MIN_MEMORY_MB <= spec.memory_mb <= MAX_MEMORY_MB:
        raise ValueError(
            f"memory_mb={spec.memory_mb}: Lambda allows {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB"
        )
    if not MIN_EPHEMERAL_STORAGE_MB <= spec.ephemeral_storage_mb <= MAX_EPHEMERAL_STORAGE_MB:
        raise ValueError(
            f"ephemeral_storage_mb={spec.ephemeral_storage_mb}: Lambda allows "
            f"{MIN_EPHEMERAL_STORAGE_MB}..{MAX_EPHEMERAL_STORAGE_MB} MB"
        )
    if not 0 <= spec.provisioned <= spec.max_concurrency:
        raise ValueError("provisioned must be between 0 and max_concurrency")
    if spec.idle_seconds <= 0:
        raise ValueError("idle_seconds must be positive")
    if spec.max_environments < 0:
        raise ValueError("max_environments must not be negative (0: the cores)")
    if spec.environment_wait_seconds < 0:
        raise ValueError("environment_wait_seconds must not be negative")
    if len(spec.layers) > MAX_LAYERS:
        raise ValueError(f"{len(spec.layers)} layers: Lambda allows at most {MAX_LAYERS}")
