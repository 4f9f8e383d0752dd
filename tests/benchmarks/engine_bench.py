"""The viewer listener's engines side by side: granian against hypercorn, in one run.

Run by hand (pytest does not collect it):

    python tests/benchmarks/engine_bench.py [--rounds 3] [--duration 5] [--connections 64]

Rows, each with 2 worker processes on uvloop, started, warmed, driven by
`wrk -t2 -cN -dDs` and stopped by its PID before the next starts; the rounds interleave the
rows so the machine's noise falls on all of them alike:

- hello/ENGINE: a bare Starlette hello served through `edge.server.run` (the edge's process
  model and settings, no edge app): the server's own ceiling.
- hello/granian-rsgi: granian's native interface with a hello callable (granian's CLI): what
  skipping ASGI could gain at most.
- cache/ENGINE: `edge serve --origin URL --engine ENGINE`, every request a cache hit (the
  origin's answer is fresh for an hour; the row is warmed until a probe shows a hit).

Prints requests per second, the median over the rounds per row, and the ratios granian /
hypercorn. Needs wrk on the PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

HELLO_APP = """\
import sys

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from edge.server import Listen, ServerOptions, run


async def hello(request):
    return Response(b"x" * 1024, media_type="text/plain")


app = Starlette(routes=[Route("/{path:path}", hello)])
options = ServerOptions(listen=Listen("127.0.0.1", int(sys.argv[2])), workers=2,
                        engine=sys.argv[1])
sys.exit(run(lambda: app, options))
"""

RSGI_APP = """\
async def app(scope, proto):
    proto.response_bytes(200, [("content-type", "text/plain")], b"x" * 1024)
"""

ORIGIN_APP = """\
import sys

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from edge.server import Listen, ServerOptions, run


async def fresh(request):
    return Response(b"x" * 1024, media_type="text/plain",
                    headers={"cache-control": "max-age=3600"})


app = Starlette(routes=[Route("/{path:path}", fresh)])
sys.exit(run(lambda: app, ServerOptions(listen=Listen("127.0.0.1", int(sys.argv[1])))))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def warm_until_hit(url: str) -> None:
    for _ in range(50):
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            if (response.headers.get("x-cache") or "").startswith("Hit"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} never answered from the cache")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def run_wrk(url: str, duration: int, connections: int) -> float:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not found or "Non-2xx" in output:
        raise RuntimeError(f"wrk on {url}:\n{output}")
    return float(found.group(1))


Starter = Callable[[], tuple[subprocess.Popen[bytes], str]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="engine-bench-"))
    for name, text in (("hello_app.py", HELLO_APP), ("rsgi_app.py", RSGI_APP)):
        (work / name).write_text(text)
    (work / "origin_app.py").write_text(ORIGIN_APP)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    quiet = subprocess.DEVNULL
    origin_port = free_port()
    origin = subprocess.Popen(
        [sys.executable, str(work / "origin_app.py"), str(origin_port)], env=env, stderr=quiet
    )
    granian = Path(sys.executable).with_name("granian")

    def hello(engine: str) -> Starter:
        def start() -> tuple[subprocess.Popen[bytes], str]:
            port = free_port()
            argv = [sys.executable, str(work / "hello_app.py"), engine, str(port)]
            return subprocess.Popen(argv, env=env, stderr=quiet), f"http://127.0.0.1:{port}/file"

        return start

    def hello_rsgi() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        argv = [str(granian), "--interface", "rsgi", "--workers", "2", "--loop", "uvloop"]
        argv += ["--no-ws", "--log-level", "error", "--port", str(port), "rsgi_app:app"]
        process = subprocess.Popen(argv, cwd=work, env=env, stdout=quiet, stderr=quiet)
        return process, f"http://127.0.0.1:{port}/file"

    def cache(engine: str) -> Starter:
        def start() -> tuple[subprocess.Popen[bytes], str]:
            port = free_port()
            argv = [sys.executable, "-m", "edge.cli", "serve", "--origin"]
            argv += [f"http://127.0.0.1:{origin_port}", "--listen", f"127.0.0.1:{port}"]
            argv += ["--workers", "2", "--engine", engine, "--no-access-log"]
            process = subprocess.Popen(argv, cwd=work, env=env, stdout=quiet, stderr=quiet)
            return process, f"http://127.0.0.1:{port}/file"

        return start

    rows: dict[str, Starter] = {
        "hello/hypercorn": hello("hypercorn"),
        "hello/granian": hello("granian"),
        "hello/granian-rsgi": hello_rsgi,
        "cache/hypercorn": cache("hypercorn"),
        "cache/granian": cache("granian"),
    }
    results: dict[str, list[float]] = {name: [] for name in rows}
    try:
        wait_until_up(f"http://127.0.0.1:{origin_port}/")
        for round_number in range(args.rounds):
            for name, start in rows.items():
                process, url = start()
                try:
                    wait_until_up(url)
                    if name.startswith("cache/"):
                        warm_until_hit(url)
                    run_wrk(url, 1, args.connections)  # warm-up
                    rate = run_wrk(url, args.duration, args.connections)
                finally:
                    stop(process)
                results[name].append(rate)
                print(f"round {round_number + 1} {name:20} {rate:10,.0f} req/s", flush=True)
    finally:
        stop(origin)
        shutil.rmtree(work, ignore_errors=True)
    print()
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    for name, median in medians.items():
        runs = ", ".join(f"{rate:,.0f}" for rate in results[name])
        print(f"{name:20} median {median:10,.0f} req/s  ({runs})")
    for kind in ("hello", "cache"):
        ratio = medians[f"{kind}/granian"] / medians[f"{kind}/hypercorn"]
        print(f"{kind}: granian / hypercorn = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
