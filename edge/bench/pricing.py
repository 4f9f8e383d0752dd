"""What a run's function traffic would cost on AWS, and whether it would fit AWS's limits.

Lambda@Edge bills each invocation (per request) and its duration (GB-seconds: the billed
milliseconds, each invocation rounded up to 1 ms, times the configured memory); CloudFront
Functions bill per invocation only. The prices and quotas are a data file (`prices.toml`
beside this module: AWS's published figures and the date they were taken), which
`--prices FILE` replaces.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")


class PricesError(ValueError):
    """A price file that cannot be used."""


def load_prices(path: Path | None = None) -> dict[str, Any]:
    """The price table in `path` (default: the bundled one), checked for the keys used."""
    where = path or DEFAULT_PRICES
    try:
        table = tomllib.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PricesError(f"{where}: {exc}") from None
    required = {
        "lambda_edge": ("per_million_requests", "per_gb_second"),
        "cloudfront_functions": ("per_million_invocations",),
        "lambda": ("per_million_requests", "per_gb_second"),
        "limits": ("concurrent_executions",),
    }
    for section, keys in required.items():
        for key in keys:
            value = table.get(section, {}).get(key)
            if not isinstance(value, int | float):
                raise PricesError(f"{where}: expected a number at {section}.{key}")
    return table


def estimate(
    functions: dict[str, dict[str, Any]],
    prices: dict[str, Any],
    *,
    seconds: float,
    viewer_requests: int,
) -> dict[str, Any]:
    """Cost of the run's invocations by function and in total; the cost per million viewer
    requests at this mix; and the AWS limits the traffic would reach."""
    edge = prices["lambda_edge"]
    cff = prices["cloudfront_functions"]
    limits = prices.get("limits", {})
    by_function: dict[str, dict[str, Any]] = {}
    total = 0.0
    concurrency_needed = 0.0
    for key, fn in functions.items():
        billed_requests = max(0, int(fn["invocations"]) - int(fn["throttles"]))
        if str(fn.get("runtime", "")).startswith("cloudfront-js"):
            request_cost = billed_requests * cff["per_million_invocations"] / 1e6
            gb_seconds = 0.0
            duration_cost = 0.0
            product = "CloudFront Functions"
        else:
            request_cost = billed_requests * edge["per_million_requests"] / 1e6
            gb_seconds = fn["billed_ms"] / 1000 * fn["memory_mb"] / 1024
            duration_cost = gb_seconds * edge["per_gb_second"]
            product = "Lambda@Edge"
            # Little's law: the environments AWS would keep busy at this rate.
            if seconds > 0:
                concurrency_needed += fn["billed_ms"] / 1000 / seconds
        cost = request_cost + duration_cost
        total += cost
        by_function[key] = {
            "product": product,
            "billed_requests": billed_requests,
            "gb_seconds": round(gb_seconds, 6),
            "request_cost_usd": request_cost,
            "duration_cost_usd": duration_cost,
            "cost_usd": cost,
        }
    peak = max((int(fn["peak_concurrency"]) for fn in functions.values()), default=0)
    peak_total = sum(int(fn["peak_concurrency"]) for fn in functions.values())
    invocations = sum(int(fn["invocations"]) for fn in functions.values())
    cold_starts = max((int(fn["cold_starts"]) for fn in functions.values()), default=0)
    concurrency_limit = int(limits.get("concurrent_executions", 1000))
    scaling = int(limits.get("scaling_environments_per_10_seconds", 1000))
    rate_limit = int(limits.get("lambda_edge_requests_per_second", 10000))
    rate = invocations / seconds if seconds > 0 else 0.0
    warnings = []
    if max(peak_total, concurrency_needed) > concurrency_limit:
        warnings.append(
            f"concurrency {max(peak_total, round(concurrency_needed))} would exceed the "
            f"Region's default {concurrency_limit} concurrent executions: AWS would throttle"
        )
    if cold_starts and seconds > 0 and cold_starts / max(seconds, 10.0) * 10 > scaling:
        warnings.append(
            f"{cold_starts} new environments in {seconds:.0f} s is past the scaling rate "
            f"of {scaling} per function every 10 s"
        )
    if rate > rate_limit:
        warnings.append(
            f"{rate:.0f} invocations/s is past the Region's {rate_limit} requests/s quota"
        )
    return {
        "source": prices.get("source", ""),
        "as_of": prices.get("as_of", ""),
        "functions": by_function,
        "total_usd": total,
        "per_million_viewer_requests_usd": total / viewer_requests * 1e6 if viewer_requests else 0,
        "limits": {
            "concurrent_executions": concurrency_limit,
            "peak_concurrency": peak_total,
            "peak_concurrency_one_function": peak,
            "aws_concurrency_at_this_rate": round(concurrency_needed, 2),
            "invocations_per_second": round(rate, 1),
            "exceeds": bool(warnings),
            "warnings": warnings,
        },
    }
