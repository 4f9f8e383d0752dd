"""A custom-runtime function version behind the runtime seam: the pool of its environments.

`ProvidedFunctionPool(spec)` is an `EnvironmentPool` whose launcher (`ProvidedLauncher`) keeps
a pre-started agent ready: the pool decides when and how many, the launcher how.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sandbox.pool import EnvironmentPool
from sandbox.provided_worker.confinement import ConfinementPolicy
from sandbox.provided_worker.environment import ProvidedEnvironment
from sandbox.provided_worker.launcher import ProvidedLauncher
from sandbox.provided_worker.spec import ProvidedFunctionSpec
from sandbox.runtime.sink import LogSink


class ProvidedFunctionPool(EnvironmentPool[ProvidedEnvironment]):
    """The execution environments of one custom-runtime function version (see
    `EnvironmentPool`; `policy` is the edge's `[sandbox]` policy, see `confinement`).

    Use as `async with ProvidedFunctionPool(spec) as pool:` or call `aclose()`.
    """

    def __init__(
        self,
        spec: ProvidedFunctionSpec,
        *,
        log_sink: LogSink | None = None,
        policy: ConfinementPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.launcher = ProvidedLauncher(spec, policy=policy)
        super().__init__(spec, self.launcher, log_sink=log_sink, clock=clock)
        self.spec = spec
