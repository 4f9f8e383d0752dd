"""A Python function version behind the runtime seam: the pool of its forked environments.

`PythonFunctionPool(spec)` is an `EnvironmentPool` whose launcher (`ZygoteLauncher`) forks each
environment from a zygote confined to this function's code and network: the pool decides when
and how many, the launcher how.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sandbox.pool import EnvironmentPool
from sandbox.python_worker.environment import ExecutionEnvironment
from sandbox.python_worker.isolation import SandboxPolicy
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.spec import FunctionSpec
from sandbox.runtime.errors import PoolClosed
from sandbox.runtime.layers import LayerSet, prepare_layers
from sandbox.runtime.sink import LogSink


class ZygoteLauncher:
    """Forks the environments of one function from its zygote.

    By default it starts a zygote of its own, confined by `sandbox` (default: the best
    isolation available) to the function's code, writable paths and network, relaunches it
    when it died, and stops it in `aclose()`. `zygote`: use that one instead (the caller owns
    it, and launched it with this function's code directory).
    """

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        zygote: Zygote | None = None,
        sandbox: SandboxPolicy | None = None,
    ) -> None:
        self._spec = spec
        self._sandbox = sandbox
        self._zygote = zygote
        self._owns_zygote = zygote is None
        self._lock = asyncio.Lock()
        self._closed = False
        self._layers: LayerSet | None = None

    @property
    def zygote(self) -> Zygote | None:
        """The zygote in use, once there is one."""
        return self._zygote

    async def start(self) -> None:
        await self._get_zygote()

    async def launch(self, *, provisioned: bool) -> ExecutionEnvironment:
        zygote = await self._get_zygote()
        return await ExecutionEnvironment.launch(zygote, self._spec, provisioned=provisioned)

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            if self._owns_zygote and self._zygote is not None:
                await self._zygote.aclose()

    async def _get_zygote(self) -> Zygote:
        async with self._lock:
            if self._closed:
                raise PoolClosed("the pool is closed")
            if self._zygote is None or (self._owns_zygote and not self._zygote.alive):
                if self._zygote is not None:
                    await self._zygote.aclose()
                spec = self._spec
                if spec.layers and self._layers is None:
                    self._layers = await prepare_layers(
                        spec.name, spec.layers, spec.layer_cache_dir
                    )
                self._zygote = await Zygote.launch(
                    sandbox=self._sandbox,
                    code_dirs=[spec.code_dir],
                    writable_dirs=spec.writable_paths,
                    network=spec.network,
                    identity=spec.name,
                    layers=self._layers,
                )
            return self._zygote


class PythonFunctionPool(EnvironmentPool[ExecutionEnvironment]):
    """The execution environments of one Python function version (see `EnvironmentPool` and
    `ZygoteLauncher` for `zygote` and `sandbox`).

    Use as `async with PythonFunctionPool(spec) as pool:` or call `aclose()`.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        log_sink: LogSink | None = None,
        zygote: Zygote | None = None,
        sandbox: SandboxPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._zygotes = ZygoteLauncher(spec, zygote=zygote, sandbox=sandbox)
        super().__init__(spec, self._zygotes, log_sink=log_sink, clock=clock)
        self.spec = spec

    @property
    def zygote(self) -> Zygote | None:
        """The zygote the environments are forked from, once it runs (for diagnostics)."""
        return self._zygotes.zygote
