"""The serving shell: listeners, worker processes, signals and graceful shutdown, under granian
or hypercorn (`ServerOptions.engine`) for viewers and hypercorn for the admin listener.

One worker serves in this process. Several workers each get their own listening socket bound
to the same address with SO_REUSEPORT, so the kernel spreads connections across processes
(hypercorn's own multi-worker mode shares one socket, and one worker then takes most
keep-alive connections: see PERFORMANCE.md). Workers are forked after the configuration is
loaded, and build their app after the fork, so no event loop or client crosses a fork.

The admin app (health, metrics, later the Invoke API) runs in the parent process.

Every listener is bound before anything is served, so an address that cannot be had is one
clear error (`ListenError`); with several workers a plain bind first makes sure no other
server holds the address (SO_REUSEPORT alone would let a second instance share it silently).

Modules: `options` (addresses, settings, binding), `processes` (one worker or several,
signals, shutdown), `granian_engine` (the viewer app under granian's embedded server),
`hypercorn_engine` (ASGI apps under hypercorn) and `hypercorn_patches` (two corrections to
hypercorn's HTTP/1.1 protocol, applied only to the versions they were tested on).
"""

from edge.server.hypercorn_engine import ASGIApp
from edge.server.options import (
    Engine,
    Listen,
    ListenError,
    ServerOptions,
    bind_socket,
    bind_sockets,
    parse_listen,
)
from edge.server.processes import AppFactory, run

__all__ = [
    "ASGIApp",
    "AppFactory",
    "Engine",
    "Listen",
    "ListenError",
    "ServerOptions",
    "bind_socket",
    "bind_sockets",
    "parse_listen",
    "run",
]
