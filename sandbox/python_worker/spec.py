"""What a Python function version is, and the environment variables Lambda gives it.

`FunctionSpec` is the frozen description the pool runs (handler, code, limits); the functions
here compute the variables of spec §12.3 (Lambda's rules for the user's own are
`sandbox.runtime.limits`). Pure: no clock (times are passed in), no I/O.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.runtime.layers import search_variables
from sandbox.runtime.limits import (
    DEFAULT_LOG_LIMIT_BYTES,
    DEFAULT_PAYLOAD_LIMIT_BYTES,
    MIB,
    MIN_EPHEMERAL_STORAGE_MB,
    check_process_limits,
)

INITIALIZATION_ON_DEMAND = "on-demand"
INITIALIZATION_PROVISIONED = "provisioned-concurrency"

_RUNTIME_DIR = str(Path(__file__).resolve().parent)

# How long an invocation waits for a busy environment, once `max_environments` run, before one
# more starts for it (if every busy one is that deep in its invocation): far above a fast
# handler's round trip (~0.1 ms) and a queue of them, well below a slow handler's I/O.
DEFAULT_ENVIRONMENT_WAIT_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function version as the Python runtime runs it.

    `handler` is Lambda's `module.function` (the module may be dotted or use `/`), resolved
    inside `code_dir` (the task root). `timeout_seconds` bounds each invocation; `memory_mb`
    becomes the process's address-space limit (see `address_space_limit`). `max_concurrency`
    environments at most, each serving one invocation at a time; idle ones live
    `idle_seconds`; `provisioned` of them are started in advance and never reaped.
    `max_wait_seconds` > 0 lets an invocation wait that long for room under `max_concurrency`
    instead of being throttled at once. `max_environments` processes at most serve the
    invocations in flight (0: as many as the cores available); an invocation beyond them waits for
    one, and after `environment_wait_seconds` one more starts for it if every busy one is that
    deep in its invocation, asleep (a wait at least the timeout makes the cap hard; see
    `sandbox.pool`). `network`: the environments share the host's network (loopback
    included); otherwise they have none. `ephemeral_storage_mb` bounds /tmp and any one file.
    `writable_paths`: host directories the environments may write (the only ones they see but
    their code, which is read-only). `layers`: Lambda layers (directories or .zip files, in
    order), seen merged at /opt (`sandbox.runtime.layers`); their merged tree is made in
    `layer_cache_dir` (None: `layers.default_cache_dir()`).
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
    max_environments: int = 0
    environment_wait_seconds: float = DEFAULT_ENVIRONMENT_WAIT_SECONDS
    region: str = "us-east-1"
    account_id: str = "123456789012"
    max_event_bytes: int = DEFAULT_PAYLOAD_LIMIT_BYTES
    max_result_bytes: int = DEFAULT_PAYLOAD_LIMIT_BYTES
    max_log_bytes: int = DEFAULT_LOG_LIMIT_BYTES
    init_timeout_seconds: float = 10.0
    network: bool = False
    ephemeral_storage_mb: int = MIN_EPHEMERAL_STORAGE_MB
    writable_paths: tuple[Path, ...] = ()
    layers: tuple[Path, ...] = ()
    layer_cache_dir: Path | None = None

    def __post_init__(self) -> None:
        check_process_limits(self)

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
    layers_root: str | None = None,
) -> dict[str, str]:
    """The complete process environment of one execution environment (§12.3).

    The user's variables first, then Lambda's: the reserved ones cannot be overridden (the
    spec's check refuses them). `TMPDIR` is added by the process that creates the directory.
    `layers_root`: where the environment sees the function's layers (/opt, or their merged
    tree unconfined): PATH ends with its `bin`, LD_LIBRARY_PATH is its `lib`, as on Lambda.
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
    path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    if layers_root is not None:
        for key, value in search_variables(layers_root, path).items():
            variables.setdefault(key, value)
    for key, default in (
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("PATH", path),
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
