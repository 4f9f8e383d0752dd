"""Prometheus metrics of the proxy: requests, statuses, bytes, origin latency and errors.

Label children are cached so that recording a request costs a dict lookup and an increment.
With several worker processes, prometheus-client's multiprocess mode aggregates them (the
CLI sets PROMETHEUS_MULTIPROC_DIR for prometheus-client before any import of it, and gives the
admin listener `multiprocess_registry` of that directory).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


class _Histogram:
    """Observations aggregated in plain Python until the next flush."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0


class _RequestTally:
    """The requests of one (behavior, status, result) since the last flush."""

    __slots__ = ("body_bytes", "count", "latency")

    def __init__(self, buckets: int) -> None:
        self.count = 0
        self.body_bytes = 0
        self.latency = _Histogram(buckets)


class ProxyMetrics:
    """The proxy's metric families, registered once per registry.

    Recording a request costs a few dict operations: counts and histogram buckets accumulate
    here and reach prometheus-client on `flush()` (the app flushes every half second and the
    admin listener before each scrape). Measured: observing directly cost ~28 µs a request,
    a quarter of the whole pipeline.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        self.requests = Counter(
            "edge_requests", "Viewer requests answered", ["behavior", "status"], registry=reg
        )
        self.response_bytes = Counter(
            "edge_response_body_bytes", "Body bytes sent to viewers", ["behavior"], registry=reg
        )
        self.request_seconds = Histogram(
            "edge_request_duration_seconds",
            "Time from request to last byte sent",
            ["behavior"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.origin_seconds = Histogram(
            "edge_origin_latency_seconds",
            "Time until an origin's response headers arrived",
            ["origin"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.origin_errors = Counter(
            "edge_origin_errors", "Origin failures by cause", ["origin", "detail"], registry=reg
        )
        self.cache_results = Counter(
            "edge_cache_results",
            "Requests by X-Cache result (Hit, RefreshHit, Miss, Error, ...)",
            ["behavior", "result"],
            registry=reg,
        )
        self.cache_result_bytes = Counter(
            "edge_cache_result_body_bytes",
            "Body bytes sent to viewers by X-Cache result",
            ["behavior", "result"],
            registry=reg,
        )
        self.function_invocations = Counter(
            "edge_function_invocations",
            "Function invocations by trigger and the version that ran",
            ["function", "trigger", "version"],
            registry=reg,
        )
        self.function_errors = Counter(
            "edge_function_errors",
            "Failed function invocations by kind (X-Cache kind and cause)",
            ["function", "trigger", "kind", "version"],
            registry=reg,
        )
        self.function_seconds = Histogram(
            "edge_function_duration_seconds",
            "Function invocation round trip, as the pipeline waited for it, by version",
            ["function", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        # What a load test needs to price a run and compare it with AWS's limits, by function
        # and version (throttles by function: a throttled invocation ran no version).
        self.function_cold_starts = Counter(
            "edge_function_cold_starts",
            "Invocations that needed a new execution environment (Init ran)",
            ["function", "version"],
            registry=reg,
        )
        self.function_throttles = Counter(
            "edge_function_throttles",
            "Edge-trigger invocations refused for concurrency, by ThrottleReason",
            ["function", "reason"],
            registry=reg,
        )
        self.function_warm_starts = Counter(
            "edge_function_warm_starts",
            "Invocations served by an environment that already ran (no Init)",
            ["function", "version"],
            registry=reg,
        )
        self.function_memory_used = Gauge(
            "edge_function_max_memory_used_mb",
            "The most memory an invocation used (REPORT's Max Memory Used) since the edge started",
            ["function", "version"],
            registry=reg,
            multiprocess_mode="max",
        )
        self._memory_peaks: dict[tuple[str, str], int] = {}
        self.function_billed_ms = Counter(
            "edge_function_billed_duration_milliseconds",
            "Billed duration: each invocation's duration rounded up to the next millisecond",
            ["function", "version"],
            registry=reg,
        )
        # With several workers each counts its own: the sum is an upper bound of the node's.
        self.function_concurrency = Gauge(
            "edge_function_concurrent_executions",
            "Edge-trigger invocations admitted and running now",
            ["function"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.function_concurrency_peak = Gauge(
            "edge_function_concurrent_executions_peak",
            "The most edge-trigger invocations running at once since the edge started",
            ["function"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.function_memory = Gauge(
            "edge_function_memory_mb",
            "A function's configured memory (what its GB-seconds are billed at)",
            ["function", "runtime"],
            registry=reg,
            multiprocess_mode="max",
        )
        self.function_environments = Gauge(
            "edge_function_environments",
            "Execution environments (processes, WASM slots) alive now, busy or idle",
            ["function", "state"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.cache_entries = Gauge(
            "edge_cache_entries",
            "Responses held in the cache now, by tier",
            ["tier"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.cache_bytes = Gauge(
            "edge_cache_bytes",
            "Bytes the cache holds now, by tier",
            ["tier"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._concurrency: Callable[[], Mapping[str, tuple[int, int]]] | None = None
        self._environments: Callable[[], Mapping[str, Any]] | None = None
        self._cache_stats: Callable[[], Any] | None = None
        self._counts: dict[tuple[Any, ...], float] = {}
        # Requests by (behavior, status, result): one dict entry a request updates, split into
        # the families it counts in at flush.
        self._requests: dict[tuple[str, int, str], _RequestTally] = {}
        self._histograms: dict[tuple[Any, ...], _Histogram] = {}
        self._bounds = list(_LATENCY_BUCKETS)

    def _observe(self, family: Any, seconds: float, *labels: str) -> None:
        key = (family, *labels)
        histogram = self._histograms.get(key)
        if histogram is None:
            histogram = self._histograms[key] = _Histogram(len(self._bounds) + 1)
        histogram.counts[bisect_left(self._bounds, seconds)] += 1
        histogram.total += seconds

    def record_request(
        self, behavior: str, status: int, body_bytes: int, seconds: float, result: str = "-"
    ) -> None:
        """One answered request; `result` is its X-Cache kind (Hit, RefreshHit, Miss, ...)."""
        key = (behavior, status, result)
        tally = self._requests.get(key)
        if tally is None:
            tally = self._requests[key] = _RequestTally(len(self._bounds) + 1)
        tally.count += 1
        tally.body_bytes += body_bytes
        tally.latency.counts[bisect_left(self._bounds, seconds)] += 1
        tally.latency.total += seconds

    def record_origin(self, origin: str, seconds: float) -> None:
        self._observe(self.origin_seconds, seconds, origin)

    def record_origin_error(self, origin: str, detail: str) -> None:
        key = (self.origin_errors, origin, detail)
        self._counts[key] = self._counts.get(key, 0) + 1

    def record_function(
        self,
        function: str,
        trigger: str,
        seconds: float,
        error_kind: str | None,
        version: str = "$LATEST",
        *,
        billed_ms: int = 0,
        cold_start: bool = False,
        memory_mb: int = 0,
    ) -> None:
        """One invocation at a trigger: `billed_ms` its billed duration (rounded up per
        invocation), `cold_start` whether it ran in a new environment (else, when it ran at
        all, `billed_ms` above 0, a warm start), `memory_mb` its Max Memory Used."""
        counts = self._counts
        key: tuple[Any, ...] = (self.function_invocations, function, trigger, version)
        counts[key] = counts.get(key, 0) + 1
        if error_kind is not None:
            key = (self.function_errors, function, trigger, error_kind, version)
            counts[key] = counts.get(key, 0) + 1
        if billed_ms:
            key = (self.function_billed_ms, function, version)
            counts[key] = counts.get(key, 0) + billed_ms
        if cold_start:
            key = (self.function_cold_starts, function, version)
            counts[key] = counts.get(key, 0) + 1
        elif billed_ms:
            key = (self.function_warm_starts, function, version)
            counts[key] = counts.get(key, 0) + 1
        if memory_mb > self._memory_peaks.get((function, version), 0):
            self._memory_peaks[(function, version)] = memory_mb
        self._observe(self.function_seconds, seconds, function, version)

    def record_throttle(self, function: str, reason: str) -> None:
        """An invocation refused for concurrency (also counted by `record_function`)."""
        key = (self.function_throttles, function, reason)
        self._counts[key] = self._counts.get(key, 0) + 1

    def describe_functions(self, memory_mb: Mapping[str, tuple[str, int]]) -> None:
        """Each function's (runtime, memory MB), for `edge_function_memory_mb`."""
        for name, (runtime, memory) in memory_mb.items():
            self.function_memory.labels(name, runtime).set(memory)

    def watch_environments(self, source: Callable[[], Mapping[str, Any]]) -> None:
        """Read each function's `RuntimeStats` (environments busy and idle) at each flush."""
        self._environments = source

    def watch_cache(self, source: Callable[[], Any]) -> None:
        """Read the cache's `CacheStats` (entries and bytes per tier) at each flush."""
        self._cache_stats = source

    def watch_concurrency(self, source: Callable[[], Mapping[str, tuple[int, int]]]) -> None:
        """Read (in flight, peak) by function from `source` at each flush."""
        self._concurrency = source

    def flush(self) -> None:
        """Move what was recorded into the prometheus-client metrics."""
        requests, self._requests = self._requests, {}
        for (behavior, status, result), tally in requests.items():
            self.requests.labels(behavior, status).inc(tally.count)
            self.cache_results.labels(behavior, result).inc(tally.count)
            if tally.body_bytes:
                self.response_bytes.labels(behavior).inc(tally.body_bytes)
                self.cache_result_bytes.labels(behavior, result).inc(tally.body_bytes)
            self._add_histogram(self.request_seconds.labels(behavior), tally.latency)
        counts, self._counts = self._counts, {}
        for (family, *labels), amount in counts.items():
            family.labels(*labels).inc(amount)
        histograms, self._histograms = self._histograms, {}
        for (family, *labels), histogram in histograms.items():
            self._add_histogram(family.labels(*labels), histogram)
        if self._concurrency is not None:
            for name, (in_flight, peak) in self._concurrency().items():
                self.function_concurrency.labels(name).set(in_flight)
                self.function_concurrency_peak.labels(name).set(peak)
        for (function, version), peak in self._memory_peaks.items():
            self.function_memory_used.labels(function, version).set(peak)
        if self._environments is not None:
            for name, stats in self._environments().items():
                self.function_environments.labels(name, "busy").set(stats.busy)
                self.function_environments.labels(name, "idle").set(stats.idle)
        if self._cache_stats is not None:
            cache = self._cache_stats()
            self.cache_entries.labels("memory").set(cache.entries)
            self.cache_entries.labels("disk").set(cache.disk_entries)
            self.cache_bytes.labels("memory").set(cache.memory_bytes)
            self.cache_bytes.labels("disk").set(cache.disk_bytes)

    @staticmethod
    def _add_histogram(child: Any, histogram: _Histogram) -> None:
        # prometheus-client keeps per-bucket counts (not cumulative) and the sum.
        for index, count in enumerate(histogram.counts):
            if count:
                child._buckets[index].inc(count)
        child._sum.inc(histogram.total)


ISOLATION_LEVELS = ("namespaces", "uid-only", "none")


def record_sandbox_isolation(registry: CollectorRegistry | None, level: str) -> None:
    """`edge_sandbox_isolation{level=...}`: 1 for the level Python functions run at, 0 for the
    others, so that an alert can fire on anything but namespaces. `registry` None: the
    multiprocess store (the value is the same in every process)."""
    gauge = Gauge(
        "edge_sandbox_isolation",
        "How Python functions are isolated from the edge (1: the level in force)",
        ["level"],
        registry=registry,
        multiprocess_mode="max",
    )
    for name in ISOLATION_LEVELS:
        gauge.labels(name).set(1 if name == level else 0)


def reload_counter(registry: CollectorRegistry | None) -> Counter:
    """`edge_config_reloads_total{outcome="applied"|"refused"}`: configuration reloads (SIGHUP,
    `--reload`, the management API), counted by each process that serves. `registry` None:
    the multiprocess store."""
    return Counter(
        "edge_config_reloads",
        "Configuration reloads by outcome (each serving process counts its own)",
        ["outcome"],
        registry=registry,
    )


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """A registry whose scrape reads every worker's metrics from prometheus-client's
    multiprocess `directory`."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def render_latest() -> tuple[bytes, str]:
    """The current metrics of this process's default registry."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
