"""The serving shell: listeners, worker processes, signals and graceful shutdown, under hypercorn.

One worker serves in this process. Several workers each get their own listening socket bound
to the same address with SO_REUSEPORT, so the kernel spreads connections across processes
(hypercorn's own multi-worker mode shares one socket, and one worker then takes most
keep-alive connections: see PERFORMANCE.md). Workers are forked after the configuration is
loaded, and build their app after the fork, so no event loop or client crosses a fork.

The admin app (health, metrics, later the Invoke API) runs in the parent process.

Modules: `options` (addresses and settings), `processes` (one worker or several, signals,
shutdown), `hypercorn_engine` (serving ASGI apps with hypercorn) and `hypercorn_patches` (two
corrections to hypercorn's HTTP/1.1 protocol, applied only to the versions they were tested on).
"""

from edge.server.hypercorn_engine import ASGIApp
from edge.server.options import Listen, ServerOptions, bind_socket, parse_listen
from edge.server.processes import AppFactory, run

__all__ = [
    "ASGIApp",
    "AppFactory",
    "Listen",
    "ServerOptions",
    "bind_socket",
    "parse_listen",
    "run",
]
