"""Prometheus metrics of invocation: concurrency, throttles and the async queue.

A collector read at scrape time from the limiter, the dispatcher's counts and the last queue
statistics (refreshed by the admin app before each scrape), so recording costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edge.invoke.concurrency import ConcurrencyLimiter
from edge.invoke.destinations import Outbox
from edge.invoke.dispatcher import Dispatcher
from edge.invoke.queue import QueueStats


class InvokeMetrics(Collector):
    """`edge_concurrent_executions`, `edge_throttles`, `edge_async_*`."""

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

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
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
