"""The function registry: one execution-environment pool per configured function.

Pools start with the app (their zygote is forked from a fresh interpreter once, so the first
request does not pay for it) and stop with it. Each invocation's Lambda log (START .. REPORT)
goes to the log sink, by default the edge's stderr, as Lambda writes it to CloudWatch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edge.config import EdgeConfig, FunctionConfig
from sandbox.pool import PythonFunctionPool
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.environment import InvocationResult
from sandbox.python_worker.spec import FunctionSpec

LogSink = Callable[[str], None]


def stderr_sink(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """What the pipeline needs to know of a function besides invoking it."""

    name: str
    version: str
    memory_mb: int
    timeout_seconds: float | None  # None: the trigger's limit


def spec_for(name: str, function: FunctionConfig, *, timeout_seconds: float) -> FunctionSpec:
    """The sandbox's description of function `name` (config already resolved paths)."""
    code_dir, handler = function.code_dir_and_handler
    return FunctionSpec(
        name=name,
        handler=handler,
        code_dir=code_dir,
        memory_mb=function.memory,
        timeout_seconds=function.timeout or timeout_seconds,
        environment=dict(function.environment),
        max_concurrency=function.max_concurrency,
        idle_seconds=function.idle_timeout,
        provisioned=min(function.provisioned, function.max_concurrency),
    )


class FunctionRegistry:
    """Pools by function name; `invoke` is the one door to the sandbox.

    All pools fork their environments from one shared zygote, started by `start()` (one
    fresh interpreter for the whole edge process, not one per function).
    """

    def __init__(self, config: EdgeConfig, *, log_sink: LogSink | None = stderr_sink) -> None:
        self._specs: dict[str, FunctionSpec] = {}
        self._pools: dict[str, PythonFunctionPool] = {}
        self._log_sink = log_sink
        self._zygote: Zygote | None = None
        self.info: dict[str, FunctionInfo] = {}
        # A function used on origin triggers may run up to the origin limit; the trigger's own
        # limit is applied per invocation as a deadline.
        longest = max(config.lambda_edge.viewer_timeout, config.lambda_edge.origin_timeout)
        for name, function in config.functions.items():
            spec = spec_for(name, function, timeout_seconds=longest)
            self._specs[name] = spec
            self.info[name] = FunctionInfo(name, spec.version, function.memory, function.timeout)

    @property
    def pools(self) -> Mapping[str, PythonFunctionPool]:
        return self._pools

    async def start(self) -> None:
        if self._specs and self._zygote is None:
            self._zygote = await Zygote.launch()
        for name, spec in self._specs.items():
            if name not in self._pools:
                pool = PythonFunctionPool(spec, log_sink=self._log_sink, zygote=self._zygote)
                self._pools[name] = pool
                await pool.start()

    async def invoke(
        self,
        name: str,
        event: bytes,
        *,
        request_id: str,
        deadline: float,
        timeout_seconds: float | None = None,
    ) -> InvocationResult:
        """Run function `name` once; raises the sandbox's errors (see sandbox.errors)."""
        return await self._pools[name].invoke(
            event, request_id=request_id, deadline=deadline, timeout_seconds=timeout_seconds
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        if self._zygote is not None:
            await self._zygote.aclose()
            self._zygote = None
