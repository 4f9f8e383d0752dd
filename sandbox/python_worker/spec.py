"""What a Python function version is, and the environment variables Lambda gives it.

`FunctionSpec` is the frozen description the pool runs (handler, code, limits); the functions
here compute the variables of spec §12.3 and check the user's variables against Lambda's rules.
Pure: no clock (times are passed in), no I/O.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024

# §14: 128 MB - 10,240 MB; sync payloads 6 MB each way; env vars 4 KB in total; /tmp
# (ephemeral storage) 512 MB - 10,240 MB, 512 MB by default and at most on Lambda@Edge.
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10_240
MIN_EPHEMERAL_STORAGE_MB = 512
MAX_EPHEMERAL_STORAGE_MB = 10_240
DEFAULT_PAYLOAD_LIMIT_BYTES = 6 * MIB
ENVIRONMENT_LIMIT_BYTES = 4096

INITIALIZATION_ON_DEMAND = "on-demand"
INITIALIZATION_PROVISIONED = "provisioned-concurrency"

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

_RUNTIME_DIR = str(Path(__file__).resolve().parent)


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


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function version as the Python runtime runs it.

    `handler` is Lambda's `module.function` (the module may be dotted or use `/`), resolved
    inside `code_dir` (the task root). `timeout_seconds` bounds each invocation; `memory_mb`
    becomes the process's address-space limit (see `address_space_limit`). `max_concurrency`
    environments at most, each serving one invocation at a time; idle ones live
    `idle_seconds`; `provisioned` of them are started in advance and never reaped.
    `max_wait_seconds` > 0 lets an invocation wait that long for a busy environment instead of
    being throttled at once. `network`: the environments share the host's network (loopback
    included); otherwise they have none. `ephemeral_storage_mb` bounds /tmp and any one file.
    `writable_paths`: host directories the environments may write (the only ones they see but
    their code, which is read-only).
    """

    name: str
    handler: str
    code_dir: Path
    version: str = "$LATEST"
    memory_mb: int = 128
    timeout_seconds: float = 3.0
    environment: Mapping[str, str] = field(default_factory=dict)
    max_concurrency: int = 10
    idle_seconds: float = 300.0
    provisioned: int = 0
    max_wait_seconds: float = 0.0
    region: str = "us-east-1"
    account_id: str = "123456789012"
    max_event_bytes: int = DEFAULT_PAYLOAD_LIMIT_BYTES
    max_result_bytes: int = DEFAULT_PAYLOAD_LIMIT_BYTES
    max_log_bytes: int = MIB
    init_timeout_seconds: float = 10.0
    network: bool = False
    ephemeral_storage_mb: int = MIN_EPHEMERAL_STORAGE_MB
    writable_paths: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("function name must not be empty")
        if not MIN_MEMORY_MB <= self.memory_mb <= MAX_MEMORY_MB:
            raise ValueError(
                f"memory_mb={self.memory_mb}: Lambda allows {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB"
            )
        if not MIN_EPHEMERAL_STORAGE_MB <= self.ephemeral_storage_mb <= MAX_EPHEMERAL_STORAGE_MB:
            raise ValueError(
                f"ephemeral_storage_mb={self.ephemeral_storage_mb}: Lambda allows "
                f"{MIN_EPHEMERAL_STORAGE_MB}..{MAX_EPHEMERAL_STORAGE_MB} MB"
            )
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if self.max_concurrency < 0:
            raise ValueError("max_concurrency must be >= 0 (0 throttles every invocation)")
        if not 0 <= self.provisioned <= self.max_concurrency:
            raise ValueError("provisioned must be between 0 and max_concurrency")
        if self.idle_seconds <= 0:
            raise ValueError("idle_seconds must be positive")
        check_environment(self.environment)

    @property
    def function_arn(self) -> str:
        """The unqualified ARN (an invocation may carry a qualified one)."""
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    @property
    def log_group_name(self) -> str:
        """`/aws/lambda/<function>`."""
        return f"/aws/lambda/{self.name}"


def log_stream_name(version: str, environment_id: str, epoch_seconds: float) -> str:
    """`YYYY/MM/DD/[<version>]<32 hex>`, one per execution environment (§12.1)."""
    day = time.strftime("%Y/%m/%d", time.gmtime(epoch_seconds))
    return f"{day}/[{version}]{environment_id}"


def lambda_environment(
    spec: FunctionSpec,
    *,
    stream_name: str,
    initialization_type: str,
) -> dict[str, str]:
    """The complete process environment of one execution environment (§12.3).

    The user's variables first, then Lambda's: the reserved ones cannot be overridden (the
    spec's check refuses them). `TMPDIR` is added by the process that creates the directory.
    """
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    variables = dict(spec.environment)
    variables.update(
        {
            "_HANDLER": spec.handler,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{python}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group_name,
            "AWS_LAMBDA_LOG_STREAM_NAME": stream_name,
            "LAMBDA_TASK_ROOT": str(Path(spec.code_dir).resolve()),
            "LAMBDA_RUNTIME_DIR": _RUNTIME_DIR,
        }
    )
    for key, default in (
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("PATH", f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
    ):
        variables.setdefault(key, default)
    return variables


def address_space_limit(baseline_bytes: int, memory_mb: int) -> int:
    """RLIMIT_AS for an environment: the interpreter's own footprint plus the configured memory.

    `baseline_bytes` is the virtual size of the process the environment is forked from (the
    interpreter, orjson and the runtime, ~20-30 MB here); the function then gets `memory_mb`
    MiB of address space on top. Address space overstates resident memory (thread stacks and
    malloc arenas reserve more than they touch), so this is a ceiling, not a meter.
    """
    return baseline_bytes + memory_mb * MIB
