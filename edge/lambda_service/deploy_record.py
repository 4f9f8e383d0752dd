"""A gradual deployment's record and rules: its states, the counts a step is judged on, the
thresholds that fire an alarm, and the document that is persisted and shown. Pure: no clock,
no I/O.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.lambda_service.strategies import Step, Strategy, parse_strategy

IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
STOPPED = "Stopped"
OUTCOMES = (SUCCEEDED, FAILED, STOPPED)

BEFORE_ALLOW_TRAFFIC = "BeforeAllowTraffic"
ALLOW_TRAFFIC = "AllowTraffic"
AFTER_ALLOW_TRAFFIC = "AfterAllowTraffic"
END = "End"


@dataclass(frozen=True, slots=True)
class Sample:
    """A version's counts since the edge started (cumulative): invocations, errors,
    throttles, and durations as histogram buckets (upper bound in seconds, cumulative count)."""

    invocations: float = 0.0
    errors: float = 0.0
    throttles: float = 0.0
    duration_buckets: tuple[tuple[float, float], ...] = ()

    def since(self, earlier: Sample) -> Sample:
        """The counts between `earlier` and this sample (a counter that went back, as after a
        restart of the process that counted, counts from zero)."""
        before = dict(earlier.duration_buckets)
        buckets = tuple(
            (bound, _delta(count, before.get(bound, 0.0))) for bound, count in self.duration_buckets
        )
        return Sample(
            _delta(self.invocations, earlier.invocations),
            _delta(self.errors, earlier.errors),
            _delta(self.throttles, earlier.throttles),
            buckets,
        )

    def quantile_seconds(self, q: float) -> float | None:
        """The `q` quantile of the durations, interpolated within its bucket as Prometheus's
        histogram_quantile does; None without observations."""
        buckets = sorted(self.duration_buckets)
        if not buckets or buckets[-1][1] <= 0:
            return None
        rank = q * buckets[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in buckets:
            if count >= rank:
                if bound == float("inf"):
                    return lower_bound
                if count == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                    count - lower_count
                )
            lower_bound, lower_count = bound, count
        return lower_bound


def _delta(now: float, before: float) -> float:
    return now - before if now >= before else now


# What the monitor reads: a version's counts (`sample(function, version)`).
Sampler = Callable[[str, str], Sample]


# -- the deployment's record -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When the new version's metrics over a step roll the deployment back (None: not checked).
    The error rate and p99 are judged once the step saw `min_invocations` of the new version;
    throttles always."""

    max_error_rate: float | None = 0.05
    max_throttles: int | None = None
    max_p99_ms: float | None = None
    min_invocations: int = 20


@dataclass
class Deployment:
    """One deployment, as persisted and shown by the admin API."""

    id: str
    function: str
    alias: str
    from_version: str
    to_version: str
    strategy: str
    thresholds: Thresholds
    time_scale: float
    pre_traffic_hook: str | None
    post_traffic_hook: str | None
    created_at: float
    status: str = IN_PROGRESS
    phase: str = BEFORE_ALLOW_TRAFFIC
    step: int = 0
    weight: float = 0.0
    step_started_at: float | None = None
    next_step_at: float | None = None
    ended_at: float | None = None
    reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    # The cluster node that runs it ("" without a cluster).
    node: str = ""
    # Not persisted: the current step's counts per version, for progress.
    current: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def parsed_strategy(self) -> Strategy:
        return parse_strategy(self.strategy)

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.parsed_strategy.steps

    def to_json(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document.pop("current")
        return document

    def to_api(self, now: float) -> dict[str, Any]:
        """The admin API's document at time `now`: the record, times also in ISO, seconds to
        the next step, and the step's counts."""
        document = self.to_json()
        document["next_step_in_seconds"] = (
            None if self.next_step_at is None else round(max(0.0, self.next_step_at - now), 3)
        )
        document["steps"] = [
            {"weight": step.weight, "hold_seconds": step.hold_seconds * self.time_scale}
            for step in self.steps
        ]
        for key in ("created_at", "step_started_at", "next_step_at", "ended_at"):
            value = document[key]
            document[key.removesuffix("_at") + "_time"] = None if value is None else iso_time(value)
        document["current"] = self.current
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Deployment:
        values = dict(document)
        values["thresholds"] = Thresholds(**values["thresholds"])
        names = {f.name for f in dataclasses.fields(cls)} - {"current"}
        return cls(**{k: v for k, v in values.items() if k in names})


def iso_time(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DeploymentRequest:
    """What `POST /deployments` asks for."""

    function: str
    alias: str
    version: str
    strategy: str
    thresholds: Thresholds = Thresholds()
    time_scale: float = 1.0
    pre_traffic_hook: str | None = None
    post_traffic_hook: str | None = None


def alarm_reason(step: Sample, thresholds: Thresholds) -> str | None:
    """Why the new version's counts over a step fire an alarm, or None."""
    if thresholds.max_throttles is not None and step.throttles > thresholds.max_throttles:
        return f"{int(step.throttles)} throttles (at most {thresholds.max_throttles})"
    if step.invocations < max(1, thresholds.min_invocations):
        return None
    rate = step.errors / step.invocations
    if thresholds.max_error_rate is not None and rate > thresholds.max_error_rate:
        return (
            f"error rate {rate:.1%} over {int(step.invocations)} invocations "
            f"(at most {thresholds.max_error_rate:.1%})"
        )
    p99 = step.quantile_seconds(0.99)
    if thresholds.max_p99_ms is not None and p99 is not None and p99 * 1000 > thresholds.max_p99_ms:
        return f"p99 duration {p99 * 1000:.0f} ms (at most {thresholds.max_p99_ms:g} ms)"
    return None
