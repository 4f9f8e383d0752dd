"""Benchmark of whole servers: the edge (both server engines, with and without hooks) against
nginx and against workerd, under one wrk load, in one run.

Run by hand from the repository root (pytest does not collect it):

    python tests/benchmarks/proxy_bench.py [--quick] [--duration 10] [--only NAME ...]

Every server runs on 127.0.0.1 on an ephemeral port with the same number of worker processes
and answers GET /file with the same 1 KB body. Each row is started, checked with one GET,
warmed up, driven by `wrk -t2 -cN -dDs --latency`, and stopped by its PID before the next row
starts, so rows do not compete for the machine's cores (wrk shares them with the server; the
CPU columns show who used what). The nginx origin is the one exception: it lives for the whole
run, since the proxy rows forward to it.

Each edge row runs once per server engine (`edge serve --engine hypercorn|granian`); when
`edge serve --help` offers no `--engine`, the granian rows print as not available. The hook rows
run one viewer-request function that adds `X-Hook: 1` to the request, in Python, in WASM (a C
guest, a fresh instance per request and a reused one), as a CloudFront Function
(cloudfront-js-2.0, in process on QuickJS) and, for comparison, as a Cloudflare
Worker in workerd (through miniflare, installed from npm into ~/.cache/edge-bench/ when
missing). The origin echoes the header back as `X-Hook-Seen`, so every hook row is checked to
have run its hook before it is measured.

Besides req/s and latency, every row reports the CPU time of its server's whole process tree
(utime + stime from /proc/PID/stat, children included) as requests per CPU-second, and the
memory of that tree under the load (the sum of Pss from /proc/PID/smaps_rollup, sampled during
the measured run, the largest sample).

Missing wrk or nginx is installed from Debian's packages (as root); without apt the rows that
cannot run are skipped with a message. The exit status is 1 only when something failed to start
or to answer; a missed target is reported, never an error.

Caching is explicit in every edge row. The forwarding, hook and directory rows run with
`cache = "disabled"`: with the default policy the edge would cache the 1 KB file heuristically
(RFC 9111 §4.2.2, from its Last-Modified), turning them into a mix of hits and misses that shifts
with the file's age. The cache-hit rows (nginx `proxy_cache`, the edge's cache) forward to a
location of the origin that sends `Cache-Control: max-age=3600` and logs every request; each is
warmed until a probe shows a hit, and the report says how many requests reached the origin
during the measured run (0: every measured request was a hit).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from email.message import Message
from pathlib import Path
from types import FrameType

from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    # Run as a file: make the repository importable (tests.wasm_guests builds the WASM hook).
    sys.path.insert(0, str(REPO))

BODY = (b"0123456789abcdef" * 64)[:1024]
FILE_PATH = "/file"
# The origin's location whose responses are fresh for an hour (RFC 9111 §5.2.2.1 max-age).
CACHEABLE_PREFIX = "/cacheable"
CACHEABLE_LOG = "cacheable-access.log"
# Fresh connections per probe: enough for every worker of a server to be warmed (the kernel
# spreads new connections over SO_REUSEPORT sockets by hash).
PROBE_ATTEMPTS = 64
PROBE_HITS_IN_A_ROW = 8
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
# Seconds between two samples of a server's process tree (its PSS, its processes) under load.
SAMPLE_INTERVAL_SECONDS = 0.5
# /usr/sbin is not on every PATH (a non-login root shell, a venv's activate script).
TOOL_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
# Where miniflare (npm) and the built WASM hook are kept between runs.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-bench"
GUESTS_DIR = Path(__file__).resolve().parent / "guests"

# The server engines of `edge serve --engine`, in the order the table shows them.
ENGINES = ("hypercorn", "granian")
# The one engine of an `edge serve` that has no --engine option.
DEFAULT_ENGINE = "hypercorn"

# The hook every runtime runs: add this request header; the origin echoes it back.
HOOK_HEADER = "X-Hook"
ECHO_HEADER = "X-Hook-Seen"
HOOK_SOURCE = '''\
"""Viewer-request: add X-Hook: 1 to the request."""


def handler(event, context):
    request = event["Records"][0]["cf"]["request"]
    request["headers"]["x-hook"] = [{"key": "X-Hook", "value": "1"}]
    return request
'''
# The same job as a CloudFront Function (cloudfront-js-2.0, run in process on QuickJS).
CLOUDFRONT_FUNCTION_SOURCE = """\
function handler(event) {
  var request = event.request;
  request.headers["x-hook"] = { value: "1" };
  return request;
}
"""
# The same job as a Cloudflare Worker: fetch the origin with the header added.
WORKER_SOURCE = """\
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    headers.set("x-hook", "1");
    return fetch(env.ORIGIN + url.pathname + url.search, { method: request.method, headers });
  },
};
"""
# Runs miniflare (workerd) with the Worker; argv: the miniflare package, the origin's URL, the
# Worker's file. Prints the banner the other servers print; SIGTERM stops workerd and exits.
MINIFLARE_LAUNCHER = """\
const fs = require("fs");
const { Miniflare } = require(process.argv[2]);
(async () => {
  const mf = new Miniflare({
    modules: true,
    script: fs.readFileSync(process.argv[4], "utf8"),
    compatibilityDate: "2024-09-23",
    host: "127.0.0.1",
    port: 0,
    bindings: { ORIGIN: process.argv[3] },
  });
  const url = new URL(await mf.ready);
  console.error(`listening on http://127.0.0.1:${url.port}`);
  const stop = async () => {
    await mf.dispose();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
"""

# Targets (issue figures). Throughput shares are of req/s in the same run.
CACHE_HIT_GOAL = 0.50  # edge cache hits vs nginx proxy_cache hits
# Local-tier hits with [cluster] on vs the same row without: a hit must not touch Redis.
CLUSTER_HIT_GOAL = 0.90
REDIS_SERVER = "redis-server"
FORWARD_GOAL = 0.30  # edge forwarding (cache off) vs the nginx reverse proxy
DIRECTORY_GOAL = 0.30  # edge directory origin vs nginx serving the file
PYTHON_HOOK_GOAL = 0.75  # a warm Python hook vs the same row without it
WASM_FRESH_GOAL = 0.85  # a WASM hook, fresh instance per request, vs the same row without
WASM_REUSED_GOAL = 0.90  # a WASM hook, reused instance
CLOUDFRONT_FUNCTION_GOAL = 0.85  # a CloudFront Function (QuickJS, in process)
WORKERD_CPU_GOAL = 1.5  # edge hook rows' requests per CPU-second vs workerd's
# Memory: the edge's PSS under load at most workerd's (ratio <= 1).

# Wide enough for the tables when the output goes to a file.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 220)


class StartFailed(Exception):
    """A server did not start, or did not answer the check request; the message says why."""


# --- processes -----------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _tree(
    children: dict[int, list[int]], root: int, stop: frozenset[int] = frozenset()
) -> list[int]:
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(child for child in children.get(pid, []) if child not in stop)
    return found


def descendants(root: int) -> list[int]:
    """`root` and every process below it (nginx workers, the edge's workers and functions)."""
    return _tree(_children_map(), root)


def process_trees(roots: dict[str, int]) -> dict[str, list[int]]:
    """The tree of each root, from one scan of /proc. The trees do not overlap: a root below
    another (workerd below its miniflare launcher) is left out of the upper one's tree."""
    children = _children_map()
    pids = frozenset(roots.values())
    return {label: _tree(children, root, pids - {root}) for label, root in roots.items()}


def _start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def pss_kb(pid: int) -> int:
    """Proportional set size of `pid` in KiB (shared pages split among their users); 0 if gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


@dataclass
class Process:
    """A server process this script started; stopped by its PID (and its children's PIDs)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        # (pid, start time): a PID is only killed below if it is still the same process.
        family = [(pid, _start_time(pid)) for pid in descendants(self.pid)]
        # SIGTERM: the edge drains and stops its workers; nginx does a fast shutdown; the
        # miniflare launcher disposes of workerd.
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{self.name} (pid {self.pid}) ignored SIGTERM; killing it[/]")
        # Whatever of the family outlived its root (or all of it, after a timeout).
        deadline = time.monotonic() + 5.0
        left = family
        while left:
            left = [(pid, start) for pid, start in left if start and _start_time(pid) == start]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for pid, _ in reversed(left):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait()


def free_port() -> int:
    """A port the kernel just handed out (for nginx, which cannot report a port 0 back)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- the servers ---------------------------------------------------------------------------

NGINX_CONF = """\
worker_processes {workers};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/plain;
    sendfile on;
    # As the edge's server settings: keep-alive connections are not recycled.
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{http_extra}
    server {{
        # reuseport: one listening socket per worker, as the edge's workers have.
        listen 127.0.0.1:{port} reuseport;
{locations}
    }}
}}
"""

HELLO_APP = """\
import sys

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from edge.server import Listen, ServerOptions, run

BODY = bytes.fromhex(sys.argv[2])


async def hello(request):
    return Response(BODY, media_type="text/plain")


app = Starlette(routes=[Route("/{path:path}", hello)])


def ready(listen, admin):
    print(f"listening on http://{listen}", file=sys.stderr, flush=True)


options = ServerOptions(listen=Listen("127.0.0.1", 0), workers=int(sys.argv[1]))
sys.exit(run(lambda: app, options, on_ready=ready))
"""

BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Started:
    """A server ready for load: its base URL, what the row must stop, what CPU to show."""

    url: str
    owned: tuple[Process, ...]
    # (label, root PID): the CPU of each process tree is sampled during the measured run; the
    # first is the row's own server (its requests per CPU-second, its memory).
    watched: tuple[tuple[str, int], ...]
    # Cache-hit rows: how many requests the origin has served them so far (sampled around
    # the measured run, where it must not grow).
    count_origin_fetches: Callable[[], int] | None = None


@dataclass
class Bench:
    """The run's workspace: a temporary directory, the shared origin, the processes started."""

    root: Path
    workers: int
    nginx: str | None
    # Whether `edge serve` takes --engine (detect_engines); without it only the default runs.
    engine_flag: bool = False
    # (node, miniflare package directory) for the workerd row, when available.
    miniflare: tuple[str, Path] | None = None
    processes: list[Process] = field(default_factory=list)
    _origin: Process | None = None
    _origin_url: str = ""
    redis_url: str = ""

    @property
    def docroot(self) -> Path:
        return self.root / "www"

    def prepare(self) -> None:
        # nginx workers run as `nobody` when started by root: the files must be readable.
        self.root.chmod(0o755)
        self.docroot.mkdir(mode=0o755)
        (self.docroot / FILE_PATH.lstrip("/")).write_bytes(BODY)
        (self.docroot / FILE_PATH.lstrip("/")).chmod(0o644)

    def spawn(self, name: str, argv: Sequence[str]) -> Process:
        log = self.root / f"{name}.log"
        python_path = [str(REPO), os.environ.get("PYTHONPATH", "")]
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=REPO,
                # The generated hello app imports edge.server whether or not edge is installed.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, python_path))},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C reaches this script, which stops it in order.
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self.processes:
            self.processes.remove(process)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def _await_ready(self, process: Process, ready: Callable[[], int | None]) -> int:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            port = ready()
            if port is not None:
                return port
            if process.popen.poll() is not None:
                self.stop(process)
                raise StartFailed(
                    f"{process.name} exited with status {process.popen.returncode}:\n"
                    f"{process.log_tail()}"
                )
            time.sleep(0.05)  # an external process with no readiness channel: poll
        self.stop(process)
        raise StartFailed(f"{process.name} not ready after {START_TIMEOUT_SECONDS:.0f} s")

    def _await_banner(self, process: Process) -> int:
        def ready() -> int | None:
            found = BANNER.search(process.log.read_text(errors="replace"))
            return int(found.group(1)) if found else None

        return self._await_ready(process, ready)

    def start_nginx(self, name: str, locations: str, http_extra: str = "") -> tuple[Process, int]:
        """nginx with its own prefix, config, logs and pid file under the workspace."""
        if self.nginx is None:
            raise StartFailed("nginx is not installed")
        prefix = self.root / name
        prefix.mkdir(exist_ok=True)
        for attempt in range(3):  # the port may be taken between free_port() and nginx's bind
            port = free_port()
            conf = prefix / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(
                    workers=self.workers,
                    dir=prefix,
                    port=port,
                    http_extra=http_extra,
                    locations=locations,
                )
            )
            process = self.spawn(
                name, [self.nginx, "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
            )

            def ready(port: int = port) -> int | None:
                return port if accepts(port) else None

            try:
                self._await_ready(process, ready)
            except StartFailed:
                if attempt == 2 or "Address already in use" not in process.log_tail():
                    raise
                continue
            return process, port
        raise AssertionError("unreachable")

    def origin_url(self) -> str:
        """The nginx origin serving the docroot; started on first use, stopped at the end.

        Its plain location echoes the hook's request header back as X-Hook-Seen (nginx adds
        no header whose value is empty, so requests without it get none). Under
        CACHEABLE_PREFIX it serves the same files fresh for an hour (`expires 1h` sends
        Cache-Control: max-age=3600) and logs each request, so a cache-hit row can show that
        none reached it. The plain location keeps sending no freshness information.
        """
        if self._origin is None:
            locations = (
                f"        location / {{ root {self.docroot};"
                f" add_header {ECHO_HEADER} $http_x_hook; }}\n"
                f"        location {CACHEABLE_PREFIX}/ {{ alias {self.docroot}/; expires 1h;"
                f" access_log {self.root / 'nginx-origin' / CACHEABLE_LOG}; }}"
            )
            process, port = self.start_nginx("nginx-origin", locations)
            self._origin, self._origin_url = process, f"http://127.0.0.1:{port}"
        return self._origin_url

    def cacheable_origin_url(self) -> str:
        """The origin's URL for responses a cache may keep (same files, same bodies)."""
        return self.origin_url() + CACHEABLE_PREFIX

    def cacheable_fetches(self) -> int:
        """Requests the origin has served under CACHEABLE_PREFIX (one log line each)."""
        try:
            with (self.root / "nginx-origin" / CACHEABLE_LOG).open("rb") as log:
                return sum(1 for _ in log)
        except FileNotFoundError:
            return 0

    def origin_watch(self) -> tuple[tuple[str, int], ...]:
        return (("origin", self._origin.pid),) if self._origin else ()

    def start_edge(
        self, name: str, *serve_args: str, behind_origin: bool = False, engine: str | None = None
    ) -> Started:
        """`edge serve SERVE_ARGS` on a port of its own choosing, found in its banner.

        `behind_origin`: the edge forwards to the nginx origin, whose CPU the row then shows.
        `engine`: passed as `--engine` when `edge serve` has that option (else only the
        default engine can run).
        """
        argv = [sys.executable, "-m", "edge.cli", "serve", *serve_args]
        argv += ["--listen", "127.0.0.1:0", "--workers", str(self.workers), "--no-access-log"]
        if engine is not None and self.engine_flag:
            argv += ["--engine", engine]
        elif engine not in (None, DEFAULT_ENGINE):
            raise StartFailed(f"edge serve has no --engine option: {engine} is not available")
        process = self.spawn(name, argv)
        port = self._await_banner(process)
        return Started(
            f"http://127.0.0.1:{port}",
            (process,),
            (("edge", process.pid), *(self.origin_watch() if behind_origin else ())),
        )

    def start_edge_uncached(
        self,
        name: str,
        origin: dict[str, str],
        *,
        engine: str | None = None,
        function: dict[str, str | bool] | None = None,
    ) -> Started:
        """The edge with one behavior to `origin` (a `[origins.*]` table) and its cache off;
        with `function` (a `[functions.*]` table), that function on viewer-request."""
        config = self.root / f"{name}.toml"
        table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in origin.items())
        text = (
            f'[origins.origin]\n{table}\n[[behaviors]]\npath = "*"\norigin = "origin"\n'
            'cache = "disabled"\n'
        )
        if function is not None:
            text += 'viewer-request = "hook"\n\n[functions.hook]\n'
            text += "".join(f"{key} = {json.dumps(value)}\n" for key, value in function.items())
        config.write_text(text)
        started = self.start_edge(name, str(config), behind_origin="url" in origin, engine=engine)
        try:
            # Every request must go to the origin: not even a second one may be a hit. The
            # origin echoes the hook's header: it must be there exactly when a hook runs.
            for _ in range(2):
                headers = check(started.url + FILE_PATH)
                if headers.get("x-cache") != "Miss from edge":
                    raise StartFailed(
                        f"{name}: X-Cache is {headers.get('x-cache')!r}, expected a miss"
                    )
                if "url" in origin and (headers.get(ECHO_HEADER) == "1") != (function is not None):
                    raise StartFailed(
                        f"{name}: the origin saw {HOOK_HEADER}: {headers.get(ECHO_HEADER)!r}"
                        f" ({'with' if function else 'without'} the hook)\n"
                        f"{started.owned[0].log_tail()}"
                    )
        except StartFailed:
            for process in started.owned:
                self.stop(process)
            raise
        return started

    def start_hello(self) -> Started:
        """A bare Starlette app answering BODY, under edge.server (the edge's server settings)."""
        script = self.root / "hello_app.py"
        script.write_text(HELLO_APP)
        process = self.spawn("hello", [sys.executable, str(script), str(self.workers), BODY.hex()])
        port = self._await_banner(process)
        return Started(f"http://127.0.0.1:{port}", (process,), (("hello", process.pid),))

    def start_workerd(self) -> Started:
        """workerd through miniflare, running the Worker in front of the nginx origin."""
        if self.miniflare is None:
            raise StartFailed("miniflare is not installed")
        node, package = self.miniflare
        origin = self.origin_url()
        launcher = self.root / "miniflare_launcher.cjs"
        launcher.write_text(MINIFLARE_LAUNCHER)
        worker = self.root / "worker.mjs"
        worker.write_text(WORKER_SOURCE)
        process = self.spawn("workerd", [node, str(launcher), str(package), origin, str(worker)])
        port = self._await_banner(process)
        try:
            # The server is workerd (it answers the requests itself, on the port the banner
            # shows); miniflare's node launcher, idle under load, is shown apart.
            workerd = [
                pid
                for pid in descendants(process.pid)
                if Path(f"/proc/{pid}/comm").read_text().strip() == "workerd"
            ]
            if not workerd:
                raise StartFailed(f"no workerd process below miniflare:\n{process.log_tail()}")
            started = Started(
                f"http://127.0.0.1:{port}",
                (process,),
                (("workerd", workerd[0]), ("miniflare", process.pid), *self.origin_watch()),
            )
            expect_header(started.url + FILE_PATH, ECHO_HEADER, "1")
        except (StartFailed, OSError) as exc:
            self.stop(process)
            raise StartFailed(str(exc)) from None
        return started


def start_nginx_origin(bench: Bench) -> Started:
    return Started(bench.origin_url(), (), bench.origin_watch())


def start_nginx_proxy(bench: Bench) -> Started:
    origin = bench.origin_url().removeprefix("http://")
    upstream = f"    upstream origin {{ server {origin}; keepalive 64; }}"
    # HTTP/1.1 and an empty Connection header: what keeps the upstream connections alive.
    location = (
        "        location / { proxy_pass http://origin; proxy_http_version 1.1;"
        ' proxy_set_header Connection ""; }'
    )
    process, port = bench.start_nginx("nginx-proxy", location, upstream)
    return Started(
        f"http://127.0.0.1:{port}", (process,), (("nginx", process.pid), *bench.origin_watch())
    )


def start_nginx_cache(bench: Bench) -> Started:
    """nginx as a caching reverse proxy in front of the origin's cacheable location, warmed."""
    origin = bench.origin_url().removeprefix("http://")
    cache_dir = bench.root / "nginx-cache" / "cache"
    http_extra = (
        f"    upstream origin {{ server {origin}; keepalive 64; }}\n"
        f"    proxy_cache_path {cache_dir} levels=1:2 keys_zone=bench:1m max_size=64m"
        " inactive=1h use_temp_path=off;"
    )
    # The origin's Cache-Control: max-age decides the freshness (nginx honours it by default).
    location = (
        f"        location / {{ proxy_pass http://origin{CACHEABLE_PREFIX}/;"
        ' proxy_http_version 1.1; proxy_set_header Connection "";'
        " proxy_cache bench; add_header X-Cache-Status $upstream_cache_status; }"
    )
    process, port = bench.start_nginx("nginx-cache", location, http_extra)
    url = f"http://127.0.0.1:{port}"
    try:
        warm_until_hit(url + FILE_PATH, "x-cache-status", "HIT")
    except StartFailed:
        bench.stop(process)
        raise
    return Started(
        url, (process,), (("nginx", process.pid), *bench.origin_watch()), bench.cacheable_fetches
    )


def start_edge_cache(bench: Bench, engine: str | None = None) -> Started:
    """`edge serve --origin http://<origin>/cacheable`: the default policy (RFC 9111) keeps the
    origin's max-age=3600 responses; warmed until a probe shows a hit."""
    started = bench.start_edge(
        f"edge-cache-{engine}" if engine else "edge-cache",
        "--origin",
        bench.cacheable_origin_url(),
        behind_origin=True,
        engine=engine,
    )
    try:
        warm_until_hit(started.url + FILE_PATH, "x-cache", "Hit from edge")
    except StartFailed:
        for process in started.owned:
            bench.stop(process)
        raise
    return Started(started.url, started.owned, started.watched, bench.cacheable_fetches)


def start_redis(bench: Bench) -> str:
    """A redis-server for the cluster rows (one per run, stopped with the rest); its URL."""
    if bench.redis_url:
        return bench.redis_url
    binary = which(REDIS_SERVER)
    if binary is None:
        raise StartFailed("redis-server is not installed: the cluster rows cannot run")
    port = free_port()
    process = bench.spawn(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    )
    bench._await_ready(process, lambda: port if accepts(port) else None)
    bench.redis_url = f"redis://127.0.0.1:{port}/0"
    return bench.redis_url


# Node B of the cross-node row keeps nothing itself. Both nodes key without the Host (a
# CloudFront policy): behind a load balancer they would see one Host, here each its own port.
_SHARED_ONLY = "[cache]\nmemory_bytes = 0\n"
_HOSTLESS_KEY = '[[behaviors]]\npath = "*"\norigin = "origin"\ncache = "caching-optimized"\n\n'


def _cluster_edge(
    bench: Bench, name: str, node: str, engine: str | None, *, prefix: str, cache: str = ""
) -> Started:
    """An edge node of the bench's cluster in front of the cacheable origin."""
    redis = start_redis(bench)
    config = bench.root / f"{name}.toml"
    config.write_text(
        f'[origins.origin]\nurl = "{bench.cacheable_origin_url()}"\n\n'
        f'[cluster]\nredis = "{redis}"\nnode_id = "{node}"\nkey_prefix = "{prefix}:"\n\n'
        f"{cache}"
    )
    return bench.start_edge(name, str(config), behind_origin=True, engine=engine)


def start_edge_cluster_cache(bench: Bench, engine: str | None = None) -> Started:
    """`edge-cache` with `[cluster]` on: the same hits, from each worker's own tier."""
    name = f"edge-cluster-cache-{engine}" if engine else "edge-cluster-cache"
    started = _cluster_edge(bench, name, "a", engine, prefix=name)
    try:
        warm_until_hit(started.url + FILE_PATH, "x-cache", "Hit from edge")
    except StartFailed:
        for process in started.owned:
            bench.stop(process)
        raise
    return Started(started.url, started.owned, started.watched, bench.cacheable_fetches)


def start_edge_cluster_shared(bench: Bench, engine: str | None = None) -> Started:
    """Two nodes: node A fetches the file (and so stores it in the shared tier); the load
    goes to node B, whose own tier keeps nothing (`memory_bytes = 0`), so every request is a
    cross-node hit answered from Redis."""
    name = f"edge-cluster-shared-{engine}" if engine else "edge-cluster-shared"
    first = _cluster_edge(bench, name + "-a", "a", engine, prefix=name, cache=_HOSTLESS_KEY)
    owned: tuple[Process, ...] = first.owned
    try:
        warm_until_hit(first.url + FILE_PATH, "x-cache", "Hit from edge")
        second = _cluster_edge(
            bench, name + "-b", "b", engine, prefix=name, cache=_HOSTLESS_KEY + _SHARED_ONLY
        )
        owned = (*second.owned, *first.owned)
        warm_until_hit(second.url + FILE_PATH, "x-cache", "Hit from edge")
    except StartFailed:
        for process in owned:
            bench.stop(process)
        raise
    return Started(second.url, owned, second.watched, bench.cacheable_fetches)


def start_edge_forward(bench: Bench, engine: str) -> Started:
    return bench.start_edge_uncached(
        f"edge-proxy-{engine}", {"url": bench.origin_url()}, engine=engine
    )


def start_edge_directory(bench: Bench, engine: str) -> Started:
    return bench.start_edge_uncached(
        f"edge-directory-{engine}", {"directory": str(bench.docroot)}, engine=engine
    )


def write_python_hook(bench: Bench) -> str:
    """The Python hook's handler under the workspace; its `handler` string for edge.toml
    (relative to the config files, which are written next to it)."""
    code = bench.root / "functions"
    code.mkdir(mode=0o755, exist_ok=True)
    path = code / "add_header.py"
    path.write_text(HOOK_SOURCE)
    path.chmod(0o644)
    return "functions/add_header.handler"


def start_edge_python(bench: Bench, engine: str) -> Started:
    return bench.start_edge_uncached(
        f"edge-python-{engine}",
        {"url": bench.origin_url()},
        engine=engine,
        function={"handler": write_python_hook(bench)},
    )


def start_edge_cloudfront_function(bench: Bench, engine: str) -> Started:
    code = bench.root / "functions"
    code.mkdir(mode=0o755, exist_ok=True)
    path = code / "add_header.js"
    path.write_text(CLOUDFRONT_FUNCTION_SOURCE)
    path.chmod(0o644)
    return bench.start_edge_uncached(
        f"edge-cloudfront-function-{engine}",
        {"url": bench.origin_url()},
        engine=engine,
        function={"runtime": "cloudfront-js-2.0", "code": str(path)},
    )


@functools.cache
def wasm_hook_module() -> Path:
    """The C guest guests/add_header.c, built for the core ABI with the example guests' library
    and the ziglang toolchain (a test dependency); cached under CACHE_DIR by source hash."""
    try:
        from tests.wasm_guests.build import Guest, GuestBuildFailed, build_guest

        class BenchGuest(Guest):
            @property
            def main_source(self) -> Path:
                return GUESTS_DIR / f"{self.name}.c"

            def command(self, output: Path) -> list[str]:
                # The library's header lives beside the example guests, not beside this one.
                return [*super().command(output), f"-I{self.source_dir}"]

        return build_guest(BenchGuest("add_header", "c", ("viewer_request",)), CACHE_DIR / "wasm")
    except ImportError as exc:  # importlib.metadata's PackageNotFoundError is one
        raise StartFailed(
            f"building the WASM hook needs the ziglang package (pip install -e '.[test]'): {exc}"
        ) from None
    except GuestBuildFailed as exc:
        raise StartFailed(str(exc)) from None


def start_edge_wasm(bench: Bench, engine: str, *, reuse: bool) -> Started:
    name = f"edge-wasm-{'reused-' if reuse else ''}{engine}"
    function: dict[str, str | bool] = {
        "runtime": "wasm",
        "module": str(wasm_hook_module()),
        "reuse_instance": reuse,
    }
    return bench.start_edge_uncached(
        name, {"url": bench.origin_url()}, engine=engine, function=function
    )


@dataclass(frozen=True)
class Comparison:
    """A row's req/s as a share of another row's in the same run, and the share it should reach."""

    baseline: str  # the other row's name
    label: str  # how the table names it
    goal: float | None = None


@dataclass(frozen=True)
class Target:
    """One row: `start` returns a server answering GET {url}/file with BODY."""

    name: str
    title: str
    start: Callable[[Bench], Started]
    needs_nginx: bool = False
    # Edge rows: the server engine (`edge serve --engine`); the row's name ends in it.
    engine: str | None = None
    compare: Comparison | None = None
    # Why the row cannot run here (shown as n/a in the table, not an error).
    unavailable: str | None = None
    # Run without --only; the bare hello row is on demand.
    default: bool = True

    @property
    def base(self) -> str:
        """The name without the engine: `--only edge-proxy` picks every engine's row."""
        return self.name.removesuffix(f"-{self.engine}") if self.engine else self.name


def _edge_rows(
    base: str,
    title: str,
    start: Callable[..., Started],
    compare: Callable[[str], Comparison],
    **options: bool,
) -> tuple[Target, ...]:
    return tuple(
        Target(
            f"{base}-{engine}",
            title,
            functools.partial(start, engine=engine, **options),
            needs_nginx=True,
            engine=engine,
            compare=compare(engine),
        )
        for engine in ENGINES
    )


def _no_hook(goal: float) -> Callable[[str], Comparison]:
    return lambda engine: Comparison(f"edge-proxy-{engine}", "no hook", goal)


# Run order and table order: each baseline just before the rows measured against it.
TARGETS: tuple[Target, ...] = (
    Target("nginx-origin", "nginx serving the file", start_nginx_origin, needs_nginx=True),
    *_edge_rows(
        "edge-directory",
        "edge, directory origin, cache off",
        start_edge_directory,
        lambda engine: Comparison("nginx-origin", "nginx file", DIRECTORY_GOAL),
    ),
    Target("nginx-proxy", "nginx reverse proxy", start_nginx_proxy, needs_nginx=True),
    *_edge_rows(
        "edge-proxy",
        "edge, forwarding, cache off",
        start_edge_forward,
        lambda engine: Comparison("nginx-proxy", "nginx proxy", FORWARD_GOAL),
    ),
    *_edge_rows(
        "edge-python",
        "edge, forwarding + Python hook",
        start_edge_python,
        _no_hook(PYTHON_HOOK_GOAL),
    ),
    *_edge_rows(
        "edge-wasm",
        "edge, forwarding + WASM hook, fresh",
        start_edge_wasm,
        _no_hook(WASM_FRESH_GOAL),
        reuse=False,
    ),
    *_edge_rows(
        "edge-wasm-reused",
        "edge, forwarding + WASM hook, reused",
        start_edge_wasm,
        _no_hook(WASM_REUSED_GOAL),
        reuse=True,
    ),
    *_edge_rows(
        "edge-cloudfront-function",
        "edge, forwarding + CloudFront Function hook",
        start_edge_cloudfront_function,
        _no_hook(CLOUDFRONT_FUNCTION_GOAL),
    ),
    Target(
        "workerd",
        "workerd (miniflare) + Worker hook",
        Bench.start_workerd,
        needs_nginx=True,
    ),
    Target("nginx-cache", "nginx proxy_cache hits", start_nginx_cache, needs_nginx=True),
    *_edge_rows(
        "edge-cache",
        "edge, cache hits",
        start_edge_cache,
        lambda engine: Comparison("nginx-cache", "nginx cache", CACHE_HIT_GOAL),
    ),
    *_edge_rows(
        "edge-cluster-cache",
        "edge, cache hits with Redis configured (in-memory tier hits)",
        start_edge_cluster_cache,
        lambda engine: Comparison(f"edge-cache-{engine}", "no cluster", CLUSTER_HIT_GOAL),
    ),
    *_edge_rows(
        "edge-cluster-shared",
        "edge, cross-node hits (shared tier)",
        start_edge_cluster_shared,
        lambda engine: Comparison(f"edge-cache-{engine}", "local hits"),
    ),
    Target("hello", "bare Starlette app (ceiling)", Bench.start_hello, default=False),
)

# The rows that run the same hook as the workerd row: compared per CPU-second and by memory.
WORKERD_PEERS = ("edge-python", "edge-wasm", "edge-wasm-reused", "edge-cloudfront-function")


# --- load ----------------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run reported."""

    requests_per_second: float
    requests: int
    p50_ms: float
    p99_ms: float
    socket_errors: dict[str, int]
    bad_statuses: int  # wrk counts statuses >= 400 as "Non-2xx or 3xx responses"

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.bad_statuses


def _latency_ms(text: str, percentile: str) -> float:
    found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    if not found:
        raise ValueError(f"no {percentile}% latency in wrk's output")
    return float(found.group(1)) * _TIME_UNITS_MS[found.group(2)]


def parse_wrk(text: str) -> LoadResult:
    """wrk's report (run with --latency) -> LoadResult; ValueError if a figure is missing."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    count = re.search(r"^\s*(\d+) requests in ", text, re.MULTILINE)
    if not rate or not count:
        raise ValueError("no Requests/sec in wrk's output")
    socket_errors = {}
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if found:
        socket_errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, found.groups()), strict=True)
        )
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return LoadResult(
        requests_per_second=float(rate.group(1)),
        requests=int(count.group(1)),
        p50_ms=_latency_ms(text, "50"),
        p99_ms=_latency_ms(text, "99"),
        socket_errors=socket_errors,
        bad_statuses=int(bad.group(1)) if bad else 0,
    )


@dataclass(frozen=True)
class Load:
    """The same load for every row."""

    wrk: str
    threads: int
    connections: int
    duration_seconds: int
    warmup_seconds: int

    def run(self, url: str, seconds: int) -> str:
        argv = [self.wrk, f"-t{self.threads}", f"-c{self.connections}", f"-d{seconds}s"]
        done = subprocess.run(
            [*argv, "--latency", url], capture_output=True, text=True, timeout=seconds + 60
        )
        if done.returncode != 0:
            raise StartFailed(f"wrk exited with status {done.returncode}: {done.stderr.strip()}")
        return done.stdout


@dataclass(frozen=True)
class Measurement:
    """One measured run of one row."""

    result: LoadResult
    cpu_percent: dict[str, list[float]]  # label -> per-process % of one core, busiest first
    wrk_cpu_percent: float
    # Processes this run did not start (other work on a shared machine): noise in the figures.
    others_cpu_percent: float
    # CPU time of the row's own server (the first watched tree) per request: steadier than
    # req/s when other work competes for the cores.
    server_cpu_us_per_request: float
    # Cache-hit rows: requests that reached the origin during the measured run (0 = all hits).
    origin_fetches: int | None = None
    # The server's tree: CPU seconds over the run, the largest PSS sample (MiB), the processes
    # it had (all that were seen during the run).
    server_cpu_seconds: float = 0.0
    server_processes: int = 0
    # Of those, the ones started during the measured run (a Python environment: a cold start).
    server_started: int = 0
    elapsed_seconds: float = 0.0
    # label -> the largest PSS sample of that tree during the run, MiB
    pss_mib: dict[str, float] = field(default_factory=dict)

    @property
    def server_pss_mib(self) -> float | None:
        return self.pss_mib.get(next(iter(self.cpu_percent), ""))

    @property
    def requests_per_cpu_second(self) -> float:
        return self.result.requests / self.server_cpu_seconds if self.server_cpu_seconds else 0.0

    def tree_cpu_percent(self, label: str) -> float | None:
        percents = self.cpu_percent.get(label)
        return sum(percents) if percents is not None else None


Results = tuple[dict[str, list[Measurement]], dict[str, str]]  # runs by row; failures by row


def all_cpu_ticks() -> dict[int, tuple[int, int]]:
    """PID -> (its own utime + stime, its waited-for children's cutime + cstime), in ticks."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))):
            ticks[int(entry.name)] = (
                int(fields[11]) + int(fields[12]),
                int(fields[13]) + int(fields[14]),
            )
    return ticks


class TreeSampler:
    """Samples the process trees of the watched servers while the load runs: every process
    seen (an environment started under load counts too) and each tree's summed PSS."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.seen: dict[str, set[int]] = {label: set() for label in roots}
        self.pss_kib: dict[str, list[int]] = {label: [] for label in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._snapshot(pss=False)
        # What ran when the load began: a process seen later started during the run.
        self.initial = {label: set(pids) for label, pids in self.seen.items()}

    def _snapshot(self, *, pss: bool) -> None:
        for label, pids in process_trees(self.roots).items():
            self.seen[label].update(pids)
            if pss:
                self.pss_kib[label].append(sum(pss_kb(pid) for pid in pids))

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_SECONDS):
            self._snapshot(pss=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._snapshot(pss=False)


# Extra one-second warm-ups, at most, while the server keeps starting processes.
EXTRA_WARMUPS = 5


def warm_up(load: Load, url: str, watched: Sequence[tuple[str, int]]) -> None:
    """The warm-up load; then, for as long as the last one made the server start processes (a
    Python hook's environments, one per concurrent request), one more second of it, so that
    the measured run has no cold starts in it."""
    if load.warmup_seconds <= 0:
        return
    roots = dict(watched[:1])

    def processes() -> set[int]:
        return {pid for pids in process_trees(roots).values() for pid in pids}

    seen = processes()
    load.run(url, load.warmup_seconds)
    for _ in range(EXTRA_WARMUPS):
        now = processes()
        if not now - seen:
            return
        seen |= now
        load.run(url, 1)


def measure(
    load: Load,
    url: str,
    watched: Sequence[tuple[str, int]],
    count_origin_fetches: Callable[[], int] | None = None,
) -> Measurement:
    """Warm up, then one measured wrk run while sampling the CPU time and memory of every
    watched process tree (and, for a cache-hit row, the origin's request count)."""
    warm_up(load, url, watched)
    fetches_before = count_origin_fetches() if count_origin_fetches else 0
    server = watched[0][0] if watched else None
    before = all_cpu_ticks()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with TreeSampler(dict(watched)) as sampler:
        started = time.monotonic()
        output = load.run(url, load.duration_seconds)
        elapsed = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = all_cpu_ticks()
    fetches = count_origin_fetches() - fetches_before if count_origin_fetches else None

    ticks_per_second = os.sysconf("SC_CLK_TCK")

    def delta(pid: int) -> int:
        """The process's CPU during the run, its reaped children's included. One that exited
        during the run counts 0 here: its time went to its parent's children time."""
        now = after.get(pid)
        if now is None:
            return 0
        then = before.get(pid, (0, 0))
        return max(0, now[0] - then[0]) + max(0, now[1] - then[1])

    def percent(ticks: int) -> float:
        return 100 * ticks / ticks_per_second / elapsed

    cpu = {
        label: sorted((percent(delta(p)) for p in pids), reverse=True)
        for label, pids in sampler.seen.items()
    }
    ours = {pid for pids in sampler.seen.values() for pid in pids} | {os.getpid()}
    others = sum(now[0] - before.get(p, (0, 0))[0] for p, now in after.items() if p not in ours)
    # wrk ended during the run and nothing else of ours did: the children's rusage grew by
    # wrk's CPU alone.
    wrk_seconds = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    result = parse_wrk(output)
    tree = sampler.seen.get(server, set()) if server else set()
    server_seconds = sum(delta(p) for p in tree) / ticks_per_second
    return Measurement(
        result,
        cpu,
        100 * wrk_seconds / elapsed,
        percent(others),
        1e6 * server_seconds / max(result.requests, 1),
        fetches,
        server_cpu_seconds=server_seconds,
        pss_mib={label: max(kib) / 1024 for label, kib in sampler.pss_kib.items() if kib},
        server_processes=len(tree),
        server_started=len(tree - sampler.initial.get(server, set())) if server else 0,
        elapsed_seconds=elapsed,
    )


def check(url: str) -> Message:
    """One GET before the load: a server that answers wrongly fails here, not in wrk's counts.

    Returns the response's headers. Each call is a new connection (urllib does not keep any).
    """
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            status = response.status
            headers: Message = response.headers
    except OSError as exc:
        raise StartFailed(f"GET {url} failed: {exc}") from None
    if status != 200 or body != BODY:
        raise StartFailed(f"GET {url}: status {status}, {len(body)} bytes, not the 1 KB file")
    return headers


def expect_header(url: str, name: str, value: str) -> None:
    """One checked GET whose response must carry `name: value`."""
    seen = check(url).get(name)
    if seen != value:
        raise StartFailed(f"GET {url}: {name} is {seen!r}, expected {value!r}")


def warm_until_hit(url: str, name: str, hit: str) -> None:
    """GET on new connections until PROBE_HITS_IN_A_ROW answers in a row say `name: hit`.

    The first answers of each worker are misses that fill its cache; new connections reach
    every worker (SO_REUSEPORT), so a run of hits means the workers are warm.
    """
    in_a_row, seen = 0, []
    for _ in range(PROBE_ATTEMPTS):
        value = check(url).get(name)
        seen.append(value)
        in_a_row = in_a_row + 1 if value == hit else 0
        if in_a_row == PROBE_HITS_IN_A_ROW:
            return
    raise StartFailed(
        f"GET {url}: no {PROBE_HITS_IN_A_ROW} answers in a row with {name}: {hit} in"
        f" {PROBE_ATTEMPTS} (last seen: {', '.join(map(repr, seen[-PROBE_HITS_IN_A_ROW:]))})"
    )


# --- tools ---------------------------------------------------------------------------------


def which(name: str) -> str | None:
    return shutil.which(name, path=TOOL_PATH)


def _apt(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": TOOL_PATH}
    console.print(f"[dim]$ apt-get {' '.join(args)}[/]")
    return subprocess.run(["apt-get", *args], env=env, check=False).returncode == 0


@contextlib.contextmanager
def services_held_back() -> Iterator[None]:
    """Installing nginx must not start a system nginx on port 80 (Debian's invoke-rc.d asks
    /usr/sbin/policy-rc.d; exit status 101 means "do not start"). Containers usually have one."""
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    policy.write_text(
        "#!/bin/sh\n# proxy_bench.py: hold services back while installing\nexit 101\n"
    )
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def can_install() -> bool:
    return which("apt-get") is not None and os.geteuid() == 0


def ensure_tools(want_nginx: bool) -> tuple[str | None, str | None]:
    """(wrk, nginx) paths, installing the missing ones from Debian's packages when possible."""
    missing = [name for name, wanted in (("wrk", True), ("nginx", want_nginx)) if wanted]
    missing = [name for name in missing if which(name) is None]
    if missing:
        if not can_install():
            console.print(
                f"[yellow]{' and '.join(missing)} not installed, and apt-get is unavailable"
                " (or this is not root): install them to run the rows that need them[/]"
            )
        else:
            with services_held_back():
                packages = ["wrk"] if "wrk" in missing else []
                if _apt("update", "-q") and "nginx" in missing:
                    # nginx-light (a small build) exists up to Debian 12; later only nginx.
                    shown = subprocess.run(
                        ["apt-cache", "show", "nginx-light"], capture_output=True, check=False
                    )
                    packages.append("nginx-light" if shown.returncode == 0 else "nginx")
                if packages:
                    _apt("install", "-y", "-q", "--no-install-recommends", *packages)
    return which("wrk"), which("nginx")


def ensure_miniflare() -> tuple[str, Path] | str:
    """(node, the miniflare package's directory), installing miniflare 3 from npm into
    CACHE_DIR when it is missing; or why the workerd row cannot run."""
    node, npm = which("node"), which("npm")
    if node is None:
        return "node is not installed"
    package = CACHE_DIR / "node_modules" / "miniflare"
    if not (package / "package.json").is_file():
        if npm is None:
            return "npm is not installed"
        command = [npm, "install", "--prefix", str(CACHE_DIR), "--no-audit", "--no-fund"]
        command += ["--loglevel=error", "miniflare@3"]
        console.print(f"[dim]$ {' '.join(command)}[/]")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return "npm install miniflare@3 did not finish in 10 minutes"
        if done.returncode != 0 or not (package / "package.json").is_file():
            return f"npm install miniflare@3 failed: {done.stderr.strip()[-500:]}"
    return node, package


def detect_engines() -> tuple[bool, tuple[str, ...]]:
    """(whether `edge serve` takes --engine, the engines it offers). Without the option only
    the default engine runs; with it, the choices its help lists (all of ENGINES when it
    lists none)."""
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "serve", "--help"],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])
            ),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"--engine\b(?:\s+\[([a-z|]+)\])?", done.stdout)
    if not found:
        return False, (DEFAULT_ENGINE,)
    offered = found.group(1).split("|") if found.group(1) else list(ENGINES)
    return True, tuple(engine for engine in ENGINES if engine in offered)


# --- report --------------------------------------------------------------------------------


def median_run(runs: Sequence[Measurement]) -> Measurement:
    """The run with the median req/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda m: m.result.requests_per_second)
    return ordered[(len(ordered) - 1) // 2]


def _verdict(met: bool) -> str:
    return "[green]met[/]" if met else "[yellow]missed[/]"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _share(target: Target, results: dict[str, list[Measurement]]) -> tuple[str, str, str]:
    """(share of the baseline by req/s, the same by CPU per request, the target's verdict)."""
    compare = target.compare
    if compare is None or not results.get(compare.baseline) or not results.get(target.name):
        return "", "", f"≥ {compare.goal:.0%}" if compare and compare.goal else ""
    row, base = median_run(results[target.name]), median_run(results[compare.baseline])
    ratio = row.result.requests_per_second / max(base.result.requests_per_second, 1e-9)
    by_cpu = base.server_cpu_us_per_request / max(row.server_cpu_us_per_request, 1e-9)
    verdict = ""
    if compare.goal is not None:
        verdict = f"≥ {compare.goal:.0%}: {_verdict(ratio >= compare.goal)}"
    return f"{ratio:.0%} of {compare.label}", f"{by_cpu:.0%}", verdict


def report(
    results: dict[str, list[Measurement]], failures: dict[str, str], targets: Sequence[Target]
) -> None:
    rounds = max((len(runs) for runs in results.values()), default=1)
    title = "GET /file (1 KB), the same load for every row"
    if rounds > 1:
        title += f"; the median of {rounds} rounds, with the range of req/s"
    table = Table(title=title, title_justify="left")
    table.add_column("row", no_wrap=True)
    engines = any(target.engine for target in targets)
    if engines:
        table.add_column("engine")
    numbers = ("req/s", *(("range",) if rounds > 1 else ()), "p50 / p99 ms", "errors")
    numbers += ("server CPU %", "req per CPU-s", "PSS MiB", "origin / wrk / others CPU %")
    for column in numbers:
        table.add_column(column, justify="right")
    table.add_column("share of req/s")
    table.add_column("by CPU/req", justify="right")
    table.add_column("target")
    blank = ("",) * (len(numbers) - 1)
    for target in targets:
        engine = (target.engine or "",) if engines else ()
        runs = results.get(target.name)
        if target.unavailable:
            table.add_row(target.title, *engine, "n/a", *blank, f"n/a ({target.unavailable})")
            continue
        if not runs:
            if target.name in failures:
                table.add_row(target.title, *engine, "[red]failed[/]", *blank)
            continue
        m = median_run(runs)
        r = m.result
        rates = [run.result.requests_per_second for run in runs]
        spread = (f"{min(rates):,.0f}-{max(rates):,.0f}",) if rounds > 1 else ()
        server = next(iter(m.cpu_percent), "")
        others = (m.tree_cpu_percent("origin"), m.wrk_cpu_percent, m.others_cpu_percent)
        table.add_row(
            target.title,
            *engine,
            f"{r.requests_per_second:,.0f}",
            *spread,
            f"{r.p50_ms:.2f} / {r.p99_ms:.2f}",
            str(sum(run.result.errors for run in runs)),
            _percent(m.tree_cpu_percent(server)),
            f"{m.requests_per_cpu_second:,.0f}",
            f"{m.server_pss_mib:.0f}" if m.server_pss_mib is not None else "",
            " / ".join(_percent(value) or "-" for value in others),
            *_share(target, results),
        )
    console.print(table)
    report_workerd(results, targets)

    for target in targets:
        counted = [run for run in results.get(target.name, []) if run.origin_fetches is not None]
        if not counted:
            continue
        fetches = sum(run.origin_fetches or 0 for run in counted)
        requests = sum(run.result.requests for run in counted)
        label = _label(target)
        if fetches == 0:
            console.print(f"{label}: 0 origin fetches in {requests:,} measured requests (all hits)")
        else:
            console.print(
                f"[yellow]{label}: {fetches:,} origin fetches in {requests:,} measured"
                " requests (not all hits)[/]"
            )

    for target in targets:
        started = [run.server_started for run in results.get(target.name, [])]
        if any(started):
            console.print(
                f"[yellow]{escape(_label(target))}: {sum(started)} server processes started"
                " during the measured run: cold starts are in its figures (each wrk run opens"
                " new connections, which the kernel may spread more unevenly over the workers"
                " than before; a longer --warmup makes that rarer)[/]"
            )
        for run in results.get(target.name, []):
            r = run.result
            if r.errors:
                details = ", ".join(f"{k} {v}" for k, v in r.socket_errors.items() if v)
                console.print(
                    f"[yellow]{_label(target)}: {r.errors} errors in {r.requests:,} requests"
                    f" (socket errors: {details or 'none'}; status >= 400: {r.bad_statuses})[/]"
                )
        if target.name in failures:
            console.print(
                f"[red]{escape(_label(target))} failed:[/] {escape(failures[target.name])}"
            )


def _label(target: Target) -> str:
    return f"{target.title} ({target.engine})" if target.engine else target.title


def report_workerd(results: dict[str, list[Measurement]], targets: Sequence[Target]) -> None:
    """The hook rows against workerd running the same hook: requests per CPU-second of the
    whole server (higher is better) and PSS under the load (lower is better)."""
    names = {target.name for target in targets}
    if "workerd" not in names:
        return
    peers = [t for t in targets if t.base in WORKERD_PEERS]
    if not peers:
        return
    workerd = median_run(results["workerd"]) if results.get("workerd") else None
    table = Table(
        title="The same hook (add X-Hook to the request, forward to the nginx origin):"
        " the edge against workerd, per CPU-second of the whole server and by memory under load",
        title_justify="left",
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("row", "left"),
        ("engine", "left"),
        ("req/s", "right"),
        ("req per CPU-s", "right"),
        ("vs workerd", "right"),
        (f"target ≥ {WORKERD_CPU_GOAL:g}x", "left"),
        ("PSS MiB (max)", "right"),
        ("processes", "right"),
        ("PSS vs workerd", "right"),
        ("target ≤ workerd", "left"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    workerd_target = next(t for t in targets if t.name == "workerd")
    for target in (workerd_target, *peers):
        engine = target.engine or ""
        if target.unavailable:
            table.add_row(target.title, engine, "n/a", "", f"n/a ({target.unavailable})")
            continue
        if not results.get(target.name):
            table.add_row(target.title, engine, "[red]failed[/]")
            continue
        m = median_run(results[target.name])
        cells = [
            target.title,
            engine,
            f"{m.result.requests_per_second:,.0f}",
            f"{m.requests_per_cpu_second:,.0f}",
        ]
        if target is workerd_target or workerd is None:
            cells += ["", ""]
        else:
            ratio = m.requests_per_cpu_second / max(workerd.requests_per_cpu_second, 1e-9)
            cells += [f"{ratio:.2f}x", _verdict(ratio >= WORKERD_CPU_GOAL)]
        pss = m.server_pss_mib
        cells += [f"{pss:.0f}" if pss is not None else "", str(m.server_processes)]
        if target is workerd_target or workerd is None or pss is None or not workerd.server_pss_mib:
            cells += ["", ""]
        else:
            share = pss / workerd.server_pss_mib
            cells += [f"{share:.2f}x", _verdict(share <= 1.0)]
        table.add_row(*cells)
    console.print(table)
    if workerd is not None:
        launcher_cpu = workerd.tree_cpu_percent("miniflare")
        launcher_pss = workerd.pss_mib.get("miniflare")
        console.print(
            "workerd's figures are the workerd process's. Not counted: miniflare's node launcher"
            f" (CPU {_percent(launcher_cpu) or '-'} %, PSS {launcher_pss or 0:.0f} MiB), which"
            " starts workerd and stays idle: requests go straight to workerd's socket."
        )


# --- main ----------------------------------------------------------------------------------


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, not {text!r}")
        return int(text)

    return parse


QUICK = {"duration": 3, "warmup": 1}
FULL = {"duration": 10, "warmup": 2}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    names = sorted({target.name for target in TARGETS} | {target.base for target in TARGETS})
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK['duration']} s per row after {QUICK['warmup']} s of warm-up (default"
        f" {FULL['duration']} s after {FULL['warmup']} s)",
    )
    parser.add_argument("--duration", type=_at_least(1), help="seconds per row")
    parser.add_argument("--warmup", type=_at_least(0), help="seconds of load before each row")
    parser.add_argument("--connections", type=_at_least(1), default=64, help="wrk -c (default 64)")
    parser.add_argument("--threads", type=_at_least(1), default=2, help="wrk -t (default 2)")
    parser.add_argument("--workers", type=_at_least(1), default=2, help="per server (default 2)")
    parser.add_argument(
        "--rounds", type=_at_least(1), default=1, help="measure every row N times; show the median"
    )
    parser.add_argument(
        "--engine",
        action="append",
        choices=ENGINES,
        help="run the edge rows with this engine only (repeatable; default: both)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help="run only this row (repeatable; a name without the engine picks both engines'"
        f" rows): {', '.join(names)}",
    )
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("wrk needs at least one connection per thread (--connections >= --threads)")
    preset = QUICK if args.quick else FULL
    args.duration = args.duration if args.duration is not None else preset["duration"]
    args.warmup = args.warmup if args.warmup is not None else preset["warmup"]
    return args


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the servers


def run_rows(bench: Bench, load: Load, targets: Sequence[Target], rounds: int) -> Results:
    """Each row once per round (rows interleaved, so slow drift on a shared machine spreads
    over all of them); a row that fails is not tried again, one not available is skipped."""
    results: dict[str, list[Measurement]] = {target.name: [] for target in targets}
    failures: dict[str, str] = {}
    for round_number in range(1, rounds + 1):
        if rounds > 1:
            console.print(f"[dim]round {round_number} of {rounds}[/]")
        for target in targets:
            if target.name in failures or target.unavailable:
                continue
            console.print(f"{escape(_label(target))} ...", end=" ")
            try:
                started = target.start(bench)
                try:
                    check(started.url + FILE_PATH)
                    run = measure(
                        load, started.url + FILE_PATH, started.watched, started.count_origin_fetches
                    )
                finally:
                    for process in started.owned:
                        bench.stop(process)
            except (StartFailed, ValueError, subprocess.TimeoutExpired) as exc:
                failures[target.name] = str(exc)
                console.print("[red]failed[/]")
                continue
            results[target.name].append(run)
            console.print(f"{run.result.requests_per_second:,.0f} req/s")
    return results, failures


def select_targets(args: argparse.Namespace) -> list[Target]:
    chosen = set(args.only or ())
    return [
        target
        for target in TARGETS
        if (target.name in chosen or target.base in chosen if chosen else target.default)
        and (target.engine is None or not args.engine or target.engine in args.engine)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    began = time.monotonic()
    targets = select_targets(args)
    wrk, nginx = ensure_tools(any(t.needs_nginx for t in targets))
    if wrk is None:
        if can_install():
            console.print("[red]wrk could not be installed (see apt-get's output above)[/]")
            return 1
        console.print("[yellow]skipped: wrk is not installed and cannot be installed here[/]")
        return 0
    if nginx is None and any(t.needs_nginx for t in targets):
        skipped = [t.name for t in targets if t.needs_nginx]
        console.print(f"[yellow]nginx is not available: skipping {', '.join(skipped)}[/]")
        targets = [t for t in targets if not t.needs_nginx]
    engine_flag, engines = detect_engines()
    targets = [
        replace(t, unavailable="engine not available")
        if t.engine is not None and t.engine not in engines
        else t
        for t in targets
    ]
    miniflare: tuple[str, Path] | None = None
    if any(t.name == "workerd" for t in targets):
        found = ensure_miniflare()
        if isinstance(found, str):
            targets = [replace(t, unavailable=found) if t.name == "workerd" else t for t in targets]
        else:
            miniflare = found
    load = Load(wrk, args.threads, args.connections, args.duration, args.warmup)
    console.print(
        f"wrk -t{load.threads} -c{load.connections} -d{load.duration_seconds}s --latency"
        f" (after {load.warmup_seconds} s of warm-up); {args.workers} workers per server;"
        f" {os.cpu_count()} CPUs; edge engines: {', '.join(engines)}"
        + ("" if engine_flag else " (edge serve has no --engine)")
    )
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        bench = Bench(Path(tmp), args.workers, nginx, engine_flag=engine_flag, miniflare=miniflare)
        bench.prepare()
        try:
            results, failures = run_rows(bench, load, targets, args.rounds)
        finally:
            bench.close()
    report(results, failures, targets)
    console.print(f"[dim]{time.monotonic() - began:.0f} s in all[/]")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
