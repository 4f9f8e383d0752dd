"""Prometheus metrics of invocation: concurrency, throttles, the async queue, and the
invocations of this process (the Invoke API's and asynchronous events') by function version.

A collector read at scrape time from the limiter, the dispatcher's counts, the last queue
statistics (refreshed by the admin app before each scrape) and plain tallies, so recording
costs a few dict operations.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from edge.invoke.concurrency import ConcurrencyLimiter
from edge.invoke.destinations import Outbox
from edge.invoke.dispatcher import Dispatcher
from edge.invoke.queue import QueueStats

# Seconds, as edge_function_duration_seconds counts them.
DURATION_BUCKETS = (
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


class _VersionTally:
    """One function version's invocations, errors and duration buckets."""

    __slots__ = ("buckets", "errors", "invocations", "seconds")

    def __init__(self) -> None:
        self.invocations = 0
        self.errors = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)


class InvokeMetrics(Collector):
    """`edge_concurrent_executions`, `edge_throttles`, `edge_async_*`, `edge_invocations`,
    `edge_invocation_errors`, `edge_invocation_duration_seconds`."""

    def __init__(
        self,
        limiter: ConcurrencyLimiter,
        *,
        dispatcher: Dispatcher | None = None,
        outbox: Outbox | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limiter = limiter
        self._dispatcher = dispatcher
        self._outbox = outbox
        self._clock = clock
        self.queue_stats = QueueStats(0, None, 0)
        self._versions: dict[tuple[str, str], _VersionTally] = {}

    def record_invocation(self, function: str, version: str, seconds: float, failed: bool) -> None:
        """One invocation that ran (a throttled one did not): `failed` for a function error,
        a timeout or a crash."""
        tally = self._versions.get((function, version))
        if tally is None:
            tally = self._versions[(function, version)] = _VersionTally()
        tally.invocations += 1
        tally.errors += failed
        tally.seconds += seconds
        tally.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1

    def collect(
        self,
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        limiter = self._limiter
        running = GaugeMetricFamily(
            "edge_concurrent_executions",
            "Invocations in flight (sync, async and edge triggers)",
            labels=["function"],
        )
        names = set(limiter.reserved) | {name for name, _ in limiter.throttles}
        in_flight = limiter.in_flight_by_function()
        for name in sorted(names | set(in_flight)):
            running.add_metric([name], in_flight.get(name, 0))
        yield running
        yield GaugeMetricFamily(
            "edge_concurrency_limit", "The node's concurrency limit", value=limiter.node_limit
        )
        throttles = CounterMetricFamily(
            "edge_throttles", "Invocations refused for concurrency", labels=["function", "reason"]
        )
        for (name, reason), count in sorted(limiter.throttles.items()):
            throttles.add_metric([name, reason], count)
        yield throttles
        stats = self.queue_stats
        yield GaugeMetricFamily(
            "edge_async_queue_depth", "Accepted asynchronous events not yet done", value=stats.depth
        )
        age = 0.0 if stats.oldest_enqueued_at is None else self._clock() - stats.oldest_enqueued_at
        yield GaugeMetricFamily(
            "edge_async_oldest_event_age_seconds",
            "Age of the oldest queued asynchronous event",
            value=max(0.0, age),
        )
        yield GaugeMetricFamily(
            "edge_async_outbox_depth", "Destination records not yet delivered", value=stats.outbox
        )
        yield from self._by_version()
        if self._dispatcher is not None:
            events = CounterMetricFamily(
                "edge_async_events", "Asynchronous event attempts by result", labels=["result"]
            )
            counts = self._dispatcher.counts
            for result in ("succeeded", "retried", "throttled", "failed", "expired"):
                events.add_metric([result], getattr(counts, result))
            yield events
        if self._outbox is not None:
            deliveries = CounterMetricFamily(
                "edge_destination_deliveries", "Destination records by result", labels=["result"]
            )
            outbox_counts = self._outbox.counts
            deliveries.add_metric(["delivered"], outbox_counts.delivered)
            deliveries.add_metric(["failed_attempt"], outbox_counts.failed_attempts)
            deliveries.add_metric(["dropped"], outbox_counts.dropped)
            yield deliveries

    def _by_version(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        labels = ["function", "version"]
        invocations = CounterMetricFamily(
            "edge_invocations", "Invocations by the Invoke API and async events", labels=labels
        )
        errors = CounterMetricFamily(
            "edge_invocation_errors", "Of those, function errors (timeouts too)", labels=labels
        )
        durations = HistogramMetricFamily(
            "edge_invocation_duration_seconds", "Their duration", labels=labels
        )
        for (function, version), tally in sorted(self._versions.items()):
            invocations.add_metric([function, version], tally.invocations)
            errors.add_metric([function, version], tally.errors)
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip([*DURATION_BUCKETS, float("inf")], tally.buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            durations.add_metric([function, version], buckets, tally.seconds)
        yield invocations
        yield errors
        yield durations
