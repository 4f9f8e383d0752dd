"""How Node.js environments are made: `node` processes started ahead of need, then configured.

`node` cannot fork a preloaded copy of itself the way the Python runtime's zygote does, and a
fresh `node` takes tens of milliseconds to boot. So the launcher keeps `spare_environments`
processes started in advance (node booted, `runtime.js` waiting, no function code loaded); a
cold start takes one, sends it the environment's own variables and handler (Init then runs
as on Lambda) and starts the next spare in its place. A spare that died is started again.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import tempfile
import time
import uuid
from typing import Any

from sandbox.node_worker.confinement import (
    ConfinementPolicy,
    ConfinementUnavailable,
    Level,
    bwrap_arguments,
    confinement_level,
)
from sandbox.node_worker.environment import NodeEnvironment
from sandbox.node_worker.spec import (
    INITIALIZATION_ON_DEMAND,
    INITIALIZATION_PROVISIONED,
    RUNTIME_SCRIPT,
    NodeFunctionSpec,
    NodeUnavailable,
    data_limit_bytes,
    environment_variables,
    find_node,
    log_stream_name,
    node_flags,
    process_environment,
)
from sandbox.runtime.errors import FunctionCodeInvalid, PoolClosed
from sandbox.runtime.layers import prepare_layers
from sandbox.runtime.limits import MIB
from sandbox.runtime.process import Spares, SpawnedProcess, confined_command, start_process


@functools.lru_cache(maxsize=8)
def node_major_version(node: str) -> int:
    """The major version of the `node` at this path (`v20.11.1` -> 20). Blocking."""
    try:
        found = subprocess.run(
            [node, "--version"], env={}, capture_output=True, timeout=30, check=True
        )
        return int(found.stdout.decode().strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise NodeUnavailable(f"{node} does not run: {exc}") from None


class NodeLauncher:
    """Starts and configures the `node` processes of one function.

    `policy` (the edge's `[sandbox]`; default: the best isolation available) decides whether
    each process runs under bubblewrap (see `confinement`).
    """

    def __init__(self, spec: NodeFunctionSpec, *, policy: ConfinementPolicy | None = None) -> None:
        self._spec = spec
        self._policy = policy
        self._node = ""
        self._major = 0
        self._level: Level = "none"
        self._command: list[str] = []
        self._layers_root: str | None = None
        self._spares = Spares(self._start_process, spec.spare_environments)
        self._started = False
        self._closed = False

    @property
    def level(self) -> Level:
        """The confinement in force (once started)."""
        return self._level

    async def start(self) -> None:
        """Find `node`, settle the confinement, start the spare processes. Raises
        `FunctionCodeInvalid` when there is no `node` or the isolation asked for cannot be had
        (the function then fails its own invocations; `edge check` refuses both earlier)."""
        if self._closed:
            raise PoolClosed("the pool is closed")
        if self._started:
            return
        loop = asyncio.get_running_loop()
        spec = self._spec
        try:
            self._node = find_node(spec.node)
            self._major = await loop.run_in_executor(None, node_major_version, self._node)
        except NodeUnavailable as exc:
            raise FunctionCodeInvalid(spec.name, str(exc)) from None
        isolation = self._policy.isolation if self._policy is not None else "auto"
        try:
            self._level, bwrap = await loop.run_in_executor(
                None, confinement_level, isolation, self._node
            )
        except ConfinementUnavailable as exc:
            raise FunctionCodeInvalid(spec.name, str(exc)) from None
        layers = await prepare_layers(spec.name, spec.layers, spec.layer_cache_dir)
        if layers is not None:
            self._layers_root = layers.root(confined=bwrap is not None)
        command = [self._node, *node_flags(spec.memory_mb), str(RUNTIME_SCRIPT)]
        if bwrap is not None:
            prefix = bwrap_arguments(
                bwrap,
                node=self._node,
                code_dir=spec.code_dir,
                network=spec.network,
                tmp_bytes=spec.ephemeral_storage_mb * MIB,
                writable_dirs=spec.writable_paths,
                hidden_paths=self._policy.hidden_paths if self._policy is not None else (),
                layers=layers,
            )
            command = confined_command(
                prefix,
                command,
                code_dir=str(spec.code_dir.resolve()),
                data_limit_bytes=data_limit_bytes(spec.memory_mb),
                max_file_bytes=spec.ephemeral_storage_mb * MIB,
            )
        self._command = command
        self._started = True
        self._spares.fill()

    def _start_process(self) -> SpawnedProcess:
        spec = self._spec
        confined = self._level == "namespaces"
        tmpdir = None if confined else tempfile.mkdtemp(prefix="edge-node-")
        return start_process(
            self._command,
            process_environment(
                spec, self._major, "/tmp" if tmpdir is None else tmpdir, self._layers_root
            ),
            tmpdir=tmpdir,
            data_limit_bytes=None if confined else data_limit_bytes(spec.memory_mb),
            max_file_bytes=spec.ephemeral_storage_mb * MIB,
        )

    async def launch(self, *, provisioned: bool) -> NodeEnvironment:
        """A new environment, whose Init proceeds in the background."""
        if self._closed:
            raise PoolClosed("the pool is closed")
        await self.start()
        process = self._spares.take()
        spec = self._spec
        settings: dict[str, Any] = {
            "code_dir": str(spec.code_dir.resolve()),
            "handler": spec.handler,
            "env": environment_variables(
                stream_name=log_stream_name(spec.version, uuid.uuid4().hex, time.time()),
                initialization_type=(
                    INITIALIZATION_PROVISIONED if provisioned else INITIALIZATION_ON_DEMAND
                ),
            ),
            "max_result_bytes": spec.max_result_bytes,
            "max_log_bytes": spec.max_log_bytes,
        }
        environment = await NodeEnvironment.configure(
            process, spec, settings, provisioned=provisioned
        )
        self._spares.fill()  # after the CONFIGURE frame left: the next spare does not delay Init
        return environment

    async def aclose(self) -> None:
        """Stop the spare processes."""
        self._closed = True
        await self._spares.aclose()
