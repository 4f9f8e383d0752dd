"""Latency histograms: HDR histograms in microseconds, recorded in batches, merged encoded.

Each load process folds its latencies into an `HdrHistogram` once a second and sends it to
the parent in HdrHistogram's encoded form (compressed, base64), which the parent decodes and
adds: the merged histogram is exact to its 3 significant figures, whatever the process count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # an hour: anything slower is clamped to it
SIGNIFICANT_FIGURES = 3

# The percentiles a result reports, and their names in it.
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def fold(histogram: HdrHistogram, values_us: Sequence[int]) -> None:
    """Add `values_us` to `histogram`: HdrHistogram.record_value's arithmetic, inlined (a
    third of its cost, measured), with the totals updated once."""
    if not values_us:
        return
    mask = histogram.sub_bucket_mask
    unit = histogram.unit_magnitude
    half_magnitude = histogram.sub_bucket_half_count_magnitude
    shift = half_magnitude + 1 + unit
    half_count = histogram.sub_bucket_half_count
    counts = histogram.counts
    for value in values_us:
        if value > HIGHEST_US:
            value = HIGHEST_US
        elif value < 0:
            value = 0
        bucket = (value | mask).bit_length() - shift
        counts[((bucket + 1) << half_magnitude) + (value >> (bucket + unit)) - half_count] += 1
    histogram.total_count += len(values_us)
    low = max(0, min(values_us))
    high = min(HIGHEST_US, max(values_us))
    histogram.min_value = min(histogram.min_value, low)
    histogram.max_value = max(histogram.max_value, high)


def encode(histogram: HdrHistogram) -> str:
    encoded: bytes = histogram.encode()
    return encoded.decode("ascii")


def merge(target: HdrHistogram, encoded: str) -> None:
    """Decode one process's histogram and add it to `target`."""
    if encoded:
        target.add(HdrHistogram.decode(encoded.encode("ascii")))


def decode(encoded: str) -> HdrHistogram:
    histogram = new_histogram()
    merge(histogram, encoded)
    return histogram


def summary_ms(histogram: HdrHistogram) -> dict[str, float]:
    """min, mean, p50 ... p99.9 and max in milliseconds (zeros when nothing was recorded)."""
    if histogram.get_total_count() == 0:
        return {"min": 0.0, "mean": 0.0, **{name: 0.0 for name, _ in PERCENTILES}, "max": 0.0}
    result = {"min": histogram.get_min_value() / 1000, "mean": histogram.get_mean_value() / 1000}
    for name, percentile in PERCENTILES:
        result[name] = histogram.get_value_at_percentile(percentile) / 1000
    result["max"] = histogram.get_max_value() / 1000
    return {key: round(value, 3) for key, value in result.items()}


def distribution_ms(histogram: HdrHistogram) -> list[list[float]]:
    """[percentile, latency ms] points of the whole distribution (a percentile plot)."""
    if histogram.get_total_count() == 0:
        return []
    iterator: Any = histogram.get_percentile_iterator(5)
    return [
        [round(item.percentile_level_iterated_to, 5), item.value_iterated_to / 1000]
        for item in iterator
    ]
