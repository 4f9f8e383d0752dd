"""The edge a load test runs against when TARGET is an edge.toml: started for the run on
ephemeral ports with an admin listener, and stopped (by its PID) after."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_LISTEN = re.compile(r"listening on http://(127\.0\.0\.1:\d+)")
_ADMIN = re.compile(r"admin on http://(127\.0\.0\.1:\d+)")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


class EdgeStartFailed(RuntimeError):
    """The edge did not come up; the message ends with its log's last lines."""


@dataclass(frozen=True)
class StartedEdge:
    url: str
    admin_url: str
    pid: int
    log: Path


@contextlib.contextmanager
def started_edge(config: Path, *, workers: int | None = None) -> Iterator[StartedEdge]:
    """`edge serve CONFIG` on 127.0.0.1:0 with an admin listener on 127.0.0.1:0."""
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as scratch:
        log = Path(scratch) / "edge.log"
        argv = [
            sys.executable,
            "-m",
            "edge.cli",
            "serve",
            str(config),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--no-access-log",
            "--function-logs",
            "errors-only",
        ]
        if workers is not None:
            argv += ["--workers", str(workers)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            url, admin = _await_banner(process, log)
            yield StartedEdge(f"http://{url}", f"http://{admin}", process.pid, log)
        finally:
            _stop(process)


def _tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _await_banner(process: subprocess.Popen[bytes], log: Path) -> tuple[str, str]:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        listen, admin = _LISTEN.search(text), _ADMIN.search(text)
        if listen and admin:
            return listen[1], admin[1]
        if process.poll() is not None:
            raise EdgeStartFailed(
                f"the edge exited with status {process.returncode}:\n{_tail(log)}"
            )
        time.sleep(0.05)  # a child with no readiness channel but its banner: poll
    raise EdgeStartFailed(f"the edge was not ready after {START_TIMEOUT_SECONDS:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # SIGTERM: the edge drains, stops its workers and function environments.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
