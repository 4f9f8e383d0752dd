"""Running ASGI apps under hypercorn: listeners, worker processes, signals, graceful shutdown.

One worker serves in this process. Several workers each get their own listening socket bound
to the same address with SO_REUSEPORT, so the kernel spreads connections across processes
(hypercorn's own multi-worker mode shares one socket, and one worker then takes most
keep-alive connections: see PERFORMANCE.md). Workers are forked after the configuration is
loaded, and build their app after the fork, so no event loop or client crosses a fork.

The admin app (health, metrics, later the Invoke API) runs in the parent process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

ASGIApp = Callable[..., Awaitable[None]]
AppFactory = Callable[[], ASGIApp]

logger = logging.getLogger("edge.server")


@dataclass(frozen=True, slots=True)
class Listen:
    """A host and port to listen on (port 0: the kernel picks one)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """`HOST:PORT`, `[V6]:PORT` or `:PORT` -> Listen; ValueError with a clear message otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"expected HOST:PORT (for example 127.0.0.1:8080), found {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return Listen(host, int(port_text))


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """How to serve: addresses, processes and the protocol limits hypercorn enforces."""

    listen: Listen = Listen("127.0.0.1", 8080)
    workers: int = 1
    admin: Listen | None = None
    graceful_timeout_seconds: float = 30.0
    keep_alive_timeout_seconds: float = 60.0
    # Request line plus headers; beyond it the viewer gets 431 (h11's status hint).
    max_header_bytes: int = 20 * 1024
    backlog: int = 2048
    use_uvloop: bool = True
    # The first app served is the edge's proxy, which sets Date itself (the CLI says so).
    proxy_first: bool = False


def bind_socket(listen: Listen, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket on `listen`."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((listen.host, listen.port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def coalesce_response_heads() -> None:
    """Send a response's head together with its first body bytes, in one write.

    hypercorn writes each h11 event to the socket as it comes: the head of a small response
    and its body cost two send calls (the proxy benchmark showed socket sends as the largest
    single cost). Holding the head until the body's first event halves them. A streamed body
    whose first chunk is slow delays the head until then, as a buffering proxy does.
    """
    import h11
    from hypercorn.events import RawData
    from hypercorn.protocol.h11 import H11Protocol

    if getattr(H11Protocol, "_edge_coalesced", False):
        return
    original = H11Protocol._send_h11_event

    async def send_h11_event(self: Any, event: Any) -> None:
        if type(event) is h11.Response:
            try:
                self._edge_head = self.connection.send(event)
            except h11.LocalProtocolError:
                if self.connection.their_state != h11.ERROR:
                    raise
            return
        head = getattr(self, "_edge_head", None)
        if head is None:
            await original(self, event)
            return
        self._edge_head = None
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            data = b""
        await self.send(RawData(data=head + (data or b"")))

    setattr(H11Protocol, "_send_h11_event", send_h11_event)  # noqa: B010 - patching a method
    setattr(H11Protocol, "_edge_coalesced", True)  # noqa: B010


def guard_h11_framing() -> None:
    """Two corrections to hypercorn's HTTP/1.1 protocol, both about what follows a request.

    - Bytes after a request that ends the connection (`Connection: close`, or HTTP/1.0 without
      keep-alive) are ignored, as RFC 9112 §9.6 has it: nothing after such a request is read.
      Unpatched, h11 calls them a protocol error and hypercorn answers 400 in place of the
      response the request is owed (the origin has already run it).
    - A request line longer than the parser's buffer gets 414 (URI Too Long), not the 431
      meant for oversized header sections.
    """
    import h11
    from hypercorn.protocol.h11 import H11Protocol

    if getattr(H11Protocol, "_edge_guarded", False):
        return
    original_init = H11Protocol.__init__
    original_error = H11Protocol._send_error_response

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        connection = self.connection
        next_event = connection.next_event

        def guarded_next_event() -> Any:
            if connection.their_state is h11.MUST_CLOSE:
                return h11.NEED_DATA  # the peer may say no more: what it sent is dropped
            return next_event()

        connection.next_event = guarded_next_event

    async def send_error_response(self: Any, status_code: int) -> None:
        if status_code == 431 and b"\n" not in self.connection.trailing_data[0]:
            status_code = 414
        await original_error(self, status_code)

    setattr(H11Protocol, "__init__", init)  # noqa: B010 - patching a method
    setattr(H11Protocol, "_send_error_response", send_error_response)  # noqa: B010
    setattr(H11Protocol, "_edge_guarded", True)  # noqa: B010


def hypercorn_config(options: ServerOptions) -> HypercornConfig:
    config = HypercornConfig()
    config.graceful_timeout = options.graceful_timeout_seconds
    config.keep_alive_timeout = options.keep_alive_timeout_seconds
    config.keep_alive_max_requests = 1_000_000
    # The pipeline enforces the configured limit exactly; h11's guard stops a flood early.
    config.h11_max_incomplete_size = max(64 * 1024, options.max_header_bytes * 2)
    config.include_server_header = False
    config.backlog = options.backlog
    config.accesslog = None  # the edge writes its own access log
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve_sockets(
    apps: Iterable[tuple[ASGIApp, socket.socket]],
    options: ServerOptions,
    shutdown: asyncio.Event,
) -> None:
    """Serve each app on its socket until `shutdown` is set, then drain in-flight requests.

    The first app is the proxy: it writes its own `Date` (an origin's is forwarded, so the
    server must not add a second one, RFC 9110 §6.6.1); the others get hypercorn's.
    """
    proxy_config = hypercorn_config(options)
    proxy_config.include_date_header = False
    other_config = hypercorn_config(options)
    async with asyncio.TaskGroup() as group:
        for index, (app, sock) in enumerate(apps):
            config = proxy_config if index == 0 and options.proxy_first else other_config
            sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
            group.create_task(
                worker_serve(
                    wrap_app(app, config.wsgi_max_body_size, "asgi"),
                    config,
                    sockets=sockets,
                    shutdown_trigger=shutdown.wait,
                )
            )


def _run_loop(main: Callable[[], Coroutine[Any, Any, None]], use_uvloop: bool) -> None:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            pass
        else:
            uvloop.run(main())
            return
    asyncio.run(main())


def _install_shutdown_signals(shutdown: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, shutdown.set)


def run(
    app_factory: AppFactory,
    options: ServerOptions,
    *,
    admin_factory: AppFactory | None = None,
    on_ready: Callable[[Listen, Listen | None], None] | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM; return the process exit status.

    `on_ready` is called once every listener accepts connections, with the actual addresses
    (a port of 0 resolved), so a caller can print a banner or a test can connect.
    """
    guard_h11_framing()
    if os.environ.get("EDGE_NO_COALESCE") != "1":
        coalesce_response_heads()
    workers = max(1, options.workers)
    main_socks = [bind_socket(options.listen, reuse_port=workers > 1)]
    actual = Listen(options.listen.host, main_socks[0].getsockname()[1])
    main_socks += [bind_socket(actual, reuse_port=True) for _ in range(workers - 1)]
    admin_sock = bind_socket(options.admin, reuse_port=False) if options.admin else None
    admin_actual = (
        Listen(options.admin.host, admin_sock.getsockname()[1])
        if options.admin and admin_sock
        else None
    )

    if workers == 1:
        return _run_single(
            app_factory,
            main_socks[0],
            admin_factory,
            admin_sock,
            options,
            lambda: on_ready(actual, admin_actual) if on_ready else None,
        )
    return _run_forked(
        app_factory,
        main_socks,
        admin_factory,
        admin_sock,
        options,
        lambda: on_ready(actual, admin_actual) if on_ready else None,
    )


def _run_single(
    app_factory: AppFactory,
    sock: socket.socket,
    admin_factory: AppFactory | None,
    admin_sock: socket.socket | None,
    options: ServerOptions,
    ready: Callable[[], None],
) -> int:
    async def main() -> None:
        shutdown = asyncio.Event()
        _install_shutdown_signals(shutdown)
        apps: list[tuple[ASGIApp, socket.socket]] = [(app_factory(), sock)]
        if admin_factory is not None and admin_sock is not None:
            apps.append((admin_factory(), admin_sock))
        loop = asyncio.get_running_loop()
        loop.call_soon(ready)
        await serve_sockets(apps, options, shutdown)

    _run_loop(main, options.use_uvloop)
    return 0


def _run_forked(
    app_factory: AppFactory,
    socks: list[socket.socket],
    admin_factory: AppFactory | None,
    admin_sock: socket.socket | None,
    options: ServerOptions,
    ready: Callable[[], None],
) -> int:
    children: list[int] = []
    for index, sock in enumerate(socks):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child process
            code = 1
            try:
                for other in socks:
                    if other is not sock:
                        other.close()
                if admin_sock is not None:
                    admin_sock.close()
                code = _run_single(app_factory, sock, None, None, options, lambda: None)
            except BaseException:
                logger.exception("worker %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    for sock in socks:
        sock.close()

    async def main() -> None:
        shutdown = asyncio.Event()
        _install_shutdown_signals(shutdown)
        loop = asyncio.get_running_loop()
        watcher = asyncio.ensure_future(_wait_any(children))
        loop.call_soon(ready)
        async with asyncio.TaskGroup() as group:
            if admin_factory is not None and admin_sock is not None:
                admin_only = replace(options, proxy_first=False)
                group.create_task(
                    serve_sockets([(admin_factory(), admin_sock)], admin_only, shutdown)
                )
            waiter = group.create_task(shutdown.wait())
            done, _ = await asyncio.wait({watcher, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done:
                logger.error("a worker process exited unexpectedly; stopping")
            else:
                watcher.cancel()
            shutdown.set()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        await loop.run_in_executor(None, _reap, children)

    _run_loop(main, options.use_uvloop)
    return 0


async def _wait_any(pids: list[int]) -> int:
    """Return once one of `pids` (our own children) has exited.

    Polls each PID with WNOHANG rather than waiting on any child, so processes that other
    parts of the parent start (function environments) are never reaped here by mistake.
    """
    while True:
        for pid in list(pids):
            done, _ = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
            if done:
                pids.remove(pid)
                return pid
        await asyncio.sleep(0.2)


def _reap(pids: list[int]) -> None:
    for pid in list(pids):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
