"""Benchmark of whole servers: the edge against nginx, under one wrk load, in one run.

Run by hand (pytest does not collect it):

    python tests/benchmarks/proxy_bench.py [--duration 10] [--connections 64] [--only NAME ...]

Every server runs on 127.0.0.1 on an ephemeral port with the same number of worker processes
and answers GET /file with the same 1 KB body. Each row is started, checked with one GET,
warmed up, driven by `wrk -t2 -cN -dDs --latency`, and stopped by its PID before the next row
starts, so rows do not compete for the machine's cores (wrk shares them with the server; the
CPU columns show who used what). The nginx origin is the one exception: it lives for the whole
run, since the proxy rows forward to it.

Missing wrk or nginx is installed from Debian's packages (as root); without apt the rows that
cannot run are skipped with a message. The exit status is 1 only when something failed to start
or to answer; a missed target is reported, never an error.

A row is one `Target`: a name, a title and a function that starts the server and returns its
URL (see TARGETS). `Bench.start_edge` takes any `edge serve` arguments, so rows for hooks or
cache hits are one entry each.

Caching is explicit in every edge row. The plain proxy and directory rows run with
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
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parents[2]
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
# /usr/sbin is not on every PATH (a non-login root shell, a venv's activate script).
TOOL_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])

# Wide enough for the table when the output goes to a file.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)


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


def descendants(root: int) -> list[int]:
    """`root` and every process below it (nginx workers, the edge's forked workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of `pid` in clock ticks (0 once it is gone)."""
    fields = _proc_stat(pid)
    return int(fields[11]) + int(fields[12]) if fields else 0


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
        family = descendants(self.pid)
        # SIGTERM: the edge drains and stops its workers; nginx does a fast shutdown.
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{self.name} (pid {self.pid}) ignored SIGTERM; killing it[/]")
            for pid in reversed(family):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
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
    # As the edge's hypercorn settings: keep-alive connections are not recycled.
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
    # (label, root PID): the CPU of each process tree is sampled during the measured run.
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
    processes: list[Process] = field(default_factory=list)
    _origin: Process | None = None
    _origin_url: str = ""

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

        Under CACHEABLE_PREFIX it serves the same files fresh for an hour (`expires 1h` sends
        Cache-Control: max-age=3600) and logs each request, so a cache-hit row can show that
        none reached it. The plain location keeps sending no freshness information.
        """
        if self._origin is None:
            locations = (
                f"        location / {{ root {self.docroot}; }}\n"
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

    def start_edge(self, name: str, *serve_args: str, behind_origin: bool = False) -> Started:
        """`edge serve SERVE_ARGS` on a port of its own choosing, found in its banner.

        `behind_origin`: the edge forwards to the nginx origin, whose CPU the row then shows.
        """
        argv = [sys.executable, "-m", "edge.cli", "serve", *serve_args]
        argv += ["--listen", "127.0.0.1:0", "--workers", str(self.workers), "--no-access-log"]
        process = self.spawn(name, argv)
        port = self._await_banner(process)
        return Started(
            f"http://127.0.0.1:{port}",
            (process,),
            (("edge", process.pid), *(self.origin_watch() if behind_origin else ())),
        )

    def start_edge_uncached(self, name: str, origin: dict[str, str]) -> Started:
        """The edge with one behavior to `origin` (a `[origins.*]` table) and its cache off."""
        config = self.root / f"{name}.toml"
        table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in origin.items())
        config.write_text(
            f'[origins.origin]\n{table}\n[[behaviors]]\npath = "*"\norigin = "origin"\n'
            'cache = "disabled"\n'
        )
        started = self.start_edge(name, str(config), behind_origin="url" in origin)
        try:
            # Every request must go to the origin: not even a second one may be a hit.
            for _ in range(2):
                expect_header(started.url + FILE_PATH, "x-cache", "Miss from edge")
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


def start_edge_cache(bench: Bench) -> Started:
    """`edge serve --origin http://<origin>/cacheable`: the default policy (RFC 9111) keeps the
    origin's max-age=3600 responses; warmed until a probe shows a hit."""
    started = bench.start_edge(
        "edge-cache", "--origin", bench.cacheable_origin_url(), behind_origin=True
    )
    try:
        warm_until_hit(started.url + FILE_PATH, "x-cache", "Hit from edge")
    except StartFailed:
        for process in started.owned:
            bench.stop(process)
        raise
    return Started(started.url, started.owned, started.watched, bench.cacheable_fetches)


@dataclass(frozen=True)
class Target:
    """One row: `start` returns a server answering GET {url}/file with BODY."""

    name: str
    title: str
    start: Callable[[Bench], Started]
    needs_nginx: bool = False


TARGETS: tuple[Target, ...] = (
    Target("nginx-origin", "nginx origin direct", start_nginx_origin, needs_nginx=True),
    Target("nginx-proxy", "nginx proxy", start_nginx_proxy, needs_nginx=True),
    Target("nginx-cache", "nginx proxy_cache hits", start_nginx_cache, needs_nginx=True),
    Target(
        "edge-proxy",
        "edge proxy (HTTP origin, cache off)",
        lambda bench: bench.start_edge_uncached("edge-proxy", {"url": bench.origin_url()}),
        needs_nginx=True,
    ),
    Target(
        "edge-directory",
        "edge directory origin (cache off)",
        lambda bench: bench.start_edge_uncached(
            "edge-directory", {"directory": str(bench.docroot)}
        ),
    ),
    Target("edge-cache", "edge cache hits", start_edge_cache, needs_nginx=True),
    Target("hello", "bare hello ceiling", Bench.start_hello),
)

# (label, numerator row, denominator row, target fraction or None)
RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    ("edge proxy / nginx proxy", "edge-proxy", "nginx-proxy", None),
    ("edge proxy / hello ceiling", "edge-proxy", "hello", 0.5),
    ("edge directory / hello ceiling", "edge-directory", "hello", 0.8),
    ("edge cache hits / nginx proxy_cache hits", "edge-cache", "nginx-cache", None),
    ("edge cache hits / hello ceiling", "edge-cache", "hello", None),
    ("edge cache hits / edge directory", "edge-cache", "edge-directory", None),
)


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


Results = tuple[dict[str, list[Measurement]], dict[str, str]]  # runs by row; failures by row


def all_cpu_ticks() -> dict[int, int]:
    return {int(e.name): cpu_ticks(int(e.name)) for e in os.scandir("/proc") if e.name.isdigit()}


def measure(
    load: Load,
    url: str,
    watched: Sequence[tuple[str, int]],
    count_origin_fetches: Callable[[], int] | None = None,
) -> Measurement:
    """Warm up, then one measured wrk run while sampling the CPU time of every process (and,
    for a cache-hit row, the origin's request count)."""
    if load.warmup_seconds > 0:
        load.run(url, load.warmup_seconds)
    fetches_before = count_origin_fetches() if count_origin_fetches else 0
    trees = {label: descendants(pid) for label, pid in watched}
    ours = {pid for pids in trees.values() for pid in pids} | {os.getpid()}
    before = all_cpu_ticks()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    output = load.run(url, load.duration_seconds)
    elapsed = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = all_cpu_ticks()
    fetches = count_origin_fetches() - fetches_before if count_origin_fetches else None

    ticks_per_second = os.sysconf("SC_CLK_TCK")

    def percent(ticks: int) -> float:
        return 100 * ticks / ticks_per_second / elapsed

    cpu = {
        label: sorted((percent(after.get(p, 0) - before.get(p, 0)) for p in pids), reverse=True)
        for label, pids in trees.items()
    }
    others = sum(ticks - before.get(p, 0) for p, ticks in after.items() if p not in ours)
    # wrk ended during the run and nothing else of ours did: the children's rusage grew by
    # wrk's CPU alone.
    wrk_seconds = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    result = parse_wrk(output)
    server = trees[watched[0][0]] if watched else []
    server_seconds = sum(after.get(p, 0) - before.get(p, 0) for p in server) / ticks_per_second
    return Measurement(
        result,
        cpu,
        100 * wrk_seconds / elapsed,
        percent(others),
        1e6 * server_seconds / max(result.requests, 1),
        fetches,
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


# --- report --------------------------------------------------------------------------------


def _cpu_text(measurement: Measurement) -> str:
    parts = []
    for label, percents in measurement.cpu_percent.items():
        busy = [f"{p:.0f}" for p in percents if p >= 1.0] or ["0"]
        parts.append(f"{label} {'/'.join(busy)}")
    return ", ".join(parts)


def median_run(runs: Sequence[Measurement]) -> Measurement:
    """The run with the median req/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda m: m.result.requests_per_second)
    return ordered[(len(ordered) - 1) // 2]


def report(
    results: dict[str, list[Measurement]], failures: dict[str, str], targets: Sequence[Target]
) -> None:
    rounds = max((len(runs) for runs in results.values()), default=1)
    title = "GET /file (1 KB), the same load for every row"
    if rounds > 1:
        title += f"; the median of {rounds} rounds, with the range of req/s"
    table = Table(title=title, title_justify="left")
    table.add_column("row")
    for column in ("req/s", *(("range",) if rounds > 1 else ()), "p50 ms", "p99 ms", "errors"):
        table.add_column(column, justify="right")
    table.add_column("CPU µs/req", justify="right")
    table.add_column("server CPU % (per process)")
    table.add_column("wrk CPU %", justify="right")
    table.add_column("others CPU %", justify="right")
    for target in targets:
        runs = results.get(target.name)
        if not runs:
            if target.name in failures:
                table.add_row(target.title, "failed")
            continue
        m = median_run(runs)
        r = m.result
        rates = [run.result.requests_per_second for run in runs]
        spread = (f"{min(rates):,.0f}-{max(rates):,.0f}",) if rounds > 1 else ()
        table.add_row(
            target.title,
            f"{r.requests_per_second:,.0f}",
            *spread,
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(sum(run.result.errors for run in runs)),
            f"{m.server_cpu_us_per_request:.0f}",
            _cpu_text(m),
            f"{m.wrk_cpu_percent:.0f}",
            f"{m.others_cpu_percent:.0f}",
        )
    console.print(table)

    for label, top, bottom, goal in RATIOS:
        if not results.get(top) or not results.get(bottom):
            continue
        upper, lower = median_run(results[top]), median_run(results[bottom])
        ratio = upper.result.requests_per_second / max(lower.result.requests_per_second, 1e-9)
        # The same ratio from CPU time per request (lower is better, hence inverted).
        by_cpu = lower.server_cpu_us_per_request / max(upper.server_cpu_us_per_request, 1e-9)
        verdict = ""
        if goal is not None:
            met = "[green]met[/]" if ratio >= goal else "[yellow]missed[/]"
            verdict = f"  (target >= {goal:.0%}: {met})"
        console.print(f"{label}: {ratio:.1%} by req/s{verdict}; {by_cpu:.1%} by CPU per request")

    for target in targets:
        counted = [run for run in results.get(target.name, []) if run.origin_fetches is not None]
        if not counted:
            continue
        fetches = sum(run.origin_fetches or 0 for run in counted)
        requests = sum(run.result.requests for run in counted)
        if fetches == 0:
            console.print(
                f"{target.title}: 0 origin fetches in {requests:,} measured requests (all hits)"
            )
        else:
            console.print(
                f"[yellow]{target.title}: {fetches:,} origin fetches in {requests:,} measured"
                " requests (not all hits)[/]"
            )

    for target in targets:
        for run in results.get(target.name, []):
            r = run.result
            if r.errors:
                details = ", ".join(f"{k} {v}" for k, v in r.socket_errors.items() if v)
                console.print(
                    f"[yellow]{target.title}: {r.errors} errors in {r.requests:,} requests"
                    f" (socket errors: {details or 'none'}; status >= 400: {r.bad_statuses})[/]"
                )
        if target.name in failures:
            console.print(f"[red]{escape(target.title)} failed:[/] {escape(failures[target.name])}")


# --- main ----------------------------------------------------------------------------------


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, not {text!r}")
        return int(text)

    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    names = [target.name for target in TARGETS]
    parser.add_argument(
        "--duration", type=_at_least(1), default=10, help="seconds per row (default 10)"
    )
    parser.add_argument(
        "--warmup", type=_at_least(0), default=2, help="seconds before each (default 2)"
    )
    parser.add_argument("--connections", type=_at_least(1), default=64, help="wrk -c (default 64)")
    parser.add_argument("--threads", type=_at_least(1), default=2, help="wrk -t (default 2)")
    parser.add_argument("--workers", type=_at_least(1), default=2, help="per server (default 2)")
    parser.add_argument(
        "--rounds", type=_at_least(1), default=1, help="measure every row N times; show the median"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this row (repeatable): {', '.join(names)}",
    )
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("wrk needs at least one connection per thread (--connections >= --threads)")
    return args


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the servers


def run_rows(bench: Bench, load: Load, targets: Sequence[Target], rounds: int) -> Results:
    """Each row once per round (rows interleaved, so slow drift on a shared machine spreads
    over all of them); a row that fails is not tried again."""
    results: dict[str, list[Measurement]] = {target.name: [] for target in targets}
    failures: dict[str, str] = {}
    for round_number in range(1, rounds + 1):
        if rounds > 1:
            console.print(f"[dim]round {round_number} of {rounds}[/]")
        for target in targets:
            if target.name in failures:
                continue
            console.print(f"{escape(target.title)} ...", end=" ")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
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
    load = Load(wrk, args.threads, args.connections, args.duration, args.warmup)
    console.print(
        f"wrk -t{load.threads} -c{load.connections} -d{load.duration_seconds}s --latency"
        f" (after {load.warmup_seconds} s of warm-up); {args.workers} workers per server;"
        f" {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        bench = Bench(Path(tmp), args.workers, nginx)
        bench.prepare()
        try:
            results, failures = run_rows(bench, load, targets, args.rounds)
        finally:
            bench.close()
    report(results, failures, targets)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
