"""Benchmark of the Python runtime (run by hand): warm round trip, environment start, and what
many concurrent invocations cost in processes and memory.

    python tests/benchmarks/worker_bench.py [--loop uvloop|asyncio] [-n 5000] [--starts 200]
                                            [--concurrency 64] [--burst-seconds 3]
                                            [--environments 2,64]

Warm round trip: `PythonFunctionPool.invoke` of a ~1 KB viewer-request event with a handler that
adds a header, measured from the async caller. Environment start: fork to the handler's module
imported (as the child measures it) and launch to ready (as the host sees it). Concurrency: for
each `max_environments` of `--environments` (in turn, several rounds), `--concurrency`
invocations kept in flight for `--burst-seconds`; shows invocations/s, the most environments
seen, their PSS (the zygote's included) and the CPU per invocation of this process and of the
environments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import orjson

from edge.events import EventType, sample_event
from sandbox.python_worker.environment import ExecutionEnvironment
from sandbox.python_worker.function import PythonFunctionPool
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.spec import FunctionSpec

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"


def _event() -> bytes:
    event = sample_event(EventType.VIEWER_REQUEST)  # AWS's sample, as `edge events` prints it
    headers = event["Records"][0]["cf"]["request"]["headers"]
    i = 0
    while len(orjson.dumps(event)) < 1024:
        headers[f"x-pad-{i}"] = [{"key": f"X-Pad-{i}", "value": "v" * 16}]
        i += 1
    return orjson.dumps(event)


def _percentiles(samples_us: list[float]) -> str:
    ordered = sorted(samples_us)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50:8.1f} us   p99 {p99:8.1f} us   (n={len(ordered)})"


async def bench(n: int, starts: int) -> None:
    event = _event()
    spec = FunctionSpec(
        name="bench", handler="basic.add_header", code_dir=FUNCTIONS, max_concurrency=4
    )
    async with PythonFunctionPool(spec) as pool:
        for _ in range(200):
            await pool.invoke(event)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            await pool.invoke(event)
            samples.append((time.perf_counter() - t0) * 1e6)
        print(f"warm invoke, {len(event)} B event:     {_percentiles(samples)}")

    zygote = await Zygote.launch(code_dirs=[FUNCTIONS], identity=spec.name)
    try:
        forked, observed = [], []
        for _ in range(starts):
            t0 = time.perf_counter()
            environment = await ExecutionEnvironment.launch(zygote, spec)
            await environment.wait_ready(10.0)
            observed.append((time.perf_counter() - t0) * 1e6)
            assert environment.start_ms is not None
            forked.append(environment.start_ms * 1000)
            environment.kill()
            await environment.wait_exited()
        print(f"start, fork -> module imported:  {_percentiles(forked)}")
        print(f"start, launch -> ready (host):   {_percentiles(observed)}")
    finally:
        await zygote.aclose()


def _on_cpu_ns(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/schedstat") as schedstat:
            return int(schedstat.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _pss_mb(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total_kib += int(line.split()[1])
        except OSError:
            pass
    return total_kib / 1024


async def concurrent_burst(spec: FunctionSpec, concurrency: int, seconds: float) -> str:
    """`concurrency` invocations in flight for `seconds` on one pool: one line of figures."""
    event = _event()
    async with PythonFunctionPool(spec) as pool:
        await asyncio.gather(*(pool.invoke(event) for _ in range(concurrency)))  # warm
        zygote = pool.zygote
        most, pss, done = 0, 0.0, 0
        before = {pid: _on_cpu_ns(pid) for pid in pool.environment_pids()}
        cpu_started, started = time.process_time(), time.perf_counter()
        stop = started + seconds

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await pool.invoke(event)
                done += 1

        async def watch() -> None:
            nonlocal most, pss
            while time.perf_counter() < stop:
                pids = pool.environment_pids()
                if len(pids) >= most:
                    most = len(pids)
                    pss = _pss_mb([*pids, *([zygote.pid] if zygote is not None else [])])
                await asyncio.sleep(0.1)

        await asyncio.gather(watch(), *(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        host_us = (time.process_time() - cpu_started) * 1e6 / max(done, 1)
        after = {pid: _on_cpu_ns(pid) for pid in pool.environment_pids()}
        environments_us = sum(v - before.get(k, 0) for k, v in after.items()) / 1e3 / max(done, 1)
        stats = pool.stats()
    return (
        f"{done / elapsed:8.0f} inv/s   environments (most) {most:3d}   PSS {pss:6.1f} MB   "
        f"CPU/inv host {host_us:5.1f} us + environments {environments_us:5.1f} us   "
        f"cold {stats.cold_starts} queued {stats.queued}"
    )


async def concurrency_rounds(
    concurrency: int, seconds: float, caps: list[int], rounds: int
) -> None:
    # A timeout long enough for `concurrency` cold starts at once on a busy machine.
    spec = FunctionSpec(
        name="bench",
        handler="basic.add_header",
        code_dir=FUNCTIONS,
        max_concurrency=concurrency,
        timeout_seconds=30.0,
    )
    for round_number in range(rounds):
        for cap in caps:
            line = await concurrent_burst(replace(spec, max_environments=cap), concurrency, seconds)
            print(f"round {round_number + 1}, max_environments {cap:3d}: {line}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--burst-seconds", type=float, default=3.0)
    parser.add_argument(
        "--environments",
        default=f"{len(os.sched_getaffinity(0))},64",
        help="max_environments values to compare under --concurrency, comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["round-trip", "concurrency"], default=None)
    args = parser.parse_args()
    print(f"event loop: {args.loop}")
    caps = [int(value) for value in args.environments.split(",")]

    async def everything() -> None:
        if args.only != "concurrency":
            await bench(args.n, args.starts)
        if args.only != "round-trip":
            await concurrency_rounds(args.concurrency, args.burst_seconds, caps, args.rounds)

    if args.loop == "uvloop":
        import uvloop

        uvloop.run(everything())
    else:
        asyncio.run(everything())


if __name__ == "__main__":
    main()
