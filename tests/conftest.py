"""Shared fixtures: a real origin server, and the real edge started as `edge serve`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.origin_app import OriginServer, running_origin

REPO = Path(__file__).resolve().parent.parent

# The viewer listener's servers (`edge serve --engine`): the end-to-end suites run under each.
ENGINES = ("granian", "hypercorn")


class EdgeProcess:
    """`edge serve ...` in a child process, on ephemeral ports, with its output captured."""

    def __init__(
        self,
        args: list[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        engine: str | None = None,
    ) -> None:
        self.args = [*args, "--engine", engine] if engine else args
        self.engine = engine or "granian"  # the default of `[server] engine`
        self.stdout_path: Path | None = None
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._cwd = cwd
        self._env = env
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.admin_url = ""

    def start(self, tmp_path: Path, timeout: float = 30) -> EdgeProcess:
        self.stdout_path = tmp_path / f"edge-access-{id(self)}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self._env or {})}
        with self.stdout_path.open("w") as stdout:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "serve", *self.args],
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                cwd=self._cwd or REPO,
                env=env,
            )
        threading.Thread(target=self._drain, daemon=True).start()
        banner = self.wait_for(r"listening on http://(\S+?):(\d+)", timeout)
        self.wait_for(r"config: ", timeout)  # the banner's admin line comes before this one
        self.url = f"http://127.0.0.1:{banner.group(2)}"
        admin = self.find(r"admin on http://(\S+?):(\d+)")
        if admin:
            self.admin_url = f"http://127.0.0.1:{admin.group(2)}"
        return self

    def _drain(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._lines.append("<<exit>>")
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def find(self, pattern: str) -> re.Match[str] | None:
        return re.search(pattern, self.log)

    def wait_for(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        """Block until `pattern` appears on stderr (the server's log), or fail."""
        regex = re.compile(pattern)
        with self._cond:
            found = self._cond.wait_for(
                lambda: regex.search("".join(self._lines)) or "<<exit>>" in self._lines,
                timeout,
            )
            match = regex.search("".join(self._lines))
        if not found or match is None:
            raise AssertionError(f"{pattern!r} not in the edge's log:\n{self.log}")
        return match

    def access_lines(self) -> list[str]:
        assert self.stdout_path is not None
        return self.stdout_path.read_text().splitlines()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        finally:
            if self.proc.stderr is not None:
                self.proc.stderr.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's tmp_path, readable by others: functions run under a uid of their own when the
    edge is root, and Lambda too wants code world-readable (755 directories, 644 files)."""
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine in turn, for the module's server-starting fixtures (`--engine`)."""
    value: str = request.param
    return value


@pytest.fixture(scope="module")
def origin() -> Iterator[OriginServer]:
    with running_origin() as server:
        yield server


@pytest.fixture
def start_edge(tmp_path: Path) -> Iterator[object]:
    """Start `edge serve` with the given arguments; stopped at teardown."""
    started: list[EdgeProcess] = []

    def start(
        *args: str,
        config: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> EdgeProcess:
        argv = list(args)
        if config is not None:
            path = tmp_path / f"edge-{len(started)}.toml"
            path.write_text(config)
            argv.insert(0, str(path))
        if "--listen" not in argv:
            argv += ["--listen", "127.0.0.1:0"]
        edge = EdgeProcess(argv, cwd=cwd, env=env)
        started.append(edge)
        return edge.start(tmp_path)

    yield start
    for edge in started:
        if edge.proc is not None and edge.proc.poll() is None:
            edge.stop()


def vm_kib(pid: int, field: str) -> int:
    """A /proc/PID/status memory field (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
