"""`edge bench`: load testing of an edge (or any HTTP/1.1 server) with a report.

A multi-process generator (uvloop, raw protocols) drives a closed or open load model; the
result merges the processes' HDR histograms, reads the edge's admin listener for what its
functions did (invocations, cold starts, throttles, concurrency, billed duration), prices
that traffic at AWS's published rates, and renders as JSON, HTML or a side-by-side compare.

The names below are imported on first use: `edge` (the CLI) registers the `bench` command
without paying for the load generator's imports on every start.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "render_html": "edge.bench.html",
    "Mix": "edge.bench.mix",
    "MixEntry": "edge.bench.mix",
    "MixError": "edge.bench.mix",
    "load_mix": "edge.bench.mix",
    "PricesError": "edge.bench.pricing",
    "load_prices": "edge.bench.pricing",
    "RESULT_SCHEMA": "edge.bench.runner",
    "BenchError": "edge.bench.runner",
    "BenchOptions": "edge.bench.runner",
    "Progress": "edge.bench.runner",
    "run_bench": "edge.bench.runner",
    "print_compare": "edge.bench.summary",
    "progress_view": "edge.bench.summary",
    "result_view": "edge.bench.summary",
    "EdgeStartFailed": "edge.bench.target",
    "started_edge": "edge.bench.target",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'edge.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
