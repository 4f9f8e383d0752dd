"""How custom-runtime environments are made: agents started ahead of need, then configured.

An environment is one agent (`agent.py`, run by the edge's Python) that serves the Runtime API
and starts the function's bootstrap. Python takes tens of milliseconds to boot, so the launcher
keeps `spare_environments` agents started in advance (no bootstrap yet); a cold start takes
one, sends it the environment's own variables and its bootstrap (Init then runs as on Lambda:
the bootstrap starts and initialises until its first `next`) and starts the next spare in its
place. A spare that died is started again.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from typing import Any

from sandbox.provided_worker.confinement import (
    ConfinementPolicy,
    ConfinementUnavailable,
    Level,
    bwrap_arguments,
    confinement_level,
)
from sandbox.provided_worker.environment import ProvidedEnvironment
from sandbox.provided_worker.spec import (
    AGENT_SCRIPT,
    INITIALIZATION_ON_DEMAND,
    INITIALIZATION_PROVISIONED,
    RUNTIME_API_PORT,
    ProvidedFunctionSpec,
    bootstrap_problem,
    data_limit_bytes,
    environment_variables,
    log_stream_name,
    process_environment,
)
from sandbox.runtime.errors import FunctionCodeInvalid, PoolClosed
from sandbox.runtime.layers import prepare_layers
from sandbox.runtime.limits import MIB
from sandbox.runtime.process import Spares, SpawnedProcess, confined_command, start_process


class ProvidedLauncher:
    """Starts and configures the agents of one function.

    `policy` (the edge's `[sandbox]`; default: the best isolation available) decides whether
    each environment runs under bubblewrap (see `confinement`).
    """

    def __init__(
        self, spec: ProvidedFunctionSpec, *, policy: ConfinementPolicy | None = None
    ) -> None:
        self._spec = spec
        self._policy = policy
        self._level: Level = "none"
        self._layers_root: str | None = None
        self._command: list[str] = []
        self._spares = Spares(self._start_process, spec.spare_environments)
        self._started = False
        self._closed = False

    @property
    def level(self) -> Level:
        """The confinement in force (once started)."""
        return self._level

    async def start(self) -> None:
        """Check the bootstrap, settle the confinement, start the spare agents. Raises
        `FunctionCodeInvalid` when there is no executable bootstrap or the isolation asked for
        cannot be had (the function then fails its own invocations; `edge check` refuses both
        earlier)."""
        if self._closed:
            raise PoolClosed("the pool is closed")
        if self._started:
            return
        spec = self._spec
        problem = bootstrap_problem(spec.code_dir)
        if problem is not None:
            raise FunctionCodeInvalid(spec.name, problem)
        python = spec.python
        isolation = self._policy.isolation if self._policy is not None else "auto"
        loop = asyncio.get_running_loop()
        try:
            self._level, bwrap = await loop.run_in_executor(
                None, confinement_level, isolation, python
            )
        except ConfinementUnavailable as exc:
            raise FunctionCodeInvalid(spec.name, str(exc)) from None
        layers = await prepare_layers(spec.name, spec.layers, spec.layer_cache_dir)
        if layers is not None:
            self._layers_root = layers.root(confined=bwrap is not None)
        # -I: no user site, no PYTHON* variables of the function; -S: no site (a faster start).
        command = [python, "-I", "-S", str(AGENT_SCRIPT)]
        if bwrap is not None:
            prefix = bwrap_arguments(
                bwrap,
                python=python,
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
        tmpdir = None if confined else tempfile.mkdtemp(prefix="edge-provided-")
        return start_process(
            self._command,
            process_environment(spec, "/tmp" if tmpdir is None else tmpdir, self._layers_root),
            tmpdir=tmpdir,
            data_limit_bytes=None if confined else data_limit_bytes(spec.memory_mb),
            max_file_bytes=spec.ephemeral_storage_mb * MIB,
        )

    async def launch(self, *, provisioned: bool) -> ProvidedEnvironment:
        """A new environment, whose Init (the bootstrap's start) proceeds in the background."""
        if self._closed:
            raise PoolClosed("the pool is closed")
        await self.start()
        process = self._spares.take()
        spec = self._spec
        # Its own network namespace: Lambda's port. The edge's network: any free port.
        port = RUNTIME_API_PORT if self._level == "namespaces" and not spec.network else 0
        settings: dict[str, Any] = {
            "bootstrap": str(spec.bootstrap),
            "code_dir": str(spec.code_dir.resolve()),
            "port": port,
            "env": environment_variables(
                stream_name=log_stream_name(spec.version, uuid.uuid4().hex, time.time()),
                initialization_type=(
                    INITIALIZATION_PROVISIONED if provisioned else INITIALIZATION_ON_DEMAND
                ),
            ),
            "max_result_bytes": spec.max_result_bytes,
            "max_log_bytes": spec.max_log_bytes,
        }
        environment = await ProvidedEnvironment.configure(
            process, spec, settings, provisioned=provisioned
        )
        self._spares.fill()  # after the CONFIGURE frame left: the next spare does not delay Init
        return environment

    async def aclose(self) -> None:
        """Stop the spare agents."""
        self._closed = True
        await self._spares.aclose()
