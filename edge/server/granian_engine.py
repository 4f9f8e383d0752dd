"""Serving the viewer app with granian (its embedded server, on this process's event loop).

granian parses HTTP/1.1 and HTTP/2 in Rust (hyper) and calls the ASGI app on the running
asyncio loop: on a cache hit it costs about a third of what hypercorn does. It serves on the
sockets `edge.server.processes` binds, so both engines share one process model (a socket per
worker, SO_REUSEPORT) and the checks made at bind time.

What granian's embedded server leaves to its host, done here:
- The lifespan runs once per process, before the first listener opens and after the last
  request is done (granian's own lifespan handling ends it as soon as shutdown begins, while
  requests are still in flight).
- Graceful shutdown: once listeners stop accepting, requests in flight get up to
  `graceful_timeout_seconds` to finish (granian's embedded server returns at once).
- Its own log goes to stderr, warnings and errors only (stdout is the access log).

granian's embedded server binds its own socket; `_OwnSocketServer` hands it ours instead by
overriding one private method. Private names change without notice, so pyproject.toml pins
the granian releases this was tested with (`TESTED_VERSIONS`), and
tests/test_granian_engine.py fails when the names it relies on are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Final

from granian._granian import SocketHolder
from granian.constants import HTTPModes, Interfaces, SSLProtocols
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from edge.server.options import ServerOptions

__all__ = ["TESTED_VERSIONS", "lifespan", "serve_sockets"]

# The granian releases whose embedded server this module was tested with (pyproject.toml pins
# the same minor release).
TESTED_VERSIONS: Final = frozenset({"2.8.9"})

ASGIApp = Callable[..., Awaitable[None]]
Message = MutableMapping[str, Any]

logger = logging.getLogger("edge.server")

# granian's log: to stderr, warnings and errors only (its embedded server also warns at each
# start that it is experimental: that line is dropped).
_LOG_CONFIG: Final = {
    "handlers": {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"class": "logging.NullHandler"},
    },
}


class _DropExperimentalWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "experimental" not in record.getMessage()


class _OwnSocketServer(Server):
    """granian's embedded server, on a socket bound by the edge."""

    def __init__(self, sock: socket.socket, **options: Any) -> None:
        super().__init__(**options)
        self._edge_socket = sock

    def _init_shared_socket(self) -> None:
        # (fd, is a unix socket, backlog). granian closes the descriptor when it stops: it
        # gets a duplicate, so the socket object the edge holds never closes a reused number.
        holder: Any = SocketHolder
        self._shd = holder(os.dup(self._edge_socket.fileno()), False, self.backlog)
        self._ssp = None


class _InFlight:
    """Counts the requests being served, so shutdown can wait for the last one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.count += 1
        self.idle.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            if not self.count:
                self.idle.set()


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run `app`'s ASGI lifespan: startup on entry, shutdown on exit (RuntimeError when the
    app reports a failed startup)."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.get_running_loop().create_future()
    stopped = asyncio.get_running_loop().create_future()

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        kind = message["type"]
        target = started if kind.startswith("lifespan.startup") else stopped
        if not target.done():
            target.set_result(message)

    async def run() -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.3"}}
        scope["state"] = {}
        try:
            await app(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - the app takes no lifespan, or failed in it
            for future in (started, stopped):
                if not future.done():
                    future.set_exception(exc)
            return
        for future in (started, stopped):  # returned without a word: no lifespan
            if not future.done():
                future.set_result({"type": "none"})

    async with asyncio.TaskGroup() as group:
        group.create_task(run())
        await inbox.put({"type": "lifespan.startup"})
        message = await started
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(message.get("message") or "the app's startup failed")
        try:
            yield
        finally:
            await inbox.put({"type": "lifespan.shutdown"})
            message = await stopped
            if message["type"] == "lifespan.shutdown.failed":
                logger.error("the app's shutdown failed: %s", message.get("message", ""))


def _server(sock: socket.socket, app: ASGIApp, options: ServerOptions, secure: bool) -> Any:
    host, port = sock.getsockname()[:2]
    return _OwnSocketServer(
        sock,
        target=app,
        address=host,
        port=port,
        interface=Interfaces.ASGINL,  # the lifespan runs once, in `lifespan`
        http=HTTPModes.auto,  # HTTP/1.1, or HTTP/2 by ALPN (TLS) or by its preface (h2c)
        websockets=False,
        backlog=options.backlog,
        backpressure=options.backlog,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(options.keep_alive_timeout_seconds * 1000),
            keep_alive=True,
            # The admission checks enforce the configured limit exactly, with the edge's error
            # page; hyper's buffer only stops a flood (it answers 431 with no page past it).
            max_buffer_size=max(64 * 1024, options.max_header_bytes * 2),
        ),
        log_enabled=True,
        log_level=LogLevels.warning,
        log_dictconfig=_LOG_CONFIG,
        log_access=False,  # the edge writes its own access log
        ssl_cert=options.certificate if secure else None,
        ssl_key=options.private_key if secure else None,
        ssl_protocol_min=SSLProtocols.tls12,
    )


async def serve_sockets(
    listeners: Sequence[tuple[socket.socket, bool]],
    app: ASGIApp,
    options: ServerOptions,
    shutdown: asyncio.Event,
) -> None:
    """Serve `app` on each listener (True: over TLS, with the options' certificate) until
    `shutdown` is set, then let requests in flight finish (up to the graceful timeout)
    before the app's lifespan ends."""
    found = importlib.metadata.version("granian")
    if found not in TESTED_VERSIONS:
        logger.warning(
            "granian %s is not a release the edge was tested with (%s)",
            found,
            ", ".join(sorted(TESTED_VERSIONS)),
        )
    logging.getLogger("_granian").addFilter(_DropExperimentalWarning())
    counted = _InFlight(app)
    async with lifespan(app):
        servers = [_server(sock, counted, options, secure) for sock, secure in listeners]
        async with asyncio.TaskGroup() as group:
            for server in servers:
                group.create_task(server.serve())
            await shutdown.wait()
            for server in servers:
                server.stop()
        for sock, _ in listeners:
            sock.close()  # no new connection waits in its backlog while the last ones finish
        try:
            async with asyncio.timeout(options.graceful_timeout_seconds):
                await counted.idle.wait()
        except TimeoutError:
            logger.warning(
                "%d requests still in flight after %g s: stopping without them",
                counted.count,
                options.graceful_timeout_seconds,
            )
