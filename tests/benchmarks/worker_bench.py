"""Benchmark of the Python runtime (run by hand): warm round trip and environment start.

    python tests/benchmarks/worker_bench.py [--loop uvloop|asyncio] [-n 5000]

Warm round trip: `PythonFunctionPool.invoke` of a ~1 KB viewer-request event with a handler that
adds a header, measured from the async caller. Environment start: fork to the handler's module
imported (as the child measures it) and launch to ready (as the host sees it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--starts", type=int, default=200)
    args = parser.parse_args()
    print(f"event loop: {args.loop}")
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(bench(args.n, args.starts))
    else:
        asyncio.run(bench(args.n, args.starts))


if __name__ == "__main__":
    main()
