"""A node's workers sharing one cache tier (a redis-server of its own) against each keeping its own.

Run by hand (pytest does not collect it):

    python tests/benchmarks/worker_tier_bench.py [--workers 2] [--objects 200] [--rounds 4]
        [--hot-rounds 3]

For `[cache] worker_tier = "redis-server"` and `"none"` in turn, starts `edge serve` with
WORKERS workers and a directory origin of OBJECTS small files, and fetches every object ROUNDS
times, each request on a new connection (the kernel spreads connections over the workers, as
a load balancer's would). Prints the hit ratio, the origin fetches (misses) and the median
latency per configuration. Then, if `wrk` is installed, the throughput of hits on one hot
object with 64 connections for 5 s under each configuration, HOT_ROUNDS times interleaved,
median (a hit in a worker's own tier never touches the shared one, so these should match).

Figures from a shared 2-core machine: compare runs of one machine, not absolute numbers.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def start(config: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "serve", str(config), "--listen=127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stderr is not None
    url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not url:
        line = proc.stderr.readline()
        if found := re.search(r"listening on (http://\S+)", line):
            url = found[1]
    stream = proc.stderr
    threading.Thread(target=lambda: list(stream), daemon=True).start()
    if not url:
        proc.kill()
        raise SystemExit("the edge did not start")
    return proc, url


def write_config(root: Path, tier: str, workers: int) -> Path:
    config = root / f"edge-{tier}.toml"
    config.write_text(
        f"[server]\nworkers = {workers}\n\n"
        f'[cache]\nworker_tier = "{tier}"\n\n'
        f'[origins.site]\ndirectory = "{root / "site"}"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\ncache = { default_ttl = 600 }\n'
    )
    return config


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def hit_ratio(root: Path, tier: str, args: argparse.Namespace) -> dict[str, float]:
    proc, url = start(write_config(root, tier, args.workers))
    try:
        results: list[str] = []
        latencies: list[float] = []
        for _ in range(args.rounds):
            for index in range(args.objects):
                with httpx.Client(timeout=10) as http:
                    started = time.perf_counter()
                    response = http.get(f"{url}/o{index}.html")
                    latencies.append(time.perf_counter() - started)
                results.append(response.headers["x-cache"])
        return {
            "hit_ratio": results.count("Hit from edge") / len(results),
            "misses": float(results.count("Miss from edge")),
            "p50_ms": statistics.median(latencies) * 1000,
        }
    finally:
        stop(proc)


def hot_rps(wrk: str, root: Path, tier: str, args: argparse.Namespace) -> float:
    """wrk on one stored object (1 s of warm-up, then 5 s measured)."""
    proc, url = start(write_config(root, tier, args.workers))
    try:
        target = f"{url}/o0.html"
        subprocess.run([wrk, "-t2", "-c64", "-d1s", target], capture_output=True, check=True)
        out = subprocess.run(
            [wrk, "-t2", "-c64", "-d5s", target], capture_output=True, text=True, check=True
        ).stdout
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        return float(found[1]) if found else 0.0
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--hot-rounds", type=int, default=3, help="wrk runs per tier (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="worker-tier-") as tmp:
        root = Path(tmp)
        (root / "site").mkdir()
        for index in range(args.objects):
            (root / "site" / f"o{index}.html").write_text(f"object {index}\n" * 20)
        tiers = ("redis-server", "none")
        rows = {tier: hit_ratio(root, tier, args) for tier in tiers}
        wrk = shutil.which("wrk")
        if wrk is not None:
            samples: dict[str, list[float]] = {tier: [] for tier in tiers}
            for _ in range(args.hot_rounds):  # interleaved: the machine's drift hits both
                for tier in tiers:
                    samples[tier].append(hot_rps(wrk, root, tier, args))
            for tier in tiers:
                rows[tier]["hot_rps"] = statistics.median(samples[tier])
    print(
        f"workers {args.workers}, {args.objects} objects x {args.rounds} rounds, "
        "a connection per request"
    )
    for tier, figures in rows.items():
        hot = f"   hot-object hits {figures['hot_rps']:8.0f} req/s" if "hot_rps" in figures else ""
        print(
            f"worker_tier = {tier:13} hit ratio {figures['hit_ratio']:6.1%}   origin fetches "
            f"{figures['misses']:5.0f}   p50 {figures['p50_ms']:5.2f} ms{hot}"
        )


if __name__ == "__main__":
    main()
