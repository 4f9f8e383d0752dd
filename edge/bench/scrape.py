"""Reading the edge's admin listener: /metrics before, during and after a run.

A snapshot is every sample of the Prometheus text, keyed by name and labels. What a run did
is the difference of two snapshots. Functions are grouped by their `function` label and, when
the edge labels them so, by `version`; any other label (trigger, kind, reason...) is summed
over, so that labels added later do not break the reading.
"""

from __future__ import annotations

import http.client
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Snapshot:
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def select(self, name: str) -> Iterable[tuple[dict[str, str], float]]:
        for (sample_name, labels), value in self.samples.items():
            if sample_name == name:
                yield dict(labels), value

    def __sub__(self, before: Snapshot) -> Snapshot:
        return Snapshot(
            {key: value - before.samples.get(key, 0.0) for key, value in self.samples.items()}
        )


def parse_metrics(text: str) -> Snapshot:
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples[(sample.name, labels)] = float(sample.value)
    return Snapshot(samples)


class AdminScraper:
    """GET {admin}/metrics over one kept-alive connection with a short timeout; None when the
    listener cannot be read. (http.client: httpx would cost the run half a second of imports.)
    """

    def __init__(self, admin_url: str) -> None:
        parts = urlsplit(admin_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(
                f"expected the admin listener as http://HOST:PORT, found {admin_url!r}"
            )
        self.url = admin_url.rstrip("/") + "/metrics"
        self._address = (parts.hostname, parts.port or 80)
        self._connection: http.client.HTTPConnection | None = None
        self.last_error = ""

    def snapshot(self) -> Snapshot | None:
        for _ in range(2):  # once more on a fresh connection if the kept one was closed
            if self._connection is None:
                self._connection = http.client.HTTPConnection(*self._address, timeout=2.0)
            try:
                self._connection.request("GET", "/metrics")
                response = self._connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.last_error = f"{self.url}: {exc}"
                self.close()
                continue
            if response.status != 200:
                self.last_error = f"{self.url}: status {response.status}"
                return None
            return parse_metrics(body.decode("utf-8", "replace"))
        return None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _key(labels: dict[str, str]) -> str:
    """A function's key in a report: NAME (its `$LATEST`, or a family without versions), or
    NAME:VERSION for a published version."""
    version = labels.get("version")
    return (
        f"{labels['function']}:{version}"
        if version and version != "$LATEST"
        else labels["function"]
    )


def _sum_by_function(snapshot: Snapshot, name: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for labels, value in snapshot.select(name):
        if "function" in labels:
            key = _key(labels)
            totals[key] = totals.get(key, 0.0) + value
    return totals


def _quantile(buckets: list[tuple[float, float]], quantile: float) -> float:
    """histogram_quantile over cumulative (upper bound, count) buckets, linear in a bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return 0.0
    rank = quantile * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def function_durations(delta: Snapshot) -> dict[str, dict[str, float]]:
    """p50 and p99 (ms) of `edge_function_duration_seconds` by function, from its buckets."""
    by_function: dict[str, dict[float, float]] = {}
    for labels, value in delta.select("edge_function_duration_seconds_bucket"):
        if "function" not in labels:
            continue
        bound = float(labels["le"])
        buckets = by_function.setdefault(_key(labels), {})
        buckets[bound] = buckets.get(bound, 0.0) + value
    result: dict[str, dict[str, float]] = {}
    for key, buckets in by_function.items():
        ordered = sorted(buckets.items())
        result[key] = {
            "p50": round(_quantile(ordered, 0.50) * 1000, 3),
            "p99": round(_quantile(ordered, 0.99) * 1000, 3),
        }
    return result


def function_report(
    before: Snapshot, after: Snapshot, samples: list[Snapshot]
) -> dict[str, dict[str, float | int | str]]:
    """Per function (and version): what the run did, from the difference of two snapshots,
    with the peak concurrency from the edge's peak gauge and the samples taken meanwhile."""
    delta = after - before
    invocations = _sum_by_function(delta, "edge_function_invocations_total")
    errors = _sum_by_function(delta, "edge_function_errors_total")
    cold = _sum_by_function(delta, "edge_function_cold_starts_total")
    throttles = _sum_by_function(delta, "edge_function_throttles_total")
    billed = _sum_by_function(delta, "edge_function_billed_duration_milliseconds_total")
    peak_before = _sum_by_function(before, "edge_function_concurrent_executions_peak")
    peak_after = _sum_by_function(after, "edge_function_concurrent_executions_peak")
    durations = function_durations(delta)
    sampled: dict[str, float] = {}
    for snapshot in samples:
        for key, value in _sum_by_function(snapshot, "edge_function_concurrent_executions").items():
            sampled[key] = max(sampled.get(key, 0.0), value)
    runtimes: dict[str, tuple[str, float]] = {}
    for labels, value in after.select("edge_function_memory_mb"):
        if "function" in labels:
            runtimes[labels["function"]] = (labels.get("runtime", ""), value)
    report: dict[str, dict[str, float | int | str]] = {}
    # Functions the run invoked (a function that existed before but saw nothing is left out).
    for key in sorted(k for k in set(invocations) | set(throttles) if invocations.get(k)):
        name = key.partition(":")[0]
        runtime, memory = runtimes.get(name, ("", 128.0))
        # A peak gauge that rose during the run was reached during it; one that did not
        # only bounds it: the samples taken each second then say more.
        rose = peak_after.get(key, 0.0) > peak_before.get(key, 0.0)
        peak = max(peak_after.get(key, 0.0) if rose else 0.0, sampled.get(key, 0.0))
        report[key] = {
            "function": name,
            "version": key.partition(":")[2],
            "runtime": runtime,
            "memory_mb": int(memory),
            "invocations": int(invocations.get(key, 0)),
            "errors": int(errors.get(key, 0)),
            "cold_starts": int(cold.get(key, 0)),
            "throttles": int(throttles.get(key, 0)),
            "peak_concurrency": int(peak),
            "duration_p50_ms": durations.get(key, {}).get("p50", 0.0),
            "duration_p99_ms": durations.get(key, {}).get("p99", 0.0),
            "billed_ms": int(billed.get(key, 0)),
        }
    return report


def edge_totals(before: Snapshot, after: Snapshot) -> dict[str, dict[str, int]]:
    """The edge's own counts of the run: requests by status, by X-Cache result."""
    delta = after - before
    statuses: dict[str, int] = {}
    for labels, value in delta.select("edge_requests_total"):
        status = labels.get("status", "")
        statuses[status] = statuses.get(status, 0) + int(value)
    results: dict[str, int] = {}
    for labels, value in delta.select("edge_cache_results_total"):
        result = labels.get("result", "")
        results[result] = results.get(result, 0) + int(value)
    return {
        "statuses": {k: v for k, v in sorted(statuses.items()) if v},
        "cache_results": {k: v for k, v in sorted(results.items()) if v},
    }


def concurrency_sample(snapshot: Snapshot) -> dict[str, float]:
    """In flight by function now, and cumulative cold starts and throttles (for the plots)."""
    return {
        **{
            f"in_flight:{key}": value
            for key, value in _sum_by_function(
                snapshot, "edge_function_concurrent_executions"
            ).items()
        },
        "cold_starts": sum(_sum_by_function(snapshot, "edge_function_cold_starts_total").values()),
        "throttles": sum(_sum_by_function(snapshot, "edge_function_throttles_total").values()),
        "invocations": sum(_sum_by_function(snapshot, "edge_function_invocations_total").values()),
    }
