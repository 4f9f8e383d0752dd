"""Benchmark of what one warm Python Lambda@Edge hook costs: under load, per call, per start.

Run by hand from the repository root (pytest does not collect it):

    python -m tests.benchmarks.hook_bench [--duration 10] [--rounds 1] [--only NAME ...]

Three parts, measured one after the other in the same run (each round does all of them, so on a
shared machine slow drift spreads over every figure):

1. Through the edge under wrk load (the rows and the load of `proxy_bench`): `edge serve` with a
   directory origin, and with the nginx origin, each without a function and with one Python
   viewer-request function that adds a header. Shows req/s, p50/p99, the hook's share of the
   throughput and what it adds per request (latency and server CPU, function processes included).
2. The warm invocation round trip, in this process: `PythonFunctionPool.invoke` of a ~1 KB
   viewer-request event, alone and with the edge's per-hook work around it (`build_event`,
   `decode_result`, the Lambda log line written out).
3. Starting an execution environment from the function's zygote up to the handler's module
   imported, and launching that zygote (`--isolation` picks the sandbox: auto, namespaces,
   uid-only or none, to compare what isolation costs).

The exit status is 1 only when something failed to install, start or answer; a missed target
is reported, never an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

import orjson
import uvloop
from rich.markup import escape
from rich.table import Table

if __package__ in (None, ""):
    # Run as a file: make the repository importable (tests.benchmarks, edge, sandbox).
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge.events import (
    EdgeEvent,
    EventConfig,
    EventType,
    Request,
    UpdatedRequest,
    build_event,
    decode_result,
    sample_event,
)
from sandbox.python_worker.environment import ExecutionEnvironment
from sandbox.python_worker.framing import KIND_INVOKE, Frame, FrameDecoder, encode_frame
from sandbox.python_worker.function import PythonFunctionPool
from sandbox.python_worker.isolation import SandboxPolicy, probe_isolation
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.spec import FunctionSpec
from sandbox.runtime.protocol import Invocation
from tests.benchmarks import proxy_bench as pb

console = pb.console

HANDLER_MODULE = "add_header"
HANDLER_FUNCTION = "handler"
# A plain Lambda@Edge viewer-request handler: add one header, return the request.
HANDLER_SOURCE = '''\
"""Viewer-request: add X-Hook: 1 to the request."""


def handler(event, context):
    request = event["Records"][0]["cf"]["request"]
    request["headers"]["x-hook"] = [{"key": "X-Hook", "value": "1"}]
    return request
'''

HOOK_RATIO_TARGET = 0.75  # with the hook, at least 75 % of the req/s without it
INVOKE_P50_TARGET_US = 80.0
START_P50_TARGET_MS = 10.0
EVENT_TARGET_BYTES = 1024
INIT_TIMEOUT_SECONDS = 10.0
# Zygote launches timed per round (each a fresh interpreter, under bubblewrap when confined).
ZYGOTE_LAUNCHES = 10

# What a browser sends (lower-case names, as an ASGI server hands them to the pipeline);
# padded with X-Pad-N headers until the event reaches EVENT_TARGET_BYTES.
VIEWER_HEADERS: tuple[tuple[str, str], ...] = (
    ("host", "d111111abcdef8.cloudfront.net"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
    ),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-GB,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br"),
    ("cookie", "session=5f2b8c1e9a7d4e3b; theme=dark"),
)
CLIENT_IP = "203.0.113.178"
EVENT_CONFIG = EventConfig(
    "d111111abcdef8.cloudfront.net",
    "EDFDVBD6EXAMPLE",
    "4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==",
)

HTTP_ROWS = (
    "directory",
    "directory-hook",
    "directory-wasm",
    "directory-wasm-reused",
    "directory-node",
    "proxy",
    "proxy-hook",
)
INVOKE = "invoke"
START = "start"
WASM = "wasm"
NODE = "node"
PROVIDED = "provided"
# Issue targets for WASM hooks: throughput with the hook vs without, per-invocation p50.
WASM_RATIO_TARGETS = {"directory-wasm": 0.85, "directory-wasm-reused": 0.90}
WASM_P50_TARGETS_US = {"fresh": 60.0, "reused": 20.0}
CLOUDFRONT_FUNCTION = "cloudfront-function"
CLOUDFRONT_FUNCTION_P50_TARGET_US = 50.0


class BenchFailed(Exception):
    """A part of the benchmark could not run (a process did not start, a hook did not run)."""


# --- the handler and the event -------------------------------------------------------------


def write_handler(directory: Path) -> Path:
    """The handler's file in `directory` (its code directory, readable by every process)."""
    directory.mkdir(mode=0o755, exist_ok=True)
    path = directory / f"{HANDLER_MODULE}.py"
    path.write_text(HANDLER_SOURCE)
    path.chmod(0o644)
    return path


def viewer_headers() -> list[tuple[str, str]]:
    """VIEWER_HEADERS padded so that the viewer-request event is ~EVENT_TARGET_BYTES."""
    headers = list(VIEWER_HEADERS)
    while len(viewer_event_bytes(headers)) < EVENT_TARGET_BYTES:
        headers.append((f"x-pad-{len(headers)}", "0123456789abcdef"))
    return headers


def viewer_event_bytes(headers: Sequence[tuple[str, str]]) -> bytes:
    event = sample_event(
        EventType.VIEWER_REQUEST, uri="/file", headers=headers, client_ip=CLIENT_IP
    )
    return orjson.dumps(event)


def viewer_request(headers: Sequence[tuple[str, str]]) -> Request:
    """The pipeline's view of the same request (what it hands to `build_event`)."""
    return Request(client_ip=CLIENT_IP, method="GET", uri="/file", headers=headers)


def function_spec(code_dir: Path, max_concurrency: int = 1) -> FunctionSpec:
    # The viewer-request limit (5 s) as the timeout, as the edge uses for viewer triggers.
    return FunctionSpec(
        name="hook-bench-add-header",
        handler=f"{HANDLER_MODULE}.{HANDLER_FUNCTION}",
        code_dir=code_dir,
        timeout_seconds=5.0,
        max_concurrency=max_concurrency,
    )


def hook_ran(event: EdgeEvent, payload: bytes) -> bool:
    outcome = decode_result(event, payload)
    return isinstance(outcome, UpdatedRequest) and ("X-Hook", "1") in outcome.headers


# --- statistics ----------------------------------------------------------------------------


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.99 for p99) of a non-empty sample."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Series:
    """Samples of one figure (in `unit`s), kept per round so rounds can be compared."""

    title: str
    unit: str
    what: str
    rounds: list[list[float]] = field(default_factory=list)

    @property
    def samples(self) -> list[float]:
        return [sample for one in self.rounds for sample in one]

    def p50(self) -> float:
        return statistics.median(self.samples)

    def p99(self) -> float:
        return percentile(self.samples, 0.99)

    def round_p50s(self) -> list[float]:
        return [statistics.median(one) for one in self.rounds if one]


# --- part 1: through the edge under load ---------------------------------------------------


def start_edge_row(bench: pb.Bench, name: str, *, nginx_origin: bool, hook: bool) -> pb.Started:
    """`edge serve --origin ...`, with the handler on viewer-request when `hook`.

    The function's START/END/REPORT lines go to the edge's stderr, which `Bench.spawn` sends to
    the row's log file (truncated when the row starts again in the next round).
    """
    origin = bench.origin_url() if nginx_origin else str(bench.docroot)
    args = ["--origin", origin]
    if hook:
        handler = write_handler(bench.root / "functions")
        args += ["--viewer-request", f"{handler}::{HANDLER_FUNCTION}"]
    started = bench.start_edge(name, *args, behind_origin=nginx_origin)
    if hook:
        # The hook must really run: one request, then its invocation's REPORT in the log (the
        # edge writes and flushes it before it answers).
        try:
            pb.check(started.url + pb.FILE_PATH)
        except pb.StartFailed:
            for process in started.owned:
                bench.stop(process)
            raise
        process = started.owned[0]
        if "REPORT RequestId:" not in process.log.read_text(errors="replace"):
            tail = process.log_tail()
            bench.stop(process)
            raise pb.StartFailed(f"{name}: the viewer-request function did not run:\n{tail}")
    return started


def wasm_hook_module() -> Path:
    """The C redirects guest of examples/wasm (viewer-request: parses the event, returns the
    request), built from source with ziglang (cached by source hash)."""
    from tests.wasm_guests.build import build_guest, find_guest

    return build_guest(find_guest("redirects", "c"))


def start_wasm_row(bench: pb.Bench, name: str, *, reuse: bool) -> pb.Started:
    """The edge with a WASM viewer-request hook on a directory origin (a config file)."""
    module = wasm_hook_module()
    config = bench.root / f"{name}.toml"
    config.write_text(
        f'[origins.site]\ndirectory = "{bench.docroot}"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\nviewer-request = "hook"\n\n'
        f'[functions.hook]\nruntime = "wasm"\nmodule = "{module}"\n'
        f"reuse_instance = {'true' if reuse else 'false'}\n"
    )
    started = bench.start_edge(name, str(config))
    pb.check(started.url + pb.FILE_PATH)
    return started


def start_node_row(bench: pb.Bench, name: str) -> pb.Started:
    """The edge with a Node.js viewer-request hook (the Python handler's twin) on a directory
    origin (a config file)."""
    code_dir = bench.root / "node-functions"
    code_dir.mkdir(mode=0o755, exist_ok=True)
    (code_dir / "add_header.js").write_text(NODE_HANDLER_SOURCE)
    (code_dir / "add_header.js").chmod(0o644)
    config = bench.root / f"{name}.toml"
    config.write_text(
        f'[origins.site]\ndirectory = "{bench.docroot}"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\nviewer-request = "hook"\n\n'
        f'[functions.hook]\nruntime = "nodejs"\nhandler = "{code_dir}/add_header.handler"\n'
    )
    started = bench.start_edge(name, str(config))
    pb.check(started.url + pb.FILE_PATH)
    process = started.owned[0]
    if "REPORT RequestId:" not in process.log.read_text(errors="replace"):
        tail = process.log_tail()
        bench.stop(process)
        raise pb.StartFailed(f"{name}: the Node.js viewer-request function did not run:\n{tail}")
    return started


HTTP_TARGETS: tuple[pb.Target, ...] = (
    pb.Target(
        "directory-wasm",
        "edge, directory origin, WASM viewer-request hook (fresh instance)",
        lambda bench: start_wasm_row(bench, "directory-wasm", reuse=False),
    ),
    pb.Target(
        "directory-wasm-reused",
        "edge, directory origin, WASM viewer-request hook (reused instance)",
        lambda bench: start_wasm_row(bench, "directory-wasm-reused", reuse=True),
    ),
    pb.Target(
        "directory-node",
        "edge, directory origin, Node.js viewer-request hook",
        lambda bench: start_node_row(bench, "directory-node"),
    ),
    pb.Target(
        "directory",
        "edge, directory origin, no function",
        lambda bench: start_edge_row(bench, "directory", nginx_origin=False, hook=False),
    ),
    pb.Target(
        "directory-hook",
        "edge, directory origin, viewer-request hook",
        lambda bench: start_edge_row(bench, "directory-hook", nginx_origin=False, hook=True),
    ),
    pb.Target(
        "proxy",
        "edge, nginx origin, no function",
        lambda bench: start_edge_row(bench, "proxy", nginx_origin=True, hook=False),
        needs_nginx=True,
    ),
    pb.Target(
        "proxy-hook",
        "edge, nginx origin, viewer-request hook",
        lambda bench: start_edge_row(bench, "proxy-hook", nginx_origin=True, hook=True),
        needs_nginx=True,
    ),
)

# (label, with the hook, without it)
HOOK_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("directory origin", "directory-hook", "directory"),
    ("directory origin, WASM fresh", "directory-wasm", "directory"),
    ("directory origin, WASM reused", "directory-wasm-reused", "directory"),
    ("directory origin, Node.js", "directory-node", "directory"),
    ("nginx origin", "proxy-hook", "proxy"),
)


def report_http(
    results: dict[str, list[pb.Measurement]], failures: dict[str, str], rows: Sequence[pb.Target]
) -> None:
    pb.report(results, failures, rows)
    for label, with_hook, without in HOOK_PAIRS:
        if not results.get(with_hook) or not results.get(without):
            continue
        hooked, plain = pb.median_run(results[with_hook]), pb.median_run(results[without])
        h, p = hooked.result, plain.result
        ratio = h.requests_per_second / max(p.requests_per_second, 1e-9)
        goal = WASM_RATIO_TARGETS.get(with_hook, HOOK_RATIO_TARGET)
        met = "[green]met[/]" if ratio >= goal else "[yellow]missed[/]"
        by_cpu = plain.server_cpu_us_per_request / max(hooked.server_cpu_us_per_request, 1e-9)
        # The edge's tree: the master, its workers, their zygotes and the environments.
        processes = len(hooked.cpu_percent.get("edge", []))
        console.print(
            f"[bold]{label}[/]: with the hook {h.requests_per_second:,.0f} req/s, without"
            f" {p.requests_per_second:,.0f}: {ratio:.1%} (target >= {goal:.0%}:"
            f" {met}); {by_cpu:.1%} by server CPU per request"
        )
        console.print(
            f"  p50 {h.p50_ms:.2f} ms vs {p.p50_ms:.2f} ms ({h.p50_ms - p.p50_ms:+.2f} ms),"
            f" p99 {h.p99_ms:.2f} ms vs {p.p99_ms:.2f} ms ({h.p99_ms - p.p99_ms:+.2f} ms);"
            f" server CPU {hooked.server_cpu_us_per_request - plain.server_cpu_us_per_request:+.0f}"
            f" µs per request (edge, zygotes and environments: {processes} processes)"
        )
        pairs = list(zip(results[with_hook], results[without], strict=False))
        if len(pairs) > 1:
            # Rows of one round ran back to back: their ratio cancels drift between rounds.
            per_round = [
                a.result.requests_per_second / max(b.result.requests_per_second, 1e-9)
                for a, b in pairs
            ]
            console.print(
                f"  ratio per round: {' / '.join(f'{r:.0%}' for r in per_round)}"
                f" (median {statistics.median(per_round):.1%})"
            )
    if any(results.get(pair[1]) for pair in HOOK_PAIRS):
        console.print(
            "[dim]  Under wrk's closed loop (64 connections always busy) the added p50 is mostly"
            " queueing: about connections / req/s. The added server CPU per request is the"
            " hook's own cost.[/]"
        )


# --- part 2: the warm invocation round trip ------------------------------------------------


class LogSink:
    """The edge's default sink (`edge.functions.stderr_sink`: write, flush), to /dev/null,
    switched on only for the series that includes it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.active = False

    def __call__(self, text: str) -> None:
        if self.active:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()


# The floor under an invocation: the same frame to a process that only echoes it back, with the
# runtime's I/O pattern (buffered read of header and body, one sendall) and none of its work.
ECHO_SOURCE = """\
import socket, struct, sys
header = struct.Struct("!BIII")
sock = socket.socket(fileno=int(sys.argv[1]))
reader = sock.makefile("rb")
while True:
    head = reader.read(header.size)
    if len(head) < header.size:
        break
    kind, meta_length, log_length, blob_length = header.unpack(head)
    body = reader.read(meta_length + log_length + blob_length)
    sock.sendall(header.pack(3, meta_length, log_length, blob_length) + body)
"""


class _EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.waiter: asyncio.Future[Frame] | None = None

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the echo process went away"))


class EchoProcess:
    """A fresh interpreter echoing frames over a socketpair, driven like an environment."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        transport: asyncio.Transport,
        protocol: _EchoProtocol,
    ) -> None:
        self.process = process
        self.transport = transport
        self.protocol = protocol

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls) -> AsyncIterator[EchoProcess]:
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with host_end:
            with child_end:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-I",
                    "-c",
                    ECHO_SOURCE,
                    str(child_end.fileno()),
                    pass_fds=(child_end.fileno(),),
                    stdin=asyncio.subprocess.DEVNULL,
                )
            try:
                host_end.setblocking(False)
                loop = asyncio.get_running_loop()
                transport, protocol = await loop.create_unix_connection(
                    _EchoProtocol, sock=host_end.dup()
                )
                try:
                    yield cls(process, transport, protocol)
                finally:
                    transport.close()  # EOF: the echo loop ends
            finally:
                try:
                    await asyncio.wait_for(process.wait(), pb.STOP_TIMEOUT_SECONDS)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    async def round_trip(self, frame: bytes) -> Frame:
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.protocol.waiter = waiter
        self.transport.write(frame)
        return await waiter


@dataclass
class InvokeSeries:
    floor: Series = field(
        default_factory=lambda: Series(
            "floor: echo the frame",
            "µs",
            "the same invoke frame to a process that only echoes it (buffered read, sendall),"
            " over the same kind of socket and event loop: the OS and loop round trip",
        )
    )
    invoke: Series = field(
        default_factory=lambda: Series(
            "pool.invoke(event bytes)",
            "µs",
            "PythonFunctionPool.invoke of a ready JSON event: frame out, handler, frame back,"
            " the REPORT text built",
        )
    )
    hook: Series = field(
        default_factory=lambda: Series(
            "+ build_event, decode_result",
            "µs",
            "Request -> build_event (orjson) -> invoke -> decode_result (validation): what"
            " TriggerRunner.run does per hook",
        )
    )
    logged: Series = field(
        default_factory=lambda: Series(
            "+ the log written",
            "µs",
            "the same, plus the START/END/REPORT text written and flushed to /dev/null, as the"
            " edge's stderr sink does",
        )
    )


async def measure_invocations(
    code_dir: Path, count: int, warmup: int, into: InvokeSeries, sandbox: SandboxPolicy
) -> tuple[int, int]:
    """One round of the three series; returns the sizes of the two events (bytes)."""
    headers = viewer_headers()
    event_bytes = viewer_event_bytes(headers)
    request = viewer_request(headers)
    clock = time.perf_counter
    with open(os.devnull, "w") as devnull:
        sink = LogSink(devnull)
        spec = function_spec(code_dir)
        async with PythonFunctionPool(spec, log_sink=sink, sandbox=sandbox) as pool:
            check_event = build_event(EventType.VIEWER_REQUEST, EVENT_CONFIG, request)
            result = await pool.invoke(check_event.payload)
            if not hook_ran(check_event, result.payload):
                raise BenchFailed(f"the handler did not add X-Hook: {result.payload[:200]!r}")
            for _ in range(warmup):
                await pool.invoke(event_bytes)

            async def invoke_only() -> None:
                await pool.invoke(event_bytes)

            async def whole_hook() -> None:
                event = build_event(EventType.VIEWER_REQUEST, EVENT_CONFIG, request)
                answer = await pool.invoke(event.payload, deadline=time.monotonic() + 5.0)
                decode_result(event, answer.payload)

            async with EchoProcess.start() as echo:

                async def echo_frame() -> None:
                    await echo.round_trip(event_frame)

                event_frame = encode_frame(KIND_INVOKE, b'{"id":""}', event_bytes)
                # (series, call, log sink on): the calls alternate, so that drift on a shared
                # machine reaches every series alike.
                plan: tuple[tuple[Series, Callable[[], Awaitable[None]], bool], ...] = (
                    (into.floor, echo_frame, False),
                    (into.invoke, invoke_only, False),
                    (into.hook, whole_hook, False),
                    (into.logged, whole_hook, True),
                )
                for _, call, logging_on in plan:
                    sink.active = logging_on
                    for _ in range(warmup):
                        await call()
                samples: list[list[float]] = [[] for _ in plan]
                for _ in range(count):
                    for index, (_, call, logging_on) in enumerate(plan):
                        sink.active = logging_on
                        started = clock()
                        await call()
                        samples[index].append((clock() - started) * 1e6)
                for (series, _, _), taken in zip(plan, samples, strict=True):
                    series.rounds.append(taken)
    return len(event_bytes), len(check_event.payload)


# --- part 3: starting an execution environment ---------------------------------------------


@dataclass
class StartSeries:
    host: Series = field(
        default_factory=lambda: Series(
            "launch -> ready (host)",
            "ms",
            "ExecutionEnvironment.launch + wait_ready as the host sees it: spawn request to the"
            " zygote, mkdtemp, fork, pidfd back, socket connected, child setup (env, rlimits,"
            " stdio, logging), handler imported, Init frame received",
        )
    )
    child: Series = field(
        default_factory=lambda: Series(
            "fork -> module imported",
            "ms",
            "as the child measures it (start_ms): from just before os.fork in the zygote to the"
            " handler's module imported; no host-side messaging",
        )
    )
    init: Series = field(
        default_factory=lambda: Series(
            "Init Duration",
            "ms",
            "the REPORT's Init Duration: the handler's import alone",
        )
    )
    cold: Series = field(
        default_factory=lambda: Series(
            "launch -> first result",
            "ms",
            "a cold invocation: launch -> ready, then the first invoke round trip",
        )
    )
    zygote: Series = field(
        default_factory=lambda: Series(
            "zygote launch",
            "ms",
            "Zygote.launch to its ready message: (bubblewrap,) a fresh interpreter, the runtime"
            " and the preloaded modules imported",
        )
    )


async def measure_starts(
    code_dir: Path, count: int, into: StartSeries, sandbox: SandboxPolicy
) -> None:
    """`count` environments, one at a time, from one zygote; each killed before the next. Then
    a few zygote launches."""
    spec = function_spec(code_dir)
    event = viewer_event_bytes(viewer_headers())
    launches = []
    for _ in range(ZYGOTE_LAUNCHES):
        started = time.perf_counter()
        launched = await Zygote.launch(sandbox=sandbox, code_dirs=[code_dir], identity=spec.name)
        launches.append((time.perf_counter() - started) * 1e3)
        await launched.aclose()
    into.zygote.rounds.append(launches)
    zygote = await Zygote.launch(sandbox=sandbox, code_dirs=[code_dir], identity=spec.name)
    host, child, init, cold = [], [], [], []
    try:
        for _ in range(count):
            started = time.perf_counter()
            environment = await ExecutionEnvironment.launch(zygote, spec)
            try:
                if not await environment.wait_ready(INIT_TIMEOUT_SECONDS):
                    raise BenchFailed("an execution environment did not finish Init")
                ready = time.perf_counter()
                result = await environment.invoke(
                    Invocation(
                        event,
                        "handler",
                        "hook-bench",
                        time.monotonic() + spec.timeout_seconds,
                        spec.timeout_seconds,
                    )
                )
                answered = time.perf_counter()
            finally:
                environment.kill()
                await environment.wait_exited()
            host.append((ready - started) * 1e3)
            cold.append((answered - started) * 1e3)
            if environment.start_ms is not None:
                child.append(environment.start_ms)
            if result.init_duration_ms is not None:
                init.append(result.init_duration_ms)
    finally:
        await zygote.aclose()
    into.host.rounds.append(host)
    into.child.rounds.append(child)
    into.init.rounds.append(init)
    into.cold.rounds.append(cold)


# --- report of parts 2 and 3 ---------------------------------------------------------------


def _goal_cell(series: Series, goal: float) -> str:
    """`<= goal unit: met` for a p50 target, beside the figure."""
    met = "[green]met[/]" if series.p50() <= goal else "[yellow]missed[/]"
    return f"<= {goal:g} {series.unit}: {met}"


def report_series(
    title: str, series: Sequence[Series], target: tuple[Series, float] | None
) -> None:
    rounds = max((len(s.rounds) for s in series), default=0)
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("p50", justify="right")
    table.add_column("target (p50)")
    for column in ("p99", "n", *(("p50 per round",) if rounds > 1 else ())):
        table.add_column(column, justify="right")
    table.add_column("what it includes")
    for one in series:
        if not one.samples:
            continue
        digits = 0 if one.unit == "µs" else 2
        per_round = (" / ".join(f"{p:.{digits}f}" for p in one.round_p50s()),) if rounds > 1 else ()
        table.add_row(
            one.title,
            f"{one.p50():.{digits}f} {one.unit}",
            _goal_cell(one, target[1]) if target is not None and target[0] is one else "",
            f"{one.p99():.{digits}f} {one.unit}",
            str(len(one.samples)),
            *per_round,
            one.what,
        )
    console.print(table)


def report_targets(goals: Sequence[tuple[str, Series, float]]) -> None:
    """The per-call targets together, each figure beside its target."""
    measured = [(label, series, goal) for label, series, goal in goals if series.samples]
    if not measured:
        return
    table = Table(title="Targets", title_justify="left")
    table.add_column("figure")
    table.add_column("p50", justify="right")
    table.add_column("target (p50)")
    for label, series, goal in measured:
        digits = 0 if series.unit == "µs" else 2
        table.add_row(label, f"{series.p50():.{digits}f} {series.unit}", _goal_cell(series, goal))
    console.print(table)


# --- part 4: WASM invocations -------------------------------------------------------------


async def measure_wasm(count: int, into: dict[str, Series]) -> None:
    """Per-invocation p50 of the WASM runtime for a ~1 KB viewer-request event, fresh and
    reused instance, each including the copy in and out, the log text, and the host's JSON work
    on both sides (build_event, decode_result); the guest runs on the event loop (a hook this
    short never outlives its slice there), so no thread hand-off."""
    from edge.events import EventConfig, EventType, build_event, decode_result
    from sandbox.wasm import WasmEngine, WasmFunction, WasmFunctionSpec

    module = wasm_hook_module()
    request = viewer_request(viewer_headers())
    config = EventConfig("d111111abcdef8.cloudfront.net", "EDFDVBD6EXAMPLE", "x" * 56)
    with tempfile.TemporaryDirectory() as cache:
        engine = WasmEngine(cache_dir=cache)
        try:
            for label, reuse in (("fresh", False), ("reused", True)):
                spec = WasmFunctionSpec(
                    name=f"hook-{label}", module=module, reuse_instance=reuse, max_concurrency=1
                )
                async with WasmFunction(spec, engine=engine) as function:
                    series = into[label]
                    samples: list[float] = []
                    for index in range(count + 200):
                        started = time.perf_counter()
                        event = build_event(EventType.VIEWER_REQUEST, config, request)
                        result = await function.invoke(event.payload, entry="viewer_request")
                        if result.payload:  # empty: the guest continued unchanged
                            decode_result(event, result.payload)
                        if index >= 200:  # warm-up first
                            samples.append((time.perf_counter() - started) * 1e6)
                    series.rounds.append(samples)
        finally:
            engine.close()


# --- part 5: Node.js functions (their own rows; see node_rows) -------------------------------

NODE_INVOKE_P50_TARGET_US = 150.0
NODE_START_P50_TARGET_MS = 60.0
# A plain Lambda@Edge viewer-request handler in JavaScript: the Python one's twin.
NODE_HANDLER_SOURCE = """\
exports.handler = async (event) => {
  const request = event.Records[0].cf.request;
  request.headers['x-hook'] = [{ key: 'X-Hook', value: '1' }];
  return request;
};
"""


@dataclass
class NodeSeries:
    invoke: Series = field(
        default_factory=lambda: Series(
            "Node warm round trip",
            "µs",
            "NodeFunctionPool.invoke of the ~1 KB viewer-request event (host's view: frame out,"
            " JSON.parse, handler, JSON.stringify, output drained, frame back)",
        )
    )
    python: Series = field(
        default_factory=lambda: Series(
            "Python warm round trip",
            "µs",
            "PythonFunctionPool.invoke of the same event, interleaved with the Node calls",
        )
    )
    spare: Series = field(
        default_factory=lambda: Series(
            "Node launch -> ready, spare",
            "ms",
            "a cold start with a pre-started process waiting: CONFIGURE sent, module loaded,"
            " Init frame received (the next spare is spawned meanwhile)",
        )
    )
    fresh: Series = field(
        default_factory=lambda: Series(
            "Node launch -> ready, no spare",
            "ms",
            "spare_environments = 0: posix_spawn (bwrap when confined), node booted, runtime.js"
            " loaded, CONFIGURE, module loaded, Init frame received",
        )
    )
    bare: Series = field(
        default_factory=lambda: Series(
            "node -e 0",
            "ms",
            "reference: the interpreter alone, started and exited (no sandbox, empty env)",
        )
    )


async def measure_node(
    code_dir: Path, count: int, starts: int, into: NodeSeries, isolation: str
) -> None:
    """Warm round trips of a Node.js pool (interleaved with a Python pool), bare `node -e 0` for
    reference, then environment starts with and without a spare process."""
    from sandbox.node_worker.function import NodeFunctionPool
    from sandbox.node_worker.spec import NodeFunctionSpec, find_node

    (code_dir / "add_header.js").write_text(NODE_HANDLER_SOURCE)
    event_bytes = viewer_event_bytes(viewer_headers())
    policy = SandboxPolicy(isolation=isolation)  # type: ignore[arg-type]

    def spec(spares: int) -> NodeFunctionSpec:
        return NodeFunctionSpec(
            name="hook-node",
            handler="add_header.handler",
            code_dir=code_dir,
            max_concurrency=1,
            spare_environments=spares,
        )

    python = PythonFunctionPool(function_spec(code_dir), sandbox=policy)
    async with NodeFunctionPool(spec(0), policy=policy) as node, python:
        result = await node.invoke(event_bytes)
        if b"x-hook" not in result.payload:
            raise BenchFailed(f"the Node handler did not add X-Hook: {result.payload[:200]!r}")
        for _ in range(500):
            await node.invoke(event_bytes)
            await python.invoke(event_bytes)
        node_samples, python_samples = [], []
        for _ in range(count):
            started = time.perf_counter()
            await node.invoke(event_bytes)
            middle = time.perf_counter()
            await python.invoke(event_bytes)
            python_samples.append((time.perf_counter() - middle) * 1e6)
            node_samples.append((middle - started) * 1e6)
        into.invoke.rounds.append(node_samples)
        into.python.rounds.append(python_samples)

    node_path = find_node()
    bare = []
    for _ in range(min(starts, 50)):
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(node_path, "-e", "0", env={})
        await process.wait()
        bare.append((time.perf_counter() - started) * 1e3)
    into.bare.rounds.append(bare)
    # Between two starts, time for a spare to boot (twice a bare node's, on a busy machine).
    pause_seconds = max(0.15, 2 * statistics.median(bare) / 1e3)

    for spares, series in ((1, into.spare), (0, into.fresh)):
        pool = NodeFunctionPool(spec(spares), policy=policy)
        launcher = pool.launcher
        samples = []
        try:
            await launcher.start()
            for _ in range(starts):
                await asyncio.sleep(pause_seconds)  # a spare has booted (when there is one)
                started = time.perf_counter()
                environment = await launcher.launch(provisioned=False)
                try:
                    if not await environment.wait_ready(INIT_TIMEOUT_SECONDS):
                        raise BenchFailed("a Node.js environment did not finish Init")
                    samples.append((time.perf_counter() - started) * 1e3)
                finally:
                    environment.kill()
                    await environment.wait_exited()
        finally:
            await launcher.aclose()
        series.rounds.append(samples)


def node_rows(code_dir: Path, args: argparse.Namespace, into: NodeSeries) -> str | None:
    """One round of the Node.js part; the failure's text, or None."""
    console.print("Node.js invocations and starts ...", end=" ")
    try:
        count, starts = args.invocations, min(args.starts, 50)
        run_async(lambda: measure_node(code_dir, count, starts, into, args.isolation))
    except Exception as exc:
        console.print("[red]failed[/]")
        return f"{type(exc).__name__}: {exc}"
    console.print(f"p50 {statistics.median(into.invoke.rounds[-1]):.0f} µs")
    return None


def report_node(into: NodeSeries) -> None:
    if into.invoke.samples:
        report_series(
            "Node.js warm invocation round trip (one environment, sequential calls, ~1 KB"
            " viewer-request event; Python interleaved)",
            (into.invoke, into.python),
            (into.invoke, NODE_INVOKE_P50_TARGET_US),
        )
    if into.spare.samples:
        report_series(
            "Starting a Node.js execution environment",
            (into.spare, into.fresh, into.bare),
            (into.spare, NODE_START_P50_TARGET_MS),
        )


# --- part 6: custom runtimes (provided; their own rows; see provided_rows) -----------------

# A shell bootstrap on curl, as in AWS's tutorial: it returns each viewer-request's request
# with X-Hook added (sed on the event's JSON: the request is `Records[0].cf.request`).
PROVIDED_CURL_BOOTSTRAP = """\
#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
DIR="${TMPDIR:-/tmp}"
while true; do
    curl -sS -D "$DIR/headers" -o "$DIR/event" "$API/invocation/next"
    ID=$(sed -n 's/^Lambda-Runtime-Aws-Request-Id: *\\([^[:space:]]*\\).*/\\1/ip' "$DIR/headers")
    sed -e 's/^.*"request":\\({.*}\\)}}]}$/\\1/' \\
        -e 's/"headers":{/"headers":{"x-hook":[{"key":"X-Hook","value":"1"}],/' \\
        "$DIR/event" >"$DIR/result"
    curl -sS -o /dev/null --data-binary "@$DIR/result" "$API/invocation/$ID/response"
done
"""
PROVIDED_RIC_BOOTSTRAP = """\
#!/bin/sh
exec "{python}" -m awslambdaric "$_HANDLER"
"""
# Requests per figure at most: a curl bootstrap spawns processes per invocation (milliseconds).
PROVIDED_CURL_INVOCATIONS = 300


@dataclass
class ProvidedSeries:
    curl: Series = field(
        default_factory=lambda: Series(
            "curl bootstrap warm round trip",
            "µs",
            "ProvidedFunctionPool.invoke of the ~1 KB viewer-request event (host's view: frame"
            " out, agent answers the waiting `next`, sh + curl + sed + curl, 202, frame back)",
        )
    )
    ric: Series = field(
        default_factory=lambda: Series(
            "awslambdaric warm round trip",
            "µs",
            "the same through AWS's Python runtime interface client (its C client, libcurl)"
            " and the Python handler of the Python rows",
        )
    )
    python: Series = field(
        default_factory=lambda: Series(
            "Python warm round trip",
            "µs",
            "PythonFunctionPool.invoke of the same event, interleaved with the awslambdaric calls",
        )
    )
    spare: Series = field(
        default_factory=lambda: Series(
            "curl bootstrap launch -> ready, spare",
            "ms",
            "a cold start with an agent waiting: CONFIGURE sent, bootstrap spawned, its first"
            " `next` (Init frame received)",
        )
    )
    fresh: Series = field(
        default_factory=lambda: Series(
            "curl bootstrap launch -> ready, no spare",
            "ms",
            "spare_environments = 0: posix_spawn (bwrap when confined), the agent's Python"
            " booted, then as above",
        )
    )
    ric_spare: Series = field(
        default_factory=lambda: Series(
            "awslambdaric launch -> ready, spare",
            "ms",
            "as the curl row, the bootstrap being `python -m awslambdaric` (its Init: Python"
            " booted, the handler's module imported)",
        )
    )


async def measure_provided(
    code_dir: Path, count: int, starts: int, into: ProvidedSeries, isolation: str
) -> None:
    """Warm round trips of a curl bootstrap, of awslambdaric (interleaved with a Python pool),
    then environment starts with and without a spare agent."""
    from sandbox.provided_worker.function import ProvidedFunctionPool
    from sandbox.provided_worker.spec import ProvidedFunctionSpec

    curl_dir = code_dir / "provided-curl"
    ric_dir = code_dir / "provided-ric"
    for folder, bootstrap in (
        (curl_dir, PROVIDED_CURL_BOOTSTRAP),
        (ric_dir, PROVIDED_RIC_BOOTSTRAP.replace("{python}", sys.executable)),
    ):
        folder.mkdir(mode=0o755, exist_ok=True)
        (folder / "bootstrap").write_text(bootstrap)
        (folder / "bootstrap").chmod(0o755)
    write_handler(ric_dir)
    event_bytes = viewer_event_bytes(viewer_headers())
    policy = SandboxPolicy(isolation=isolation)  # type: ignore[arg-type]

    def spec(folder: Path, spares: int) -> ProvidedFunctionSpec:
        return ProvidedFunctionSpec(
            name="hook-provided",
            code_dir=folder,
            handler=f"{HANDLER_MODULE}.{HANDLER_FUNCTION}",
            timeout_seconds=5.0,
            max_concurrency=1,
            spare_environments=spares,
        )

    async def check(pool: ProvidedFunctionPool, name: str) -> None:
        result = await pool.invoke(event_bytes)
        if b"x-hook" not in result.payload:
            raise BenchFailed(f"the {name} hook did not add X-Hook: {result.payload[:200]!r}")

    async with ProvidedFunctionPool(spec(curl_dir, 0), policy=policy) as curl:
        await check(curl, "curl")
        for _ in range(20):
            await curl.invoke(event_bytes)
        samples = []
        for _ in range(min(count, PROVIDED_CURL_INVOCATIONS)):
            started = time.perf_counter()
            await curl.invoke(event_bytes)
            samples.append((time.perf_counter() - started) * 1e6)
        into.curl.rounds.append(samples)

    python = PythonFunctionPool(function_spec(code_dir), sandbox=policy)
    async with ProvidedFunctionPool(spec(ric_dir, 0), policy=policy) as ric, python:
        await check(ric, "awslambdaric")
        for _ in range(300):
            await ric.invoke(event_bytes)
            await python.invoke(event_bytes)
        ric_samples, python_samples = [], []
        for _ in range(count):
            started = time.perf_counter()
            await ric.invoke(event_bytes)
            middle = time.perf_counter()
            await python.invoke(event_bytes)
            python_samples.append((time.perf_counter() - middle) * 1e6)
            ric_samples.append((middle - started) * 1e6)
        into.ric.rounds.append(ric_samples)
        into.python.rounds.append(python_samples)

    for folder, spares, series in (
        (curl_dir, 1, into.spare),
        (curl_dir, 0, into.fresh),
        (ric_dir, 1, into.ric_spare),
    ):
        pool = ProvidedFunctionPool(spec(folder, spares), policy=policy)
        launcher = pool.launcher
        samples = []
        try:
            await launcher.start()
            for _ in range(starts):
                await asyncio.sleep(0.3)  # a spare agent has booted (when there is one)
                started = time.perf_counter()
                environment = await launcher.launch(provisioned=False)
                try:
                    if not await environment.wait_ready(INIT_TIMEOUT_SECONDS):
                        raise BenchFailed("a custom-runtime environment did not finish Init")
                    samples.append((time.perf_counter() - started) * 1e3)
                finally:
                    environment.kill()
                    await environment.wait_exited()
        finally:
            await launcher.aclose()
        series.rounds.append(samples)


def provided_rows(code_dir: Path, args: argparse.Namespace, into: ProvidedSeries) -> str | None:
    """One round of the custom-runtime part; the failure's text, or None."""
    console.print("custom-runtime invocations and starts ...", end=" ")
    try:
        count, starts = min(args.invocations, 2000), min(args.starts, 30)
        run_async(lambda: measure_provided(code_dir, count, starts, into, args.isolation))
    except Exception as exc:
        console.print("[red]failed[/]")
        return f"{type(exc).__name__}: {exc}"
    console.print(
        f"p50 curl {statistics.median(into.curl.rounds[-1]):.0f} µs,"
        f" awslambdaric {statistics.median(into.ric.rounds[-1]):.0f} µs"
    )
    return None


def report_provided(into: ProvidedSeries) -> None:
    if into.ric.samples:
        report_series(
            "Custom runtime (provided) warm invocation round trip (one environment, sequential"
            " calls, ~1 KB viewer-request event; Python interleaved with awslambdaric)",
            (into.curl, into.ric, into.python),
            None,
        )
    if into.spare.samples:
        report_series(
            "Starting a custom-runtime execution environment",
            (into.spare, into.fresh, into.ric_spare),
            None,
        )


# --- part 5: CloudFront Functions (QuickJS, in process) ------------------------------------

CLOUDFRONT_FUNCTION_SOURCE = """\
function handler(event) {
  var request = event.request;
  request.headers['x-hook'] = { value: '1' };
  return request;
}
"""


def cloudfront_function_round(count: int, series: Series) -> str | None:
    """One round of CloudFront Function runs of a ~1 KB viewer-request event, each including
    the event build and the result decode; None, or what failed. Sequential, on this thread:
    the runtime runs functions on the event loop's thread, without a hand-off."""
    from edge.events.cloudfront_functions import build_function_event, decode_function_result
    from sandbox.cloudfront_js.function import CloudFrontFunction
    from sandbox.cloudfront_js.spec import CloudFrontJsSpec

    request = viewer_request(viewer_headers())
    config = EventConfig("d111111abcdef8.cloudfront.net", "EDFDVBD6EXAMPLE", "x" * 56)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            code = Path(tmp) / "add_header.js"
            code.write_text(CLOUDFRONT_FUNCTION_SOURCE)
            function = CloudFrontFunction(CloudFrontJsSpec(name="hook", code=code, runtime="1.0"))
            function.load()
        samples: list[float] = []
        for index in range(count + 200):
            started = time.perf_counter()
            event = build_function_event("viewer-request", config, request)
            result = function.run_sync(event.payload, "x" * 56)
            outcome = decode_function_result(event, result.payload)
            if index >= 200:  # warm-up first
                samples.append((time.perf_counter() - started) * 1e6)
        if not any(name == "x-hook" for name, _ in getattr(outcome, "headers", ())):
            return "the function's header is missing from the decoded result"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    series.rounds.append(samples)
    return None


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    names = [*HTTP_ROWS, INVOKE, START, WASM, CLOUDFRONT_FUNCTION, NODE, PROVIDED]
    parser.add_argument(
        "--duration", type=pb._at_least(1), default=10, help="seconds per HTTP row (default 10)"
    )
    parser.add_argument(
        "--warmup", type=pb._at_least(0), default=2, help="seconds before each (default 2)"
    )
    parser.add_argument("--connections", type=pb._at_least(2), default=64, help="wrk -c")
    parser.add_argument("--workers", type=pb._at_least(1), default=2, help="edge workers")
    parser.add_argument(
        "--rounds", type=pb._at_least(1), default=1, help="do everything N times, interleaved"
    )
    parser.add_argument(
        "--invocations",
        type=pb._at_least(1),
        default=5000,
        help="timed invocations per series and round (default 5000)",
    )
    parser.add_argument(
        "--starts",
        type=pb._at_least(1),
        default=200,
        help="environments started per round (default 200)",
    )
    parser.add_argument(
        "--isolation",
        choices=["auto", "namespaces", "uid-only", "none"],
        default="auto",
        help="the Python sandbox for the invoke and start parts (default auto: the best here)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this part (repeatable): {', '.join(names)}",
    )
    return parser.parse_args(argv)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the servers


def run_async(make: Callable[[], Awaitable[object]]) -> None:
    """Run on uvloop, the event loop the edge's workers use."""

    async def main() -> None:
        await make()

    uvloop.run(main())


def _run_invocations(
    code_dir: Path, count: int, into: InvokeSeries, sandbox: SandboxPolicy
) -> tuple[int, int]:
    sizes: list[tuple[int, int]] = []

    async def one_round() -> None:
        sizes.append(await measure_invocations(code_dir, count, 500, into, sandbox))

    run_async(one_round)
    return sizes[0]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sandbox = SandboxPolicy(isolation=args.isolation)
    sandbox_level = probe_isolation(args.isolation).level
    wanted = set(
        args.only or [*HTTP_ROWS, INVOKE, START, WASM, CLOUDFRONT_FUNCTION, NODE, PROVIDED]
    )
    rows = [t for t in HTTP_TARGETS if t.name in wanted]
    failures: dict[str, str] = {}

    load: pb.Load | None = None
    nginx: str | None = None
    if rows:
        wrk, nginx = pb.ensure_tools(any(t.needs_nginx for t in rows))
        if wrk is None:
            if pb.can_install():
                console.print("[red]wrk could not be installed (see apt-get's output above)[/]")
                return 1
            console.print("[yellow]wrk is not installed and cannot be: skipping the HTTP rows[/]")
            rows = []
        else:
            if nginx is None and any(t.needs_nginx for t in rows):
                console.print("[yellow]nginx is not available: skipping the nginx-origin rows[/]")
                rows = [t for t in rows if not t.needs_nginx]
            load = pb.Load(wrk, 2, args.connections, args.duration, args.warmup)
            console.print(
                f"HTTP: wrk -t2 -c{load.connections} -d{load.duration_seconds}s --latency"
                f" (after {load.warmup_seconds} s of warm-up), GET /file (1 KB);"
                f" {args.workers} edge workers; {os.cpu_count()} CPUs"
            )

    results: dict[str, list[pb.Measurement]] = {t.name: [] for t in rows}
    invocations, starts, node_series = InvokeSeries(), StartSeries(), NodeSeries()
    provided_series = ProvidedSeries()
    wasm_series = {
        "fresh": Series("WASM hook, fresh instance", "µs", "event build + invoke + decode"),
        "reused": Series("WASM hook, reused instance", "µs", "event build + invoke + decode"),
    }
    cloudfront_series = Series(
        "CloudFront Function (QuickJS)", "µs", "event build + run + decode, in process"
    )
    event_sizes = (0, 0)
    with tempfile.TemporaryDirectory(prefix="hook-bench-") as tmp:
        bench = pb.Bench(Path(tmp), args.workers, nginx)
        bench.prepare()
        code_dir = bench.root / "functions"
        write_handler(code_dir)
        try:
            for round_number in range(1, args.rounds + 1):
                if args.rounds > 1:
                    console.print(f"[dim]round {round_number} of {args.rounds}[/]")
                live = [t for t in rows if t.name not in failures]
                if live and load is not None:
                    done, failed = pb.run_rows(bench, load, live, 1)
                    for name, runs in done.items():
                        results[name].extend(runs)
                    failures.update(failed)
                if INVOKE in wanted and INVOKE not in failures:
                    console.print("warm invocations ...", end=" ")
                    try:
                        event_sizes = _run_invocations(
                            code_dir, args.invocations, invocations, sandbox
                        )
                    except Exception as exc:
                        failures[INVOKE] = f"{type(exc).__name__}: {exc}"
                        console.print("[red]failed[/]")
                    else:
                        console.print(
                            f"p50 {statistics.median(invocations.invoke.rounds[-1]):.0f} µs"
                        )
                if WASM in wanted and WASM not in failures:
                    console.print("WASM invocations ...", end=" ")
                    try:
                        run_async(lambda: measure_wasm(args.invocations, wasm_series))
                    except Exception as exc:
                        failures[WASM] = f"{type(exc).__name__}: {exc}"
                        console.print("[red]failed[/]")
                    else:
                        console.print(
                            f"p50 fresh {statistics.median(wasm_series['fresh'].rounds[-1]):.0f}"
                            f" µs, reused {statistics.median(wasm_series['reused'].rounds[-1]):.0f}"
                            " µs"
                        )
                if START in wanted and START not in failures:
                    console.print("environment starts ...", end=" ")
                    try:
                        run_async(lambda: measure_starts(code_dir, args.starts, starts, sandbox))
                    except Exception as exc:
                        failures[START] = f"{type(exc).__name__}: {exc}"
                        console.print("[red]failed[/]")
                    else:
                        console.print(f"p50 {statistics.median(starts.host.rounds[-1]):.2f} ms")
                if CLOUDFRONT_FUNCTION in wanted and CLOUDFRONT_FUNCTION not in failures:
                    console.print("CloudFront Function runs ...", end=" ")
                    failed = cloudfront_function_round(args.invocations, cloudfront_series)
                    if failed is not None:
                        failures[CLOUDFRONT_FUNCTION] = failed
                        console.print("[red]failed[/]")
                    else:
                        median = statistics.median(cloudfront_series.rounds[-1])
                        console.print(f"p50 {median:.0f} µs")
                if NODE in wanted and NODE not in failures:
                    failed_node = node_rows(code_dir, args, node_series)
                    if failed_node is not None:
                        failures[NODE] = failed_node
                if PROVIDED in wanted and PROVIDED not in failures:
                    failed_provided = provided_rows(code_dir, args, provided_series)
                    if failed_provided is not None:
                        failures[PROVIDED] = failed_provided
        finally:
            bench.close()

    if rows:
        report_http(results, {k: v for k, v in failures.items() if k in HTTP_ROWS}, rows)
    if invocations.invoke.samples:
        sent, built = event_sizes
        report_series(
            f"Warm invocation round trip, uvloop, one environment, sequential calls;"
            f" sample_event {sent} B, build_event {built} B",
            (invocations.floor, invocations.invoke, invocations.hook, invocations.logged),
            (invocations.invoke, INVOKE_P50_TARGET_US),
        )
    for label, series in wasm_series.items():
        if series.samples:
            report_series(
                f"WASM per-invocation overhead ({label}), ~1 KB viewer-request event, C guest",
                (series,),
                (series, WASM_P50_TARGETS_US[label]),
            )
    if starts.host.samples:
        report_series(
            f"Starting an execution environment from the function's zygote"
            f" (isolation: {sandbox_level})",
            (starts.host, starts.child, starts.init, starts.cold, starts.zygote),
            (starts.host, START_P50_TARGET_MS),
        )
    report_node(node_series)
    report_provided(provided_series)
    if cloudfront_series.samples:
        report_series(
            "CloudFront Function per run, ~1 KB viewer-request event, QuickJS in process",
            (cloudfront_series,),
            None,
        )
    report_targets(
        (
            ("Python hook, warm round trip", invocations.invoke, INVOKE_P50_TARGET_US),
            (
                "WASM hook, fresh instance, per invocation",
                wasm_series["fresh"],
                WASM_P50_TARGETS_US["fresh"],
            ),
            (
                "WASM hook, reused instance, per invocation",
                wasm_series["reused"],
                WASM_P50_TARGETS_US["reused"],
            ),
            ("Python environment start", starts.host, START_P50_TARGET_MS),
            (
                "CloudFront Function, per run",
                cloudfront_series,
                CLOUDFRONT_FUNCTION_P50_TARGET_US,
            ),
            ("Node.js hook, warm round trip", node_series.invoke, NODE_INVOKE_P50_TARGET_US),
            ("Node.js environment start, spare", node_series.spare, NODE_START_P50_TARGET_MS),
        )
    )
    for name in (INVOKE, START, WASM, CLOUDFRONT_FUNCTION, NODE, PROVIDED):
        if name in failures:
            console.print(f"[red]{name} failed:[/] {escape(failures[name])}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
