"""`edge bench` against wrk: is our load generator the bottleneck?

Drives two servers with the same load, wrk and `edge bench` in turn, several interleaved
rounds (the machine is shared and noisy; the order alternates each round), and prints both
req/s side by side, per round and as medians, with the ratio of the medians (ours / wrk):

- the edge's fastest row: cache hits, 2 edge workers, a 1 KB body (the setup of
  proxy_bench.py's `edge cache hits` row, warmed until a probe shows a hit);
- nginx serving the same 1 KB file (2 workers): the generator's own ceiling on this machine.

Goal: at least 0.90 on the edge row. The nginx row says how far either generator can go
here; on a 2-core machine both generators share the cores with the server, so a generator
that costs more CPU per request leaves the server less.

    python tests/benchmarks/bench_vs_wrk.py [--rounds 3] [--duration 5] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proxy_bench as pb  # the team's server setup, reused as is
from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
GOAL = 0.90


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, connections: int, seconds: int, threads: int) -> tuple[float, float]:
    """(req/s, the generator's CPU µs per request)."""
    wrk = shutil.which("wrk")
    assert wrk is not None
    cpu = _children_cpu()
    done = subprocess.run(
        [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    cpu = _children_cpu() - cpu
    result = pb.parse_wrk(done.stdout)
    return result.requests_per_second, cpu / max(1, result.requests) * 1e6


def run_ours(
    url: str, connections: int, seconds: int, processes: int | None, scratch: Path
) -> tuple[float, float]:
    """(req/s, the generator's CPU µs per request while measuring)."""
    out = scratch / "ours.json"
    argv = [sys.executable, "-m", "edge.cli", "bench", url, "-c", str(connections)]
    argv += ["-d", f"{seconds}s", "--warmup", "1s", "--json", str(out)]
    if processes:
        argv += ["-p", str(processes)]
    subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    result = json.loads(out.read_text())
    if result["errors"]:
        console.print(f"[yellow]edge bench saw errors: {result['errors']}[/]")
    # Its own figure: the load processes' CPU while measuring (start-up and warmup are not
    # load on the server; wrk's start-up is negligible).
    return float(result["requests_per_second"]), result["load"]["generator_cpu_us_per_request"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--processes", type=int, help="edge bench processes (default: cores)")
    parser.add_argument("--rows", default="edge,nginx", help="edge,nginx (comma-separated)")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("nginx") is None:
        console.print("[red]wrk and nginx are needed (apt-get install wrk nginx-light)[/]")
        return 1
    rows = args.rows.split(",")
    figures: dict[str, dict[str, list[float]]] = {row: {"wrk": [], "ours": []} for row in rows}
    cpu: dict[str, dict[str, list[float]]] = {row: {"wrk": [], "ours": []} for row in rows}
    with tempfile.TemporaryDirectory(prefix="bench-vs-wrk-") as tmp:
        bench = pb.Bench(Path(tmp), 2, shutil.which("nginx"), engine_flag=True)
        bench.prepare()
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        try:
            started = {}
            if "edge" in rows:
                started["edge"] = pb.start_edge_cache(bench).url + pb.FILE_PATH
            if "nginx" in rows:
                started["nginx"] = pb.start_nginx_origin(bench).url + pb.FILE_PATH
            console.print(
                f"{args.connections} connections, {args.duration} s a run, {args.rounds} rounds,"
                f" wrk -t{args.threads}; edge bench -p {args.processes or os.cpu_count()};"
                f" {os.cpu_count()} CPUs"
            )
            for number in range(args.rounds):
                for row, url in started.items():
                    order = ("wrk", "ours") if number % 2 == 0 else ("ours", "wrk")
                    for tool in order:
                        if tool == "wrk":
                            rate, us = run_wrk(url, args.connections, args.duration, args.threads)
                        else:
                            rate, us = run_ours(
                                url, args.connections, args.duration, args.processes, scratch
                            )
                        figures[row][tool].append(rate)
                        cpu[row][tool].append(us)
                        time.sleep(0.5)
                    console.print(
                        f"round {number + 1} {row}: wrk {figures[row]['wrk'][-1]:,.0f}, "
                        f"ours {figures[row]['ours'][-1]:,.0f} req/s; generator CPU per "
                        f"request: wrk {cpu[row]['wrk'][-1]:.1f} µs, "
                        f"ours {cpu[row]['ours'][-1]:.1f} µs"
                    )
        finally:
            bench.close()
    table = Table(
        "row",
        "wrk req/s",
        "edge bench req/s",
        "ours / wrk",
        "generator CPU µs/req (wrk, ours)",
        "rounds (wrk:ours)",
        caption="medians over the rounds; the ratio is of the medians",
    )
    status = 0
    for row in rows:
        wrk_median = statistics.median(figures[row]["wrk"])
        ours_median = statistics.median(figures[row]["ours"])
        ratio = ours_median / wrk_median if wrk_median else 0.0
        label = {"edge": "edge cache hits (2 workers, 1 KB)", "nginx": "nginx file (1 KB)"}[row]
        verdict = f"{ratio:.2f}"
        if row == "edge":
            verdict += " [green]ok[/]" if ratio >= GOAL else f" [red]< {GOAL}[/]"
        table.add_row(
            label,
            f"{wrk_median:,.0f}",
            f"{ours_median:,.0f}",
            verdict,
            f"{statistics.median(cpu[row]['wrk']):.1f}, {statistics.median(cpu[row]['ours']):.1f}",
            " / ".join(
                f"{w:,.0f}:{o:,.0f}"
                for w, o in zip(figures[row]["wrk"], figures[row]["ours"], strict=True)
            ),
        )
    console.print(table)
    return status


if __name__ == "__main__":
    sys.exit(main())
