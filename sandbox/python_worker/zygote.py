"""The zygote: a small preloaded interpreter that forks execution environments on request.

Started once as a fresh interpreter (`launcher.Zygote`), it imports the runtime and the modules
handlers commonly use, then waits on its control socket (SOCK_SEQPACKET, one message per
request, file descriptors passed with SCM_RIGHTS). It never starts a thread or an event loop,
so forking it is safe and takes ~2 ms instead of the ~26 ms of a new interpreter
(PERFORMANCE.md). It reaps its children, removes their private temporary directories and tells
the host how each one ended. When the host goes away (EOF) it kills what is left and exits.

Control messages (orjson documents):
  host -> zygote  {"op": "spawn", "config": {...}}           fds: [environment socket, memfd]
  zygote -> host  {"op": "ready", "pid": n}                  once, at start
                  {"op": "spawned", "pid": n, "tmpdir": s}   fds: [pidfd]
                  {"op": "spawn_failed", "error": s}
                  {"op": "exited", "pid": n, "status": wait status}
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from typing import Any, NoReturn

import orjson

# Modules Lambda@Edge handlers commonly import: loaded once here, shared by every fork.
_PRELOAD = (
    "base64",
    "copy",
    "datetime",
    "hashlib",
    "hmac",
    "json",
    "re",
    "urllib.parse",
    "uuid",
)

_MAX_MESSAGE_BYTES = 1 << 20


def serve(control_fd: int, remove_from_path: str | None = None) -> NoReturn:
    """Run the zygote on the inherited control socket `control_fd`; never returns."""
    import importlib

    from sandbox.python_worker import runtime

    for name in _PRELOAD:
        importlib.import_module(name)
    if remove_from_path is not None:
        # The host's source tree was only needed to import the runtime; keep it from handlers.
        with contextlib.suppress(ValueError):
            sys.path.remove(remove_from_path)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when environments end
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    control = socket.socket(fileno=control_fd)
    control.setblocking(True)
    children: dict[int, str] = {}
    _send(control, {"op": "ready", "pid": os.getpid()})

    while True:
        readable, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
            _reap(control, children, block=False)
        if control.fileno() in readable:
            try:
                data, fds, _flags, _address = socket.recv_fds(control, _MAX_MESSAGE_BYTES, 4)
            except ConnectionResetError:
                data, fds = b"", []
            if not data:
                break
            request = orjson.loads(data)
            if request.get("op") == "spawn" and len(fds) == 2:
                _spawn(control, children, request["config"], fds, (wake_r, wake_w), runtime)
            else:
                for fd in fds:
                    os.close(fd)

    # The host is gone or closing: nothing may outlive it.
    for pid in list(children):
        _kill_group(pid)
    _reap(control, children, block=True)
    os._exit(0)


def _send(control: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    with contextlib.suppress(OSError):
        if fds:
            socket.send_fds(control, [orjson.dumps(message)], fds)
        else:
            control.send(orjson.dumps(message))


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _virtual_size_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _spawn(
    control: socket.socket,
    children: dict[int, str],
    config: dict[str, Any],
    fds: list[int],
    wake_fds: tuple[int, int],
    runtime: Any,
) -> None:
    sock_fd, memfd = fds
    try:
        tmpdir = tempfile.mkdtemp(prefix="edge-env-")
    except OSError as exc:
        os.close(sock_fd)
        os.close(memfd)
        _send(control, {"op": "spawn_failed", "error": f"cannot create TMPDIR: {exc}"})
        return
    config["environ"]["TMPDIR"] = tmpdir
    config["address_space_bytes"] = _virtual_size_bytes() + int(config["memory_mb"]) * (1 << 20)
    fork_time = time.monotonic()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(sock_fd)
        os.close(memfd)
        shutil.rmtree(tmpdir, ignore_errors=True)
        _send(control, {"op": "spawn_failed", "error": f"fork failed: {exc}"})
        return
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            for fd in (control.fileno(), *wake_fds):
                os.close(fd)
        finally:
            runtime.run_environment(sock_fd, memfd, config, fork_time)
    os.close(sock_fd)
    os.close(memfd)
    children[pid] = tmpdir
    pidfd = os.pidfd_open(pid)
    try:
        _send(control, {"op": "spawned", "pid": pid, "tmpdir": tmpdir}, [pidfd])
    finally:
        os.close(pidfd)


def _reap(control: socket.socket, children: dict[int, str], *, block: bool) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        tmpdir = children.pop(pid, None)
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        _send(control, {"op": "exited", "pid": pid, "status": status})


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
