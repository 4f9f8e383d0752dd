"""The counters and gauges of one function version, as every runtime reports them to metrics."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.runtime.errors import (
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionTimeout,
)


@dataclass(frozen=True, slots=True)
class RuntimeStats:
    """A snapshot of a runtime's counters (totals since start) and gauges (now).

    `cold_starts`: invocations that needed a new environment (a process, a WASM instance);
    `warm_starts`: invocations served by one that already ran. `function_errors` counts every
    `FunctionError`, `timeouts`, `crashes` and `memory_exceeded` the kinds among them.
    `environments`: environments (or execution slots) that exist now, `busy` + `idle` of them
    (and those starting). `in_flight`: invocations admitted and not yet ended (Lambda's
    concurrency), `waiting` of them waiting for an environment now; `queued`: invocations
    that waited for one instead of starting one (Lambda would have cold-started them);
    `max_environments`: the most environments kept at once (0: the runtime has no such cap).
    """

    invocations: int
    cold_starts: int
    warm_starts: int
    throttles: int
    function_errors: int
    timeouts: int
    crashes: int
    memory_exceeded: int
    environments: int
    busy: int
    idle: int
    in_flight: int
    waiting: int
    queued: int
    max_environments: int


@dataclass(slots=True)
class Counters:
    """The totals a runtime keeps; `snapshot` adds its gauges."""

    invocations: int = 0
    cold_starts: int = 0
    warm_starts: int = 0
    throttles: int = 0
    function_errors: int = 0
    timeouts: int = 0
    crashes: int = 0
    memory_exceeded: int = 0
    queued: int = 0

    def count_error(self, error: FunctionError) -> None:
        """Count one failed invocation, by kind."""
        self.function_errors += 1
        if isinstance(error, FunctionTimeout):
            self.timeouts += 1
        elif isinstance(error, FunctionMemoryExceeded):
            self.memory_exceeded += 1
        elif isinstance(error, FunctionCrashed):
            self.crashes += 1

    def snapshot(
        self,
        *,
        environments: int,
        busy: int,
        idle: int,
        in_flight: int = 0,
        waiting: int = 0,
        max_environments: int = 0,
    ) -> RuntimeStats:
        return RuntimeStats(
            invocations=self.invocations,
            cold_starts=self.cold_starts,
            warm_starts=self.warm_starts,
            throttles=self.throttles,
            function_errors=self.function_errors,
            timeouts=self.timeouts,
            crashes=self.crashes,
            memory_exceeded=self.memory_exceeded,
            environments=environments,
            busy=busy,
            idle=idle,
            in_flight=in_flight,
            waiting=waiting,
            queued=self.queued,
            max_environments=max_environments,
        )
