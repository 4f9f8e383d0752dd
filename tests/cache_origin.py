"""A scriptable origin for the cache tests: per-path replies, and a count of what it was asked.

A plain HTTP/1.1 server on asyncio (keep-alive, Content-Length and chunked request bodies) in a
background thread on 127.0.0.1:0. Each test scripts the replies of its own paths (status,
headers, body, a delay, or a dropped connection to play an origin that is down), answers
revalidations with a 304 of its choice, and waits on request counts through a Condition instead
of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType

__all__ = ["CacheOrigin", "Reply", "Seen", "http_date", "running_cache_origin"]

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

# RFC 9110 §6.4.1: these answers never carry content.
_NO_CONTENT = frozenset({204, 304})


def http_date(offset_seconds: float = 0.0) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7) `offset_seconds` from now."""
    return formatdate(time.time() + offset_seconds, usegmt=True)


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer. `drop` closes the connection without answering (a dead origin).
    A `Date` header is added unless `headers` has one; Content-Length always is."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    delay_seconds: float = 0.0
    drop: bool = False


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the origin received it; header names are lower-case."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


@dataclass(slots=True)
class _Route:
    replies: list[Reply]
    not_modified: Reply | None
    used: int = 0

    def next_reply(self, conditional: bool) -> Reply:
        if conditional and self.not_modified is not None:
            return self.not_modified
        reply = self.replies[min(self.used, len(self.replies) - 1)]
        self.used += 1
        return reply


@dataclass(slots=True)
class _State:
    routes: dict[str, _Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)


class CacheOrigin:
    """The origin server; `url` is its base URL. Thread-safe: tests script and read it from the
    test thread while it serves from its own."""

    def __init__(self) -> None:
        self._state = _State()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(512)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cache-origin", daemon=True)

    # -- scripting and reading (test thread) ---------------------------------------------------

    def script(self, path: str, *replies: Reply, not_modified: Reply | None = None) -> None:
        """Answer requests for `path` (query ignored) with `replies` in order, the last one
        repeating. A request carrying If-None-Match or If-Modified-Since gets `not_modified`
        instead, when given (without using up a reply)."""
        if not replies:
            raise ValueError("script at least one reply")
        with self._state.changed:
            self._state.routes[path] = _Route(list(replies), not_modified)

    def count(self, path: str) -> int:
        """How many requests for `path` (any query, any method) arrived so far."""
        with self._state.changed:
            return self._state.counts.get(path, 0)

    def seen(self, path: str) -> list[Seen]:
        """The requests for `path`, oldest first."""
        with self._state.changed:
            return [entry for entry in self._state.seen if entry.path == path]

    def seen_all(self) -> list[Seen]:
        """Every request so far, oldest first."""
        with self._state.changed:
            return list(self._state.seen)

    def wait_for_count(self, path: str, count: int, timeout_seconds: float = 10.0) -> None:
        """Block until at least `count` requests for `path` have arrived, or fail."""
        with self._state.changed:
            if not self._state.changed.wait_for(
                lambda: self._state.counts.get(path, 0) >= count, timeout_seconds
            ):
                seen = self._state.counts.get(path, 0)
                raise AssertionError(f"the origin saw {seen} requests for {path}, not {count}")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> CacheOrigin:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the cache origin did not start")
        return self

    def stop(self) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> CacheOrigin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- serving (origin thread) ---------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        connections: set[asyncio.StreamWriter] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.add(writer)
            try:
                await self._connection(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass  # the edge went away mid-exchange: nothing to answer
            finally:
                connections.discard(writer)
                writer.close()

        server = await asyncio.start_server(serve, sock=self._sock, backlog=512)
        self._ready.set()
        async with server:
            await self._stopped.wait()
            for writer in list(connections):
                writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the edge closed an idle connection
            request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
            method, target, _version = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines:
                name, _, value = line.partition(":")
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            body = await _read_body(reader, headers)
            seen = Seen(method, target, headers, body)
            conditional = "if-none-match" in headers or "if-modified-since" in headers
            state = self._state
            with state.changed:
                state.seen.append(seen)
                state.counts[seen.path] = state.counts.get(seen.path, 0) + 1
                route = state.routes.get(seen.path)
                reply = (
                    route.next_reply(conditional)
                    if route is not None
                    else Reply(404, [("Content-Type", "text/plain")], b"not scripted\n")
                )
                state.changed.notify_all()
            if reply.delay_seconds:
                # The origin's own slowness, part of the scenario (not test synchronisation).
                await asyncio.sleep(reply.delay_seconds)
            if reply.drop:
                writer.transport.abort()
                return
            writer.write(_encode(reply, method))
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent by the edge
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or "0")
    return await reader.readexactly(length) if length else b""


def _encode(reply: Reply, method: str) -> bytes:
    reason = _REASONS.get(reply.status, "Status")
    lines = [f"HTTP/1.1 {reply.status} {reason}"]
    names = {name.lower() for name, _ in reply.headers}
    if "date" not in names:
        lines.append(f"Date: {http_date()}")
    lines.extend(f"{name}: {value}" for name, value in reply.headers)
    body = b"" if reply.status in _NO_CONTENT else reply.body
    if reply.status not in _NO_CONTENT:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if method == "HEAD" else head + body


@contextlib.contextmanager
def running_cache_origin() -> Iterator[CacheOrigin]:
    with CacheOrigin() as origin:
        yield origin
