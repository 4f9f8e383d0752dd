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
from edge.server.options import Listen, ServerOptions, bind_socket

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
    hypercorn_patches.apply()
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
