"""A redis-server of the node's own: the cache tier its workers share when there is no cluster.

With `[server] workers` above 1 and no `[cluster] redis`, each worker would keep a cache of
its own and the hit ratio would split N ways. `edge serve` then starts Debian's
`redis-server` as its child, listening only on a Unix socket in a private folder (mode 700,
no TCP port), with nothing written to disk and `maxmemory` with `allkeys-lru` as its budget,
and every worker uses it as the second cache tier a cluster's Redis would be (misses look
there before the origin; concurrent misses in several workers make one origin request).

The server dies with the edge: stopped by its PID when `edge serve` ends, and asked by the
kernel to stop (PR_SET_PDEATHSIG) should the edge itself be killed. When redis-server or the
redis client is missing, `start` says why and the workers keep their own caches.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

logger = logging.getLogger("edge.cluster")

_PR_SET_PDEATHSIG = 1
STARTUP_SECONDS = 10.0


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the edge's process dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalRedis:
    """One redis-server child on a Unix socket under `directory` (see the module)."""

    def __init__(self, directory: Path, *, memory_bytes: int) -> None:
        self.directory = directory
        self.memory_bytes = memory_bytes
        self.socket = directory / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> bool:
        """Start it and wait until it answers; False (and a log line saying why) when it
        cannot run here."""
        executable = shutil.which("redis-server")
        if executable is None:
            logger.warning(
                "cache: %s",
                "redis-server is not installed: each worker keeps a cache of its own "
                "(apt-get install redis-server to share one tier between them)",
            )
            return False
        try:
            import redis  # noqa: F401 - the workers' client
        except ImportError:
            logger.warning(
                "cache: the redis client is not installed: each worker keeps a cache of its "
                "own (pip install 'edge[cluster]' to share one tier between them)"
            )
            return False
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                executable,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory",
                str(self.memory_bytes),
                "--maxmemory-policy",
                "allkeys-lru",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # only prctl, before exec
        )
        log.close()
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                logger.warning(
                    "cache: redis-server exited with %s at start (see %s): each worker keeps "
                    "a cache of its own",
                    self.proc.returncode,
                    self.directory / "redis.log",
                )
                self.proc = None
                return False
            if self._answers():
                logger.info(
                    "cache: the workers share a tier in redis-server (pid %d, %s, %d MiB)",
                    self.proc.pid,
                    self.socket,
                    self.memory_bytes // (1024 * 1024),
                )
                return True
            time.sleep(0.02)
        self.stop()
        logger.warning("cache: redis-server did not answer: each worker keeps its own cache")
        return False

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(0.5)
                probe.connect(str(self.socket))
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop it (by its PID) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
