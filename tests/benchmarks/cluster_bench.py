"""What admission costs per invocation: in one process, across a node's workers, through Redis.

    python tests/benchmarks/cluster_bench.py [--rounds 5] [--count 5000]

Each row takes and gives back one concurrency lease `--count` times (`async with
limiter.lease(name)`, the path every invocation takes) and prints the median cost per lease
over `--rounds` interleaved rounds:

- `local`: ConcurrencyLimiter in one process (one worker; the default before [cluster]);
- `shared`: the same with SharedCounts, the table a node's workers share (`workers > 1`);
- `redis`: ClusterLimiter against a redis-server on 127.0.0.1 started for the run (one Lua
  script call to admit, one ZREM to release), a reserved function and the account share;
- `redis, 8 at once`: eight leases taken concurrently, to show round trips overlap.

It also times a Redis PING alone, the floor of one round trip on this machine. The
redis-server listens on a free port on 127.0.0.1 with no persistence and is stopped by its PID.

`--e2e N` then measures whole requests: two real `edge serve` nodes on 127.0.0.1, one with
`[cluster]` and one without, each running a Python origin-request hook with reserved
concurrency, answer N sequential GETs each per round (rounds interleaved); it prints the
median latency of each and the difference, the cluster's cost per invocation as a viewer sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge.cluster import Cluster
from edge.cluster.concurrency import ClusterLimiter
from edge.invoke.concurrency import ConcurrencyLimiter
from edge.invoke.shared_counts import SharedCounts
from tests.redis_server import RedisServer

Row = Callable[[int], Awaitable[float]]


async def _leases(limiter: ConcurrencyLimiter, name: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        async with limiter.lease(name):
            pass
    return (time.perf_counter() - started) / count


async def _parallel(limiter: ConcurrencyLimiter, name: str, count: int, width: int) -> float:
    async def one(n: int) -> None:
        for _ in range(n):
            async with limiter.lease(name):
                pass

    started = time.perf_counter()
    await asyncio.gather(*(one(count // width) for _ in range(width)))
    return (time.perf_counter() - started) / (count // width * width)


def _e2e(tmp: Path, redis_url: str, rounds: int, count: int) -> None:
    import httpx

    from tests.conftest import EdgeProcess
    from tests.test_cluster import _config

    nodes = {}
    for name, url in (("alone", None), ("cluster", redis_url)):
        directory = tmp / name
        directory.mkdir()
        config = _config(directory, redis=url, node=name)
        nodes[name] = EdgeProcess([str(config), "--listen", "127.0.0.1:0"]).start(directory)
    try:
        latencies: dict[str, list[float]] = {name: [] for name in nodes}
        with httpx.Client(timeout=30) as http:
            for node in nodes.values():  # warm: environments started
                for _ in range(50):
                    http.get(f"{node.url}/slow?sleep=0")
            for _ in range(rounds):
                for name, node in nodes.items():
                    for _ in range(count):
                        started = time.perf_counter()
                        response = http.get(f"{node.url}/slow?sleep=0")
                        latencies[name].append(time.perf_counter() - started)
                        assert response.status_code == 200, response.status_code
    finally:
        for node in nodes.values():
            node.stop()
    alone = statistics.median(latencies["alone"])
    clustered = statistics.median(latencies["cluster"])
    print(f"whole request with a Python origin-request hook, median of {rounds} × {count}:")
    print(f"  without [cluster]  {alone * 1e6:9.1f} µs")
    print(f"  with [cluster]     {clustered * 1e6:9.1f} µs")
    print(f"  difference         {(clustered - alone) * 1e6:9.1f} µs ({clustered / alone:.3f}×)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--e2e", type=int, default=0, metavar="N")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    redis = RedisServer(tmp).start()
    try:
        reserved = {"fn": 100}
        local = ConcurrencyLimiter(1000, reserved)
        shared = ConcurrencyLimiter(1000, reserved, shared=SharedCounts(tmp / "counts.bin", 2))
        clustered = ClusterLimiter(1000, reserved, lease_seconds=10)
        cluster = Cluster(redis.url, node_id="bench")
        clustered.attach(cluster)
        await cluster.start()
        client = cluster.client()
        assert client is not None

        async def ping(count: int) -> float:
            started = time.perf_counter()
            for _ in range(count):
                await client.ping()
            return (time.perf_counter() - started) / count

        rows: dict[str, Row] = {
            "local (one process)": lambda n: _leases(local, "fn", n),
            "shared (a node's workers)": lambda n: _leases(shared, "fn", n),
            "redis, reserved function": lambda n: _leases(clustered, "fn", n),
            "redis, account share": lambda n: _leases(clustered, "other", n),
            "redis, 8 at once": lambda n: _parallel(clustered, "fn", n, 8),
            "redis PING (one round trip)": ping,
        }
        results: dict[str, list[float]] = {name: [] for name in rows}
        for row in rows.values():  # warm-up: scripts loaded, connections open
            await row(200)
        for _ in range(args.rounds):
            for name, row in rows.items():
                slow = name.startswith("redis")
                results[name].append(await row(args.count // 5 if slow else args.count))
        await cluster.aclose()
        if args.e2e:
            await asyncio.to_thread(_e2e, tmp, redis.url, args.rounds, args.e2e)
    finally:
        redis.stop()
    base = statistics.median(results["local (one process)"])
    print(f"per lease (acquire + release), median of {args.rounds} rounds:")
    for name, values in results.items():
        median = statistics.median(values)
        print(
            f"  {name:30} {median * 1e6:9.1f} µs  (range {min(values) * 1e6:.1f}–"
            f"{max(values) * 1e6:.1f}; {median / base:6.1f}× local)"
        )


if __name__ == "__main__":
    asyncio.run(main())
