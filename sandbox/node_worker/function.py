"""A Node.js function version behind the runtime seam: the pool of its `node` environments.

`NodeFunctionPool(spec)` is an `EnvironmentPool` whose launcher (`NodeLauncher`) keeps a
pre-started process ready: the pool decides when and how many, the launcher how.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sandbox.node_worker.confinement import ConfinementPolicy
from sandbox.node_worker.environment import NodeEnvironment
from sandbox.node_worker.launcher import NodeLauncher
from sandbox.node_worker.spec import NodeFunctionSpec
from sandbox.pool import EnvironmentPool
from sandbox.runtime.sink import LogSink


class NodeFunctionPool(EnvironmentPool[NodeEnvironment]):
    """The execution environments of one Node.js function version (see `EnvironmentPool`;
    `policy` is the edge's `[sandbox]` policy, see `confinement`).

    Use as `async with NodeFunctionPool(spec) as pool:` or call `aclose()`.
    """

    def __init__(
        self,
        spec: NodeFunctionSpec,
        *,
        log_sink: LogSink | None = None,
        policy: ConfinementPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.launcher = NodeLauncher(spec, policy=policy)
        super().__init__(spec, self.launcher, log_sink=log_sink, clock=clock)
        self.spec = spec
