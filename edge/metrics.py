"""Prometheus metrics of the proxy: requests, statuses, bytes, origin latency and errors.

Label children are cached so that recording a request costs a dict lookup and an increment.
With several worker processes, prometheus-client's multiprocess mode aggregates them (the
server sets PROMETHEUS_MULTIPROC_DIR before this module is imported).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
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


class ProxyMetrics:
    """The proxy's metric families, registered once per registry."""

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
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, family: Any, *labels: Any) -> Any:
        key = (id(family), *labels)
        child = self._children.get(key)
        if child is None:
            child = family.labels(*labels)
            self._children[key] = child
        return child

    def record_request(self, behavior: str, status: int, body_bytes: int, seconds: float) -> None:
        self._child(self.requests, behavior, status).inc()
        if body_bytes:
            self._child(self.response_bytes, behavior).inc(body_bytes)
        self._child(self.request_seconds, behavior).observe(seconds)

    def record_origin(self, origin: str, seconds: float) -> None:
        self._child(self.origin_seconds, origin).observe(seconds)

    def record_origin_error(self, origin: str, detail: str) -> None:
        self._child(self.origin_errors, origin, detail).inc()


def render_latest() -> tuple[bytes, str]:
    """The current metrics of this process, or of all workers in multiprocess mode."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
