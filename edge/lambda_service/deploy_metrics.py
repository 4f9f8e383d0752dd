"""Metrics around deployments: what the rollback monitor reads of a version, and what the
deployer shows on `/metrics`.

`RegistrySampler` reads a function version's cumulative counts from the Prometheus registries
the admin listener scrapes (this process's, or every worker's in multiprocess mode): the
function invocation, error and duration families, and throttles. A sample with a `version`
label counts for that version only; a family without one counts for every version of the
function (the monitor then judges the function as a whole).

`DeploymentMetrics` is a collector: `edge_deployment_weight{function,alias}` (the new
version's share of the alias's latest deployment, 0..1) and `edge_deployments{outcome}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.lambda_service.deploy import Deployer
from edge.lambda_service.deploy_record import Sample

# The families a version's counts come from (sample names as exposed).
INVOCATIONS = ("edge_function_invocations_total", "edge_invocations_total")
ERRORS = ("edge_function_errors_total", "edge_invocation_errors_total")
THROTTLES = ("edge_throttles_total", "edge_function_throttles_total")
DURATION_BUCKETS = (
    "edge_function_duration_seconds_bucket",
    "edge_invocation_duration_seconds_bucket",
)


class RegistrySampler:
    """`sample(function, version)` over the registries `registries()` returns, after
    `flush()` (moves what the proxy recorded into its registry)."""

    def __init__(
        self,
        registries: Callable[[], Iterable[CollectorRegistry]],
        *,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self._registries = registries
        self._flush = flush

    def __call__(self, function: str, version: str) -> Sample:
        if self._flush is not None:
            self._flush()
        invocations = errors = throttles = 0.0
        buckets: dict[float, float] = {}
        for registry in self._registries():
            for family in registry.collect():
                for sample in family.samples:
                    labels = sample.labels
                    if labels.get("function") != function:
                        continue
                    if labels.get("version", version) != version:
                        continue
                    name = sample.name
                    if name in INVOCATIONS:
                        invocations += sample.value
                    elif name in ERRORS:
                        errors += sample.value
                    elif name in THROTTLES:
                        throttles += sample.value
                    elif name in DURATION_BUCKETS:
                        bound = float(labels["le"])
                        buckets[bound] = buckets.get(bound, 0.0) + sample.value
        return Sample(invocations, errors, throttles, tuple(sorted(buckets.items())))


class DeploymentMetrics(Collector):
    """The deployer's metric families, read at scrape time."""

    def __init__(self, deployer: Deployer) -> None:
        self._deployer = deployer

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        weight = GaugeMetricFamily(
            "edge_deployment_weight",
            "Share of the alias's traffic on the new version of its latest deployment (0..1)",
            labels=["function", "alias"],
        )
        for (function, alias), value in sorted(self._deployer.weights().items()):
            weight.add_metric([function, alias], value)
        yield weight
        outcomes = CounterMetricFamily(
            "edge_deployments", "Deployments ended since the edge started", labels=["outcome"]
        )
        for outcome, count in self._deployer.outcomes.items():
            outcomes.add_metric([outcome], count)
        yield outcomes


def deployment_registry(deployer: Deployer) -> CollectorRegistry:
    """A registry of the deployer's metrics, to add to the admin listener's scrape."""
    registry = CollectorRegistry()
    registry.register(DeploymentMetrics(deployer))
    return registry
