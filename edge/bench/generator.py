"""One load process: raw asyncio protocols on uvloop speaking minimal HTTP/1.1.

The parent starts `--processes` of these (`run_worker`), each with its share of the
connections (and of the rate, in the open model). A connection sends one request, reads the
response (Content-Length, chunked or close-delimited body; keep-alive), records it and sends
the next: at once in the closed model, at its next scheduled time in the open model, where the
latency runs from the time the request was *meant* to go (wrk2's correction for coordinated
omission: a stalled server cannot hide the requests it kept waiting).

Once a second the process sends the parent what that second brought: counts by status, by
X-Cache value and by mix entry, errors, and its latencies folded into an HDR histogram in
encoded form. The hot path allocates little: a latency int appended to a list, a few dict
increments, and the slices a response's head needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from edge.bench import histogram

_CONNECT_RETRY_SECONDS = 0.05
_NO_BODY_STATUSES = (b"204", b"304")


@dataclass(frozen=True)
class WorkerPlan:
    """What one load process does."""

    host: str
    port: int
    requests: tuple[bytes, ...]  # by mix entry
    head_only: tuple[bool, ...]  # by mix entry: HEAD requests (no body in the answer)
    cycle: tuple[int, ...]  # mix entry indexes in send order
    connections: int
    first_connection: int  # this process's first connection among all processes'
    total_connections: int
    rate: float | None  # requests per second over all processes (open model), None: closed
    start_at: float  # time.monotonic() when sending starts (warmup)
    measure_at: float  # when warmup ends and recording starts
    end_at: float | None  # when sending stops (None: after `requests` requests)
    requests_quota: int | None  # measured requests for this process (None: by duration)
    timeout_seconds: float = 30.0  # an answer not complete by then is an error ("timeout")


class _Tally:
    """What one second brought."""

    __slots__ = ("entries", "errors", "latencies", "statuses", "xcache")

    def __init__(self, entries: int) -> None:
        self.latencies: list[int] = []
        self.statuses: dict[bytes, int] = {}
        self.xcache: dict[bytes, int] = {}
        self.errors: dict[str, int] = {}
        self.entries = [0] * entries


class _Worker:
    def __init__(self, plan: WorkerPlan, pipe: Connection) -> None:
        self.plan = plan
        self.pipe = pipe
        self.loop = asyncio.get_running_loop()
        self.tally = _Tally(len(plan.requests))
        self.measuring = False
        self.stopping = False
        self.quota = plan.requests_quota
        self.sent = 0
        self.in_flight = 0
        self.done = asyncio.Event()
        self.cpu_seconds = 0.0
        self.connections: list[_Connection] = []
        # Open model: each connection's interval, so that all together send `rate` a second.
        self.interval = (
            plan.total_connections / plan.rate if plan.rate is not None and plan.rate > 0 else 0.0
        )

    def error(self, kind: str) -> None:
        if self.measuring:
            errors = self.tally.errors
            errors[kind] = errors.get(kind, 0) + 1

    def may_send(self) -> bool:
        if self.stopping:
            return False
        if self.quota is not None and self.measuring:
            if self.sent >= self.quota:
                return False
            self.sent += 1
        return True

    def flush(self, second: int, *, final: bool = False) -> None:
        tally, self.tally = self.tally, _Tally(len(self.plan.requests))
        hist = histogram.new_histogram()
        histogram.fold(hist, tally.latencies)
        self.pipe.send(
            (
                "final" if final else "tick",
                second,
                {
                    "count": len(tally.latencies),
                    "statuses": {key.decode("latin-1"): n for key, n in tally.statuses.items()},
                    "xcache": {key.strip().decode("latin-1"): n for key, n in tally.xcache.items()},
                    "errors": tally.errors,
                    "entries": tally.entries,
                    "histogram": histogram.encode(hist) if tally.latencies else "",
                    "in_flight": self.in_flight,
                    # The process's CPU time while measuring (in the final report).
                    "cpu_seconds": self.cpu_seconds,
                },
            )
        )

    async def run(self) -> None:
        plan = self.plan
        for index in range(plan.connections):
            self.connections.append(_Connection(self, plan.first_connection + index))
        await asyncio.sleep(max(0.0, plan.start_at - time.monotonic()))
        for connection in self.connections:
            connection.open()
        await asyncio.sleep(max(0.0, plan.measure_at - time.monotonic()))
        self.tally = _Tally(len(plan.requests))  # warmup is not reported
        self.measuring = True
        cpu_started = time.process_time()
        second = 0
        while True:
            next_tick = plan.measure_at + second + 1
            finished = False
            if plan.end_at is not None and next_tick >= plan.end_at:
                next_tick = plan.end_at
                finished = True
            wait = max(0.0, next_tick - time.monotonic())
            if plan.end_at is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.done.wait(), wait)
                finished = self.done.is_set()
            else:
                await asyncio.sleep(wait)
            if finished:
                break
            self.expire()
            self.flush(second)
            second += 1
        self.stopping = True
        self.measuring = False
        # The requests still out when the run ended are not counted as answered.
        unfinished = sum(1 for c in self.connections if c.awaiting)
        for connection in self.connections:
            connection.close()
        if unfinished:
            self.tally.errors["unfinished"] = unfinished
        self.cpu_seconds = time.process_time() - cpu_started
        self.flush(second, final=True)

    def expire(self) -> None:
        """Give up on requests out for longer than the timeout: each is an error, and its
        connection is dropped for a new one (a late answer would arrive out of turn)."""
        limit = time.monotonic() - self.plan.timeout_seconds
        for connection in self.connections:
            if connection.awaiting and connection.sent_at < limit:
                connection.awaiting = False
                self.in_flight -= 1
                self.error("timeout")
                if connection.transport is not None:
                    connection.transport.abort()  # connection_lost reconnects
        self.check_done()

    def check_done(self) -> None:
        if self.quota is not None and self.sent >= self.quota and self.in_flight == 0:
            self.done.set()


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self, worker: _Worker, number: int) -> None:
        self.worker = worker
        plan = worker.plan
        self.requests = plan.requests
        self.head_only = plan.head_only
        self.cycle = plan.cycle
        self.position = (number * 7919) % len(self.cycle)
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.awaiting = False
        self.entry = 0
        self.started = 0.0  # when the request was due (open model) or sent
        self.sent_at = 0.0
        # Response parsing state: -1 headers pending; >= 0 body bytes left; -2 chunked;
        # -3 close-delimited.
        self.body_left = -1
        self.chunk_left = 0
        self.status = b""
        self.xcache = b""
        self.close_after = False
        self.closing = False
        self.timer: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.next_at = 0.0
        if worker.interval:
            # Spread the connections' first sends over one interval.
            offset = worker.interval * number / plan.total_connections
            self.next_at = plan.start_at + offset

    # -- connection life ------------------------------------------------------------------

    def open(self) -> None:
        # Held here until it ends: the loop keeps only a weak reference to a task.
        self.connecting = self.worker.loop.create_task(self._connect())

    async def _connect(self) -> None:
        worker = self.worker
        plan = worker.plan
        while not worker.stopping:
            try:
                await worker.loop.create_connection(lambda: self, plan.host, plan.port)
                return
            except OSError:
                worker.error("connect")
                await asyncio.sleep(_CONNECT_RETRY_SECONDS)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.body_left = -1
        self.schedule()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        worker = self.worker
        if self.awaiting:
            if self.body_left == -3 and exc is None:  # a close-delimited body ends here
                self.complete()
            else:
                self.awaiting = False
                worker.in_flight -= 1
                worker.error("reset" if exc is not None else "closed")
                worker.check_done()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not worker.stopping and not self.closing:
            self.open()

    def close(self) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.abort()

    # -- sending ----------------------------------------------------------------------------

    def schedule(self) -> None:
        worker = self.worker
        if not worker.interval:
            self.send(0.0)
            return
        now = time.monotonic()
        if now >= self.next_at:
            self.send(self.next_at)
        else:
            self.timer = worker.loop.call_later(self.next_at - now, self._send_due)

    def _send_due(self) -> None:
        self.timer = None
        self.send(self.next_at)

    def send(self, intended: float) -> None:
        worker = self.worker
        if self.transport is None or not worker.may_send():
            worker.check_done()
            return
        position = self.position
        self.entry = entry = self.cycle[position]
        position += 1
        self.position = 0 if position == len(self.cycle) else position
        self.awaiting = True
        worker.in_flight += 1
        self.body_left = -1
        self.sent_at = time.monotonic()
        if intended:
            self.started = intended
            self.next_at = intended + worker.interval
        else:
            self.started = self.sent_at
        self.transport.write(self.requests[entry])

    # -- reading ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        position = 0
        size = len(data)
        while position < size or self.body_left == 0:
            body_left = self.body_left
            if body_left == -1:
                end = data.find(b"\r\n\r\n", position)
                if end < 0:
                    self.buffer = data[position:]
                    return
                self._head(data, position, end)
                position = end + 4
            elif body_left >= 0:
                available = size - position
                if available >= body_left:
                    position += body_left
                    self.complete()
                    if not self.awaiting:
                        # Bytes beyond one response to one request: nothing to read them as.
                        return
                else:
                    self.body_left = body_left - available
                    return
            elif body_left == -2:
                position = self._chunks(data, position)
                if position < 0:
                    return
            else:  # close-delimited: read to the end of the connection
                return

    def _head(self, data: bytes, start: int, end: int) -> None:
        self.status = status = data[start + 9 : start + 12]
        head = data[start:end].lower()
        found = head.find(b"\r\nx-cache:")
        if found >= 0:
            stop = head.find(b"\r\n", found + 10)
            self.xcache = data[start + found + 10 : start + (stop if stop >= 0 else len(head))]
        else:
            self.xcache = b""
        if head.startswith(b"http/1.0"):  # HTTP/1.0 closes unless it says keep-alive
            self.close_after = head.find(b"\r\nconnection: keep-alive") < 0
        else:
            self.close_after = head.find(b"\r\nconnection: close") >= 0
        if self.head_only[self.entry] or status in _NO_BODY_STATUSES or status[:1] == b"1":
            self.body_left = 0
            return
        found = head.find(b"\r\ncontent-length:")
        if found >= 0:
            stop = head.find(b"\r\n", found + 17)
            self.body_left = int(head[found + 17 : stop if stop >= 0 else len(head)])
            return
        found = head.find(b"\r\ntransfer-encoding:")
        if found >= 0 and head.find(b"chunked", found) >= 0:
            self.body_left = -2
            self.chunk_left = 0
            return
        self.body_left = -3

    def _chunks(self, data: bytes, position: int) -> int:
        """Consume chunked body bytes from `position`; the position after the body (the
        response is complete), or -1 when more bytes are needed (the rest is buffered)."""
        size = len(data)
        while True:
            if self.chunk_left > 0:
                available = size - position
                if available < self.chunk_left:
                    self.chunk_left -= available
                    return -1
                position += self.chunk_left
                self.chunk_left = 0
            line_end = data.find(b"\r\n", position)
            if line_end < 0:
                self.buffer = data[position:]
                return -1
            length = int(data[position:line_end].split(b";", 1)[0], 16)
            if length:
                self.chunk_left = length + 2  # the data and its CRLF
                position = line_end + 2
                continue
            # The last chunk: trailers (if any) end with an empty line.
            if data[line_end + 2 : line_end + 4] == b"\r\n":
                self.body_left = 0
                self.complete()
                return line_end + 4
            trailers_end = data.find(b"\r\n\r\n", line_end)
            if trailers_end < 0:
                self.buffer = data[position:]
                return -1
            self.body_left = 0
            self.complete()
            return trailers_end + 4

    def complete(self) -> None:
        now = time.monotonic()
        worker = self.worker
        self.awaiting = False
        self.body_left = -1
        worker.in_flight -= 1
        if worker.measuring and self.started >= worker.plan.measure_at:
            tally = worker.tally
            # A timer may fire a little before its time (libuv counts whole milliseconds), so
            # an answer can come back before the time it was due: that is no latency at all.
            latency = int((now - self.started) * 1_000_000)
            tally.latencies.append(latency if latency > 0 else 0)
            statuses = tally.statuses
            statuses[self.status] = statuses.get(self.status, 0) + 1
            tally.entries[self.entry] += 1
            if self.xcache:
                xcache = tally.xcache
                xcache[self.xcache] = xcache.get(self.xcache, 0) + 1
        if self.close_after and self.transport is not None:
            self.transport.close()  # connection_lost reconnects
            return
        if worker.stopping:
            return
        self.schedule()


async def _main(plan: WorkerPlan, pipe: Connection) -> None:
    worker = _Worker(plan, pipe)
    await worker.run()


def run_worker(plan: WorkerPlan, pipe: Connection) -> None:
    """A load process's entry point (multiprocessing target)."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - no uvloop on this platform
        runner = asyncio.run
    try:
        runner(_main(plan, pipe))
    finally:
        pipe.close()
