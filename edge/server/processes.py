"""One worker in this process, or several forked ones; signals and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from edge.server import hypercorn_patches
from edge.server.hypercorn_engine import ASGIApp, serve_sockets
from edge.server.options import Listen, ListenError, ServerOptions, bind_socket, bind_sockets

__all__ = ["AppFactory", "run"]

AppFactory = Callable[[], ASGIApp]

logger = logging.getLogger("edge.server")


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


def _install_shutdown_signals(
    shutdown: asyncio.Event, on_hangup: Callable[[], None] | None = None
) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, shutdown.set)
    if on_hangup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)


def run(
    app_factory: AppFactory,
    options: ServerOptions,
    *,
    admin_factory: AppFactory | None = None,
    on_ready: Callable[[Listen, Listen | None], None] | None = None,
    on_https_ready: Callable[[Listen], None] | None = None,
    on_hangup: Callable[[], None] | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM; return the process exit status. SIGHUP calls
    `on_hangup` in every process (the main one passes the signal on to the workers).

    Every listener is bound before anything is served: ListenError (naming the listener)
    when one cannot be. `on_ready` is called once every listener accepts connections, with
    the actual addresses of the viewer and admin listeners (a port of 0 resolved), so a
    caller can print a banner or a test can connect. `on_https_ready` is called with the HTTPS
    listener's address once it is bound, before any app is made.
    """
    _check_distinct(options)
    if on_hangup is not None:
        # Until each process's loop takes SIGHUP, it must not end the process (its default).
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    hypercorn_patches.apply()  # the admin listener is hypercorn's under either engine
    workers = max(1, options.workers)
    main_socks = bind_sockets(options.listen, workers, key="listen")
    actual = Listen(options.listen.host, main_socks[0].getsockname()[1])
    tls_socks: list[socket.socket] = []
    tls_actual: Listen | None = None
    if options.https_listen is not None:
        tls_socks = bind_sockets(options.https_listen, workers, key="https_listen")
        tls_actual = Listen(options.https_listen.host, tls_socks[0].getsockname()[1])
    admin_sock = (
        bind_socket(options.admin, reuse_port=False, key="admin") if options.admin else None
    )
    admin_actual = (
        Listen(options.admin.host, admin_sock.getsockname()[1])
        if options.admin and admin_sock
        else None
    )
    per_worker = [
        [sock, *([tls_socks[index]] if tls_socks else [])] for index, sock in enumerate(main_socks)
    ]

    if on_https_ready and tls_actual:
        on_https_ready(tls_actual)  # before any fork: the workers' apps may need to know

    def ready() -> None:
        if on_ready:
            on_ready(actual, admin_actual)

    if workers == 1:
        return _run_single(
            app_factory, per_worker[0], admin_factory, admin_sock, options, ready, on_hangup
        )
    return _run_forked(
        app_factory, per_worker, admin_factory, admin_sock, options, ready, on_hangup
    )


def _check_distinct(options: ServerOptions) -> None:
    """Two listeners on one address: the second bind would fail, or share the first's traffic."""
    seen: dict[Listen, str] = {}
    for key, listen in (
        ("listen", options.listen),
        ("https_listen", options.https_listen),
        ("admin", options.admin),
    ):
        if listen is None or listen.port == 0:
            continue
        if listen in seen:
            raise ListenError(key, listen, f"the same address as {seen[listen]}")
        seen[listen] = key


async def _serve_viewers(
    app: ASGIApp, socks: list[socket.socket], options: ServerOptions, shutdown: asyncio.Event
) -> None:
    """The viewer app on its listeners (the first plain, the second, if any, over TLS)."""
    if options.engine == "granian":
        from edge.server import granian_engine

        listeners = [(sock, index > 0) for index, sock in enumerate(socks)]
        await granian_engine.serve_sockets(listeners, app, options, shutdown)
        return
    await serve_sockets([(app, socks[0])], options, shutdown, secure=socks[1:])


def _run_single(
    app_factory: AppFactory,
    socks: list[socket.socket],
    admin_factory: AppFactory | None,
    admin_sock: socket.socket | None,
    options: ServerOptions,
    ready: Callable[[], None],
    on_hangup: Callable[[], None] | None = None,
) -> int:
    async def main() -> None:
        shutdown = asyncio.Event()
        _install_shutdown_signals(shutdown, on_hangup)
        app = app_factory()
        loop = asyncio.get_running_loop()
        loop.call_soon(ready)
        async with asyncio.TaskGroup() as group:
            group.create_task(_serve_viewers(app, socks, options, shutdown))
            if admin_factory is not None and admin_sock is not None:
                admin_only = replace(options, proxy_first=False)
                group.create_task(
                    serve_sockets([(admin_factory(), admin_sock)], admin_only, shutdown)
                )

    _run_loop(main, options.use_uvloop)
    return 0


def _run_forked(
    app_factory: AppFactory,
    per_worker: list[list[socket.socket]],
    admin_factory: AppFactory | None,
    admin_sock: socket.socket | None,
    options: ServerOptions,
    ready: Callable[[], None],
    on_hangup: Callable[[], None] | None = None,
) -> int:
    children: list[int] = []
    every = [sock for socks in per_worker for sock in socks]
    for index, socks in enumerate(per_worker):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child process
            code = 1
            try:
                for other in every:
                    if other not in socks:
                        other.close()
                if admin_sock is not None:
                    admin_sock.close()
                code = _run_single(app_factory, socks, None, None, options, lambda: None, on_hangup)
            except BaseException:
                logger.exception("worker %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    for sock in every:
        sock.close()

    def hangup() -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)
        if on_hangup is not None:
            on_hangup()

    async def main() -> None:
        shutdown = asyncio.Event()
        _install_shutdown_signals(shutdown, hangup if on_hangup is not None else None)
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
