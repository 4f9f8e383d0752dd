"""Serving ASGI apps on listening sockets with hypercorn, with the edge's protocol settings."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from edge.server.options import ServerOptions

__all__ = ["ASGIApp", "hypercorn_config", "serve_sockets"]

ASGIApp = Callable[..., Awaitable[None]]


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
    *,
    secure: Sequence[socket.socket] = (),
) -> None:
    """Serve each app on its socket until `shutdown` is set, then drain in-flight requests.

    The first app is the proxy: it writes its own `Date` (an origin's is forwarded, so the
    server must not add a second one, RFC 9110 §6.6.1); the others get hypercorn's. The first
    app is also served over TLS on the `secure` sockets, with the options' certificate
    (HTTP/2 by ALPN, else HTTP/1.1).
    """
    proxy_config = hypercorn_config(options)
    proxy_config.include_date_header = False
    if secure:
        proxy_config.certfile = str(options.certificate)
        proxy_config.keyfile = str(options.private_key)
    other_config = hypercorn_config(options)
    async with asyncio.TaskGroup() as group:
        for index, (app, sock) in enumerate(apps):
            config = proxy_config if index == 0 and options.proxy_first else other_config
            sockets = Sockets(
                secure_sockets=list(secure) if index == 0 else [],
                insecure_sockets=[sock],
                quic_sockets=[],
            )
            group.create_task(
                worker_serve(
                    wrap_app(app, config.wsgi_max_body_size, "asgi"),
                    config,
                    sockets=sockets,
                    shutdown_trigger=shutdown.wait,
                )
            )
