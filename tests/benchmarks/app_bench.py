"""The edge application's own cost per request, in process: CPU µs, function calls, instructions.

Run by hand (pytest does not collect it):

    python tests/benchmarks/app_bench.py [-n 20000] [--rounds 3] [--only hit forward ...]
                                         [--instructions] [--profile TOP]

No server and no socket on the viewer side: a fake ASGI server calls the app the way an HTTP/1.1
server does (one `http.response.start`, the body in one message), on uvloop, one request after
the other, so what is counted is the application alone: admission, the journey, the cache, the
origin client, the answer's head and body, metrics and the access log (off, as the benchmarks
serve). Every request is a `GET /file` answered with the same 1 KB body.

| row | what |
|---|---|
| `hit` | a cache hit (the default RFC 9111 policy; the origin's answer says max-age=3600) |
| `forward` | cache off, to nginx on 127.0.0.1 through the HTTP origin client (syscalls included) |
| `forward-app` | the same with an origin answering from memory: a forward without the client |
| `directory` | cache off, the file read from a directory origin |

Figures per request: CPU µs (`time.process_time`, median of `--rounds`), Python function
calls and C calls (a `sys.setprofile` counter on a separate, smaller run; a resumed coroutine
counts as a call), and with `--instructions` the instructions valgrind's callgrind counts (two
runs of different lengths, the difference divided by the extra requests, so start-up and
warm-up cancel out; repeatable whatever else the machine does).

`--profile TOP` also prints cProfile's TOP functions by own time for each row.
nginx (`/usr/sbin/nginx`) is started on an ephemeral port in a temporary directory and stopped
by its PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edge.accesslog import AccessLog  # noqa: E402
from edge.app import create_app  # noqa: E402
from edge.config import parse_config  # noqa: E402
from edge.origins import build_upstreams  # noqa: E402
from origin_proxy import (  # noqa: E402
    OriginRequest,
    OriginResponse,
    format_http_date,
    single_chunk,
)

BODY = (b"0123456789abcdef" * 64)[:1024]
ROWS = ("hit", "forward", "forward-app", "directory")
NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))

# What an HTTP/1.1 server hands the app for `GET /file` from wrk.
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/file",
    "raw_path": b"/file",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8080")],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8080),
    "state": {},
}
REQUEST_MESSAGE = {"type": "http.request", "body": b"", "more_body": False}


# -- origins -------------------------------------------------------------------------------


class MemoryOrigin:
    """An origin that answers every request at once with the 1 KB body."""

    def __init__(self, name: str, cache_control: bytes | None) -> None:
        self.name = name
        self.headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", b"%d" % len(BODY)),
            (b"date", format_http_date(int(time.time()))),
            (b"server", b"memory"),
        ]
        if cache_control is not None:
            self.headers.append((b"cache-control", cache_control))

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        return OriginResponse(200, list(self.headers), single_chunk(BODY), b"OK")

    async def aclose(self) -> None:
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def nginx_origin(root: Path) -> Iterator[str]:
    """nginx serving `root` on 127.0.0.1 (one worker), stopped by its PID on the way out."""
    if NGINX is None:
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    prefix = root / "nginx"
    (prefix / "logs").mkdir(parents=True)
    port = _free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""daemon off; worker_processes 1; pid {prefix}/nginx.pid; error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  access_log off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{ listen 127.0.0.1:{port}; root {root / "docroot"}; }}
}}
"""
    )
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", "stderr"])
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("nginx did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the fake server -----------------------------------------------------------------------


class FakeServer:
    """Calls the app as an ASGI server would, one request at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.status = 0
        self.body_bytes = 0

    async def receive(self) -> dict[str, Any]:
        return REQUEST_MESSAGE

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.body_bytes += len(message.get("body", b""))

    async def request(self) -> None:
        self.status = 0
        self.body_bytes = 0
        await self.app(dict(SCOPE), self.receive, self.send)

    async def run(self, count: int) -> None:
        for _ in range(count):
            await self.request()


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """The app's lifespan, driven as a server drives it."""
    started = asyncio.Event()
    stop = asyncio.Event()
    queue: list[dict[str, Any]] = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"].endswith("failed"):
            raise RuntimeError(message)

    task = asyncio.ensure_future(app({"type": "lifespan", "state": {}}, receive, send))
    await started.wait()
    try:
        yield
    finally:
        stop.set()
        await task


def build_app(row: str, root: Path, origin_url: str | None) -> Any:
    origin: dict[str, Any]
    cache = "disabled"
    if row == "directory":
        origin = {"directory": str(root / "docroot")}
    elif row == "forward":
        assert origin_url is not None
        origin = {"url": origin_url}
    else:
        origin = {"url": "http://127.0.0.1:9"}  # replaced by a memory origin below
        if row == "hit":
            cache = "rfc9111"
    raw = {
        "server": {"access_log": False},
        "origins": {"origin": origin},
        "behaviors": [{"path": "*", "origin": "origin", "methods": "any", "cache": cache}],
    }
    config = parse_config(raw, base_dir=root)
    upstreams = build_upstreams(config)
    if row in ("hit", "forward-app"):
        from dataclasses import replace

        memory = MemoryOrigin("origin", b"max-age=3600" if row == "hit" else None)
        upstreams["origin"] = replace(upstreams["origin"], origin=memory)
    return create_app(config, upstreams=upstreams, access_log=AccessLog(None))


# -- measuring -----------------------------------------------------------------------------


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class CallCounter:
    def __init__(self) -> None:
        self.calls = 0
        self.c_calls = 0

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            self.calls += 1
        elif event == "c_call":
            self.c_calls += 1


def measure_row(
    row: str, root: Path, origin_url: str | None, args: argparse.Namespace
) -> dict[str, float]:
    loop = _new_loop()
    try:
        return loop.run_until_complete(_measure(row, root, origin_url, args))
    finally:
        loop.close()


async def _measure(
    row: str, root: Path, origin_url: str | None, args: argparse.Namespace
) -> dict[str, float]:
    app = build_app(row, root, origin_url)
    server = FakeServer(app)
    async with lifespan(app):
        await server.run(args.warmup)
        expected = "Hit" if row == "hit" else "Miss"
        await _check(server, expected)
        if args.requests_only is not None:  # under callgrind: just the requests
            await server.run(args.requests_only)
            return {}
        cpu: list[float] = []
        for _ in range(args.rounds):
            started = time.process_time()
            await server.run(args.requests)
            cpu.append((time.process_time() - started) / args.requests * 1e6)
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            await server.run(args.requests)
            profiler.disable()
            print(f"--- {row}: top {args.profile} functions by own time ---")
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(args.profile)
        counter = CallCounter()
        counted = max(1, args.requests // 20)
        sys.setprofile(counter)
        try:
            await server.run(counted)
        finally:
            sys.setprofile(None)
    return {
        "cpu_us": statistics.median(cpu),
        "cpu_min": min(cpu),
        "cpu_max": max(cpu),
        "calls": counter.calls / counted,
        "c_calls": counter.c_calls / counted,
    }


async def _check(server: FakeServer, expected: str) -> None:
    headers: list[tuple[bytes, bytes]] = []
    real_send = server.send

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers.extend(message["headers"])
        await real_send(message)

    server.send = send  # type: ignore[method-assign]
    try:
        await server.request()
    finally:
        server.send = real_send  # type: ignore[method-assign]
    x_cache = dict(headers).get(b"x-cache", b"").decode()
    if server.status != 200 or server.body_bytes != len(BODY) or not x_cache.startswith(expected):
        raise SystemExit(
            f"unexpected answer: {server.status}, {server.body_bytes} bytes, X-Cache {x_cache!r}"
        )


def instructions(row: str, args: argparse.Namespace) -> float:
    """Instructions per request under callgrind: two runs, the difference per extra request."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    totals = []
    small, large = args.callgrind_requests
    for count in (small, large):
        argv = [
            valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, __file__, "--only", row,
            "--warmup", str(args.warmup), "--requests-only", str(count),
        ]  # fmt: skip
        if args.origin:
            argv += ["--origin", args.origin]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)
        found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"callgrind failed ({done.returncode}):\n{done.stderr[-2000:]}")
        totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / (large - small)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--origin", help="forward to this URL instead of a local nginx")
    parser.add_argument("--instructions", action="store_true", help="also run callgrind")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="TOP", help="print cProfile's TOP functions"
    )
    parser.add_argument(
        "--callgrind-requests", type=int, nargs=2, default=(200, 1200), metavar=("FEW", "MANY")
    )
    parser.add_argument("--requests-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="app-bench-") as tmp:
        root = Path(tmp)
        # nginx workers run as `nobody` when started by root: the files must be readable.
        root.chmod(0o755)
        (root / "docroot").mkdir()
        (root / "docroot" / "file").write_bytes(BODY)
        with contextlib.ExitStack() as stack:
            origin_url = args.origin
            if origin_url is None and "forward" in args.only:
                origin_url = stack.enter_context(nginx_origin(root))
            if args.requests_only is not None:
                measure_row(args.only[0], root, origin_url, args)
                return 0
            print(f"{'row':<12} {'CPU µs/req':>11} {'(min-max)':>13} {'py calls':>9} "
                  f"{'C calls':>8}{'  instructions':>15}")  # fmt: skip
            for row in args.only:
                figures = measure_row(row, root, origin_url, args)
                if args.instructions:
                    args.origin = origin_url
                    count = f"{instructions(row, args):>15,.0f}"
                else:
                    count = ""
                spread = f"({figures['cpu_min']:.1f}-{figures['cpu_max']:.1f})"
                print(
                    f"{row:<12} {figures['cpu_us']:>11.1f} {spread:>13} "
                    f"{figures['calls']:>9.0f} {figures['c_calls']:>8.0f}{count}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
