"""What a custom-runtime function version is, and the variables Lambda gives its bootstrap.

`ProvidedFunctionSpec` is the frozen description the pool runs; the rest computes the process
environment (Lambda's variables for `provided` runtimes, spec §12.3) and checks the bootstrap.
Pure but for `check_bootstrap`, which looks at the file.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.runtime.errors import FunctionCodeInvalid
from sandbox.runtime.limits import (
    DEFAULT_LOG_LIMIT_BYTES,
    DEFAULT_PAYLOAD_LIMIT_BYTES,
    MIB,
    MIN_EPHEMERAL_STORAGE_MB,
    check_process_limits,
)

INITIALIZATION_ON_DEMAND = "on-demand"
INITIALIZATION_PROVISIONED = "provisioned-concurrency"

AGENT_SCRIPT = Path(__file__).resolve().parent / "agent.py"
BOOTSTRAP = "bootstrap"

# Where the Runtime API listens inside an environment with a network namespace of its own, as
# on Lambda; with the edge's network, an ephemeral port (0).
RUNTIME_API_PORT = 9001

# Lambda's search paths for custom runtimes: `/opt/bin` and `/opt/lib` are where layers put
# executables and libraries.
LAMBDA_PATH = "/usr/local/bin:/usr/bin:/bin:{opt}/bin"
LAMBDA_LIBRARY_PATH = "/lib64:/usr/lib64:{task}:{task}/lib:{opt}/lib"

# How long an invocation waits for a busy environment, once `max_environments` run, before one
# more starts for it (see `sandbox.pool`): the other runtimes' default.
DEFAULT_ENVIRONMENT_WAIT_SECONDS = 0.02

# RLIMIT_DATA is the function's memory plus what the agent (a small Python) holds.
AGENT_BASELINE_DATA_MB = 64


@dataclass(frozen=True, slots=True)
class ProvidedFunctionSpec:
    """One function version as a custom runtime runs it.

    `code_dir` (the task root) holds an executable `bootstrap`, started once per environment;
    `handler` is only passed on (`_HANDLER`), as Lambda does. `python`: the interpreter (an
    absolute path) that runs the agent serving the Runtime API (default: the edge's own).
    `spare_environments`:
    agents kept started ahead of need (no bootstrap yet), so that a cold start only pays for
    the bootstrap's Init. Every other field means what it means in the Node.js runtime's
    `NodeFunctionSpec`.
    """

    name: str
    code_dir: Path
    handler: str = ""
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
    python: str = sys.executable
    spare_environments: int = 1
    # Lambda layers, merged in order and shown at /opt (see sandbox.runtime.layers).
    layers: tuple[Path, ...] = ()
    layer_cache_dir: Path | None = None

    def __post_init__(self) -> None:
        check_process_limits(self)
        if self.spare_environments < 0:
            raise ValueError("spare_environments must be >= 0")

    @property
    def bootstrap(self) -> Path:
        """The executable Lambda starts: `bootstrap` at the task root."""
        return Path(self.code_dir).resolve() / BOOTSTRAP

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


def data_limit_bytes(memory_mb: int) -> int:
    """RLIMIT_DATA of an environment (see `AGENT_BASELINE_DATA_MB`)."""
    return (memory_mb + AGENT_BASELINE_DATA_MB) * MIB


def process_environment(
    spec: ProvidedFunctionSpec, tmpdir: str, layers_root: str | None = None
) -> dict[str, str]:
    """The variables the bootstrap starts with (§12.3; `AWS_LAMBDA_RUNTIME_API` is the agent's
    to add): the user's, then Lambda's (which the spec's check keeps the user from setting), but
    for those of one environment (`environment_variables`). No `AWS_EXECUTION_ENV`: Lambda sets
    none for custom runtimes."""
    task_root = str(Path(spec.code_dir).resolve())
    variables = dict(spec.environment)
    variables.update(
        {
            "_HANDLER": spec.handler,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group_name,
            "LAMBDA_TASK_ROOT": task_root,
            "TMPDIR": tmpdir,
        }
    )
    for key, default in (
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        # `layers_root`: where the layers are seen (/opt, or their merged tree unconfined).
        ("PATH", LAMBDA_PATH.format(opt=layers_root or "/opt")),
        ("LD_LIBRARY_PATH", LAMBDA_LIBRARY_PATH.format(task=task_root, opt=layers_root or "/opt")),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
    ):
        variables.setdefault(key, default)
    return variables


def environment_variables(*, stream_name: str, initialization_type: str) -> dict[str, str]:
    """The variables that differ per environment, set when a started agent becomes one."""
    return {
        "AWS_LAMBDA_LOG_STREAM_NAME": stream_name,
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
    }


def bootstrap_problem(code_dir: Path) -> str | None:
    """Why `code_dir` cannot be a custom runtime's task root (None: it can)."""
    bootstrap = Path(code_dir) / BOOTSTRAP
    if not Path(code_dir).is_dir():
        return f"{code_dir} is not a directory (a custom runtime's code is a folder)"
    if not bootstrap.exists():
        return f"no executable `bootstrap` in {code_dir}: Lambda starts {bootstrap}"
    if not bootstrap.is_file():
        return f"{bootstrap} is not a file"
    if not os.access(bootstrap, os.X_OK):
        return f"{bootstrap} is not executable (chmod +x it)"
    return None


def check_bootstrap(spec: ProvidedFunctionSpec) -> None:
    """Raise `FunctionCodeInvalid` when `spec`'s task root has no executable `bootstrap`."""
    problem = bootstrap_problem(spec.code_dir)
    if problem is not None:
        raise FunctionCodeInvalid(spec.name, problem)
