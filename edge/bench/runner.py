"""A load test run: the load processes, their merged results, the admin listener's view.

The parent starts `processes` load processes (`generator.run_worker`), gives them a common
schedule on the system's monotonic clock, and merges what they send each second: counts, and
their HDR histograms in encoded form. Meanwhile it reads the edge's admin listener once a
second (concurrency, cold starts); before and after the run it takes the snapshots whose
difference says what the functions did.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

from edge.bench import histogram, pricing, scrape
from edge.bench.generator import WorkerPlan, run_worker
from edge.bench.mix import Mix, single

RESULT_SCHEMA = "edge-bench/1"
# The edge moves what it recorded into /metrics every half second: wait a little more than
# that after the load before the last snapshot.
_SETTLE_SECONDS = 1.2
_STARTUP_SECONDS = 0.6  # for the spawned load processes to import and connect


class BenchError(RuntimeError):
    """A run that could not be made (a bad target, a load process that died)."""


@dataclass(frozen=True)
class BenchOptions:
    url: str
    connections: int = 64
    rate: float | None = None
    duration_seconds: float | None = 10.0
    requests: int | None = None
    warmup_seconds: float = 2.0
    mix: Mix | None = None
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    admin_url: str | None = None
    prices: dict[str, Any] | None = None
    timeout_seconds: float = 30.0


@dataclass
class _Second:
    count: int = 0
    errors: int = 0
    server_errors: int = 0
    reports: int = 0
    histogram: HdrHistogram = field(default_factory=histogram.new_histogram)


@dataclass
class Progress:
    """What the terminal shows while a run goes."""

    elapsed_seconds: float
    total_seconds: float | None
    requests: int
    requests_per_second: float
    errors: int
    latency_ms: dict[str, float]
    phase: str


def _split_target(url: str) -> tuple[str, int, str, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BenchError(f"expected an http:// URL, found {url!r} (HTTPS is not supported)")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, port, parts.netloc, path


def _plans(options: BenchOptions, mix: Mix, start_at: float) -> list[WorkerPlan]:
    host, port, netloc, _ = _split_target(options.url)
    processes = max(1, min(options.processes, options.connections))
    measure_at = start_at + options.warmup_seconds
    end_at = (
        measure_at + options.duration_seconds
        if options.requests is None and options.duration_seconds
        else None
    )
    requests = tuple(entry.raw(netloc) for entry in mix.entries)
    head_only = tuple(entry.method == "HEAD" for entry in mix.entries)
    cycle = tuple(mix.cycle())
    plans = []
    first = 0
    for index in range(processes):
        connections = options.connections // processes + (
            1 if index < options.connections % processes else 0
        )
        quota = None
        if options.requests is not None:
            quota = options.requests // processes + (
                1 if index < options.requests % processes else 0
            )
        plans.append(
            WorkerPlan(
                host=host,
                port=port,
                requests=requests,
                head_only=head_only,
                cycle=cycle,
                connections=connections,
                first_connection=first,
                total_connections=options.connections,
                rate=options.rate,
                start_at=start_at,
                measure_at=measure_at,
                end_at=end_at,
                requests_quota=quota,
                timeout_seconds=options.timeout_seconds,
            )
        )
        first += connections
    return plans


def run_bench(
    options: BenchOptions, on_progress: Callable[[Progress], None] | None = None
) -> dict[str, Any]:
    """Run the load test `options` describes; its result document (see `RESULT_SCHEMA`)."""
    _, _, _, path = _split_target(options.url)
    mix = options.mix or single(path)
    if options.connections < 1:
        raise BenchError("--connections: expected at least 1")
    try:
        scraper = scrape.AdminScraper(options.admin_url) if options.admin_url else None
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    before = scraper.snapshot() if scraper else None
    started_wall = datetime.datetime.now(datetime.UTC)
    start_at = time.monotonic() + _STARTUP_SECONDS
    plans = _plans(options, mix, start_at)
    # fork: a spawned process would import the whole CLI again (a third of a second of CPU
    # each, taken from the server under test). The children touch nothing of the parent's
    # but the plan and their pipe, and start their own event loop.
    context = multiprocessing.get_context("fork")
    pipes: list[Connection] = []
    processes = []
    for plan in plans:
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=run_worker, args=(plan, sender), daemon=True)
        process.start()
        sender.close()
        pipes.append(receiver)
        processes.append(process)
    measure_at = plans[0].measure_at
    end_at = plans[0].end_at
    total = histogram.new_histogram()
    seconds: dict[int, _Second] = {}
    statuses: dict[str, int] = {}
    xcache: dict[str, int] = {}
    errors: dict[str, int] = {}
    entries = [0] * len(mix.entries)
    count = 0
    error_count = 0
    generator_cpu = 0.0
    samples: list[scrape.Snapshot] = []
    timeline_admin: list[dict[str, float]] = []
    last_sample = 0.0
    open_pipes = list(pipes)
    finished_at = measure_at
    try:
        while open_pipes:
            ready = wait(open_pipes, timeout=0.25)
            for pipe in ready:
                assert isinstance(pipe, Connection)
                try:
                    kind, second, report = pipe.recv()
                except EOFError:
                    open_pipes.remove(pipe)
                    continue
                bucket = seconds.setdefault(second, _Second())
                bucket.reports += 1
                bucket.count += report["count"]
                count += report["count"]
                for key, value in report["statuses"].items():
                    statuses[key] = statuses.get(key, 0) + value
                    if key.startswith("5"):
                        bucket.server_errors += value
                for key, value in report["xcache"].items():
                    xcache[key] = xcache.get(key, 0) + value
                for key, value in report["errors"].items():
                    errors[key] = errors.get(key, 0) + value
                    if key != "unfinished":
                        bucket.errors += value
                        error_count += value
                for index, value in enumerate(report["entries"]):
                    entries[index] += value
                if report["histogram"]:
                    decoded = HdrHistogram.decode(report["histogram"].encode("ascii"))
                    total.add(decoded)
                    bucket.histogram.add(decoded)
                if kind == "final":
                    generator_cpu += report["cpu_seconds"]
                    open_pipes.remove(pipe)
                    finished_at = max(finished_at, time.monotonic())
            now = time.monotonic()
            if scraper is not None and now - last_sample >= 1.0 and now >= start_at:
                last_sample = now
                sample = scraper.snapshot()
                if sample is not None:
                    samples.append(sample)
                    timeline_admin.append(
                        {"t": round(now - measure_at, 2), **scrape.concurrency_sample(sample)}
                    )
            if on_progress is not None and now >= start_at:
                elapsed = now - measure_at
                on_progress(
                    Progress(
                        elapsed_seconds=elapsed,
                        total_seconds=None if end_at is None else end_at - measure_at,
                        requests=count,
                        requests_per_second=count / elapsed if elapsed > 0 else 0.0,
                        errors=error_count,
                        latency_ms=histogram.summary_ms(total),
                        phase="warmup" if elapsed < 0 else "load",
                    )
                )
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise BenchError(f"a load process exited with status {dead[0].exitcode}")
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()
        for pipe in pipes:
            pipe.close()
    failed = [process.exitcode for process in processes if process.exitcode != 0]
    if failed:
        raise BenchError(f"a load process exited with status {failed[0]}")
    elapsed = (end_at if end_at is not None else finished_at) - measure_at
    after = None
    if scraper is not None:
        time.sleep(_SETTLE_SECONDS)
        after = scraper.snapshot()
        scraper.close()
    result: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "started_at": started_wall.isoformat(timespec="seconds"),
        "target": options.url,
        "load": {
            "model": "open" if options.rate else "closed",
            "connections": options.connections,
            "rate": options.rate,
            "duration_seconds": options.duration_seconds if options.requests is None else None,
            "requests": options.requests,
            "warmup_seconds": options.warmup_seconds,
            "processes": len(plans),
            # The load processes' own CPU while measuring: what they took from a server that
            # shares the machine.
            "generator_cpu_seconds": round(generator_cpu, 3),
            "generator_cpu_us_per_request": round(generator_cpu / count * 1e6, 2) if count else 0,
        },
        "elapsed_seconds": round(elapsed, 3),
        "requests": count,
        "requests_per_second": round(count / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": histogram.summary_ms(total),
        "latency_distribution": histogram.distribution_ms(total),
        "latency_histogram": histogram.encode(total),
        "statuses": dict(sorted(statuses.items())),
        # Requests still out when the run ended: neither answered nor failed.
        "unfinished": errors.pop("unfinished", 0),
        "errors": dict(sorted(errors.items())),
        "x_cache": _cache_mix(xcache, count),
        "mix": [
            {"name": entry.label, "weight": entry.weight, "requests": entries[index]}
            for index, entry in enumerate(mix.entries)
        ],
        "timeline": [
            {
                "second": second,
                "requests": bucket.count,
                "errors": bucket.errors + bucket.server_errors,
                **{
                    key: value
                    for key, value in histogram.summary_ms(bucket.histogram).items()
                    if key in ("p50", "p90", "p99", "max")
                },
            }
            for second, bucket in sorted(seconds.items())
            if second >= 0
        ],
        "admin": None,
    }
    if scraper is not None:
        result["admin"] = _admin_section(
            options, before, after, samples, timeline_admin, elapsed, count, scraper.last_error
        )
    return result


def _cache_mix(xcache: dict[str, int], count: int) -> dict[str, Any]:
    """The X-Cache values seen, with the hit ratio, function-generated and error shares."""
    hits = sum(n for key, n in xcache.items() if key.lower().startswith(("hit", "refreshhit")))
    generated = sum(n for key, n in xcache.items() if "generatedresponse" in key.lower())
    errors = sum(
        n
        for key, n in xcache.items()
        if key.lower().startswith(("error", "lambda", "function"))
        and "generatedresponse" not in key.lower()
    )

    def share(n: int) -> float:
        return round(n / count, 4) if count else 0.0

    return {
        "values": dict(sorted(xcache.items(), key=lambda item: -item[1])),
        "hit_ratio": share(hits),
        "function_generated_ratio": share(generated),
        "error_ratio": share(errors),
        "without_header": max(0, count - sum(xcache.values())),
    }


def _admin_section(
    options: BenchOptions,
    before: scrape.Snapshot | None,
    after: scrape.Snapshot | None,
    samples: list[scrape.Snapshot],
    timeline: list[dict[str, float]],
    elapsed: float,
    count: int,
    last_error: str,
) -> dict[str, Any]:
    if before is None or after is None:
        return {"url": options.admin_url, "error": last_error or "no metrics"}
    functions = scrape.function_report(before, after, samples)
    prices = options.prices or pricing.load_prices()
    # Warmup traffic reaches the edge's counters too: the cost is of what the edge counted.
    counted = sum(scrape.edge_totals(before, after)["statuses"].values()) or count
    return {
        "url": options.admin_url,
        "edge": scrape.edge_totals(before, after),
        "functions": functions,
        "cost": pricing.estimate(
            functions,
            prices,
            seconds=elapsed + options.warmup_seconds,
            viewer_requests=counted,
        ),
        "timeline": timeline,
    }
