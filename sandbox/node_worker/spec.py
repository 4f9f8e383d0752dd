"""What a Node.js function version is, the `node` that runs it, and the variables Lambda gives it.

`NodeFunctionSpec` is the frozen description the pool runs; `find_node` locates the interpreter
(the runtime names `nodejs18.x`, `nodejs20.x`, `nodejs22.x` all run the `node` installed here);
the rest computes the process environment of spec §12.3 and the memory flags. Pure but for
`find_node` and `check_node`, which read PATH and look for files, and run nothing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.runtime.errors import FunctionCodeInvalid
from sandbox.runtime.layers import node_path, search_variables
from sandbox.runtime.limits import (
    DEFAULT_LOG_LIMIT_BYTES,
    DEFAULT_PAYLOAD_LIMIT_BYTES,
    MIB,
    MIN_EPHEMERAL_STORAGE_MB,
    check_process_limits,
)

INITIALIZATION_ON_DEMAND = "on-demand"
INITIALIZATION_PROVISIONED = "provisioned-concurrency"

RUNTIME_SCRIPT = Path(__file__).resolve().parent / "runtime.js"

# How to get `node` where it is missing (the message of a missing interpreter).
INSTALL_HINT = (
    "install Node.js (Debian/Ubuntu: `apt-get install nodejs`; or from https://nodejs.org) "
    "so that `node` is on the edge's PATH"
)

# How long an invocation waits for a busy environment, once `max_environments` run, before one
# more starts for it (see `sandbox.pool`): the Python runtime's default.
DEFAULT_ENVIRONMENT_WAIT_SECONDS = 0.02

# V8's old space gets this share of the function's memory, as Lambda's Node.js runtime sizes
# it; the rest is for the young generation, code and buffers.
HEAP_SHARE_PERCENT = 90
# RLIMIT_DATA is the function's memory plus what an idle `node` already holds of private
# writable memory (VmData ~47 MB for node 20 here): buffers (outside V8's heap) cannot go
# further. RLIMIT_AS cannot be used: V8 reserves far more address space than it touches.
NODE_BASELINE_DATA_MB = 64


class NodeUnavailable(ValueError):
    """No `node` interpreter could be found."""


def find_node(executable: str = "node") -> str:
    """The absolute path of `executable` (a name on PATH, or a path); raises `NodeUnavailable`
    with how to install it."""
    found = shutil.which(executable)
    if found is None:
        raise NodeUnavailable(f"no `{executable}` found: {INSTALL_HINT}")
    return str(Path(found).resolve())


def module_files(code_dir: Path, handler: str) -> list[Path]:
    """The files Lambda would load for `handler` (`dir/index.handler`), in its order."""
    module_path, _, _ = handler.rpartition("/")
    name = handler.rpartition("/")[2].partition(".")[0]
    base = Path(code_dir) / module_path / name
    return [base.with_name(name + extension) for extension in (".js", ".mjs", ".cjs")]


@dataclass(frozen=True, slots=True)
class NodeFunctionSpec:
    """One function version as the Node.js runtime runs it.

    `handler` is Lambda's `module.function` (`index.handler`; the function may be a dotted path
    into the module's exports), resolved inside `code_dir` (the task root) as `module.js`,
    `module.mjs` or `module.cjs`. `node`: the interpreter (a name on PATH or a path).
    `spare_environments`: processes kept started ahead of need (their node booted, no code
    loaded yet), so that a cold start only pays for Init; 0 for none. Every other field
    (`max_environments`, `environment_wait_seconds` included) means what it means in the Python
    runtime's `FunctionSpec` (`layers` and `layer_cache_dir` too).
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
    node: str = "node"
    spare_environments: int = 1

    def __post_init__(self) -> None:
        check_process_limits(self)
        if self.spare_environments < 0:
            raise ValueError("spare_environments must be >= 0")

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


def node_flags(memory_mb: int) -> list[str]:
    """The interpreter's flags for a function of `memory_mb`: V8's heap within it."""
    heap_mb = max(16, memory_mb * HEAP_SHARE_PERCENT // 100)
    return [f"--max-old-space-size={heap_mb}"]


def data_limit_bytes(memory_mb: int) -> int:
    """RLIMIT_DATA of an environment (see `NODE_BASELINE_DATA_MB`)."""
    return (memory_mb + NODE_BASELINE_DATA_MB) * MIB


def process_environment(
    spec: NodeFunctionSpec, node_major: int, tmpdir: str, layers_root: str | None = None
) -> dict[str, str]:
    """The variables a process starts with (§12.3): the user's, then Lambda's (which the spec's
    check keeps the user from setting), but for those of one environment (`environment_variables`).
    `layers_root`: where the process sees the function's layers (/opt, or their merged tree
    unconfined): NODE_PATH, PATH and LD_LIBRARY_PATH as Lambda sets them for /opt.
    """
    variables = dict(spec.environment)
    variables.update(
        {
            "_HANDLER": spec.handler,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_nodejs{node_major}.x",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group_name,
            "LAMBDA_TASK_ROOT": str(Path(spec.code_dir).resolve()),
            "LAMBDA_RUNTIME_DIR": str(RUNTIME_SCRIPT.parent),
            "TMPDIR": tmpdir,
        }
    )
    path = "/usr/local/bin:/usr/bin:/bin"
    if layers_root is not None:
        variables.setdefault("NODE_PATH", node_path(layers_root, node_major))
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


def environment_variables(*, stream_name: str, initialization_type: str) -> dict[str, str]:
    """The variables that differ per environment, set when a started process becomes one."""
    return {
        "AWS_LAMBDA_LOG_STREAM_NAME": stream_name,
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
    }


def check_node(spec: NodeFunctionSpec) -> None:
    """Raise `FunctionCodeInvalid` when `spec` cannot start: no `node`, or no module file for
    its handler (a package in node_modules is left to Init, as Lambda resolves it)."""
    try:
        find_node(spec.node)
    except NodeUnavailable as exc:
        raise FunctionCodeInvalid(spec.name, str(exc)) from None
    files = module_files(spec.code_dir, spec.handler)
    node_modules = Path(spec.code_dir) / "node_modules"
    if not any(f.is_file() for f in files) and not node_modules.is_dir():
        names = ", ".join(f.name for f in files)
        raise FunctionCodeInvalid(
            spec.name,
            f"no module for handler {spec.handler!r}: expected {names} in {files[0].parent}",
        )
