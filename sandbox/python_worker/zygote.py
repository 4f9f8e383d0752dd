"""The zygote: a small preloaded interpreter that forks execution environments on request.

Started once as a fresh interpreter (`launcher.Zygote`), it imports the runtime and the modules
handlers commonly use, then waits on its control socket (SOCK_SEQPACKET, one message per
request, file descriptors passed with SCM_RIGHTS). It never starts a thread or an event loop,
so forking it is safe and takes ~2 ms instead of the ~26 ms of a new interpreter
(PERFORMANCE.md). It reaps its children, removes their private temporary directories and tells
the host how each one ended. When the host goes away (EOF) it kills what is left and exits.

How far it confines each environment is its `settings` (argv, JSON): `level` (see
`isolation.py`) and the block of uids it may hand out. Under `namespaces` the zygote itself runs
under bubblewrap, and each environment is a PID namespace of its own: an init (PID 1, made
ahead of time, which only reaps what the function orphans) and the runtime, which the zygote
forks into that namespace (PID 2), gives a mount namespace with its own /tmp and /proc, and
drops to the function's uid. When the runtime ends (or the host kills it), the zygote reaps it
and kills its init: the kernel then kills whatever is left in the namespace. Under `uid-only`
each environment runs under a uid of its own, and what it leaves behind is killed by uid once
it has been reaped.

Control messages (orjson documents):
  host -> zygote  {"op": "spawn", "config": {...}}           fds: [environment socket, memfd]
  zygote -> host  {"op": "ready", "pid": n}                  once, at start
                  {"op": "spawned", "pid": n, "tmpdir": s}   fds: [pidfd]
                  {"op": "spawn_failed", "error": s}
                  {"op": "exited", "pid": n, "status": wait status}
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from sandbox.python_worker import confinement
from sandbox.runtime.limits import MAX_PROCESSES

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

# What a zygote keeps of root (capabilities(7)): namespaces and mounts, switching uids, killing
# environments that run under other uids; without namespaces, owning their TMPDIRs instead.
_KEEP_NAMESPACES = (
    confinement.CAP_SYS_ADMIN,
    confinement.CAP_SETUID,
    confinement.CAP_SETGID,
    confinement.CAP_KILL,
)
_KEEP_UID_ONLY = (
    confinement.CAP_CHOWN,
    confinement.CAP_DAC_OVERRIDE,
    confinement.CAP_FOWNER,
    confinement.CAP_SETUID,
    confinement.CAP_SETGID,
    confinement.CAP_KILL,
)


@dataclass(slots=True)
class _Init:
    """PID 1 of an environment's PID namespace: its pid (in the zygote's namespace), a pidfd
    (a kill that cannot hit a recycled pid) and the namespace."""

    pid: int
    pidfd: int
    namespace_fd: int

    def close(self) -> None:
        _close_all((self.pidfd, self.namespace_fd))


@dataclass(slots=True)
class _Child:
    """An environment the zygote forked: its TMPDIR (uid-only, none), its uid, and the init
    of its PID namespace (namespaces)."""

    tmpdir: str | None
    uid: int | None
    init: _Init | None


class _Uids:
    """The zygote's block of uids: one per live environment, reused once it is reaped."""

    def __init__(self, first: int, count: int) -> None:
        self._free = collections.deque(range(first, first + count))
        self._first = first
        self._count = count
        self._next_shared = 0

    def take(self) -> int:
        if self._free:
            return self._free.popleft()
        # More live environments than uids: share (RLIMIT_NPROC then counts them together).
        self._next_shared = (self._next_shared + 1) % self._count
        return self._first + self._next_shared

    def give_back(self, uid: int) -> None:
        if uid not in self._free:
            self._free.append(uid)


@dataclass(slots=True)
class _Settings:
    level: str
    uids: _Uids | None
    own_pid_namespace: int = -1
    spare_init: _Init | None = None


def _parse_settings(text: str | None) -> _Settings:
    document = orjson.loads(text) if text else {}
    level = str(document.get("level", "none"))
    first = document.get("uid_first")
    uids = _Uids(int(first), int(document["uid_count"])) if first is not None else None
    return _Settings(level, uids)


def serve(
    control_fd: int, remove_from_path: str | None = None, settings_text: str | None = None
) -> NoReturn:
    """Run the zygote on the inherited control socket `control_fd`; never returns."""
    import importlib

    from sandbox.python_worker import runtime

    settings = _parse_settings(settings_text)
    for name in _PRELOAD:
        importlib.import_module(name)
    if remove_from_path is not None:
        # The host's source tree was only needed to import the runtime; keep it from handlers.
        with contextlib.suppress(ValueError):
            sys.path.remove(remove_from_path)
    if os.geteuid() == 0 and settings.level != "none":
        keep = _KEEP_NAMESPACES if settings.level == "namespaces" else _KEEP_UID_ONLY
        confinement.keep_only_capabilities(keep)
    if settings.level == "namespaces":
        settings.own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when environments end
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    control = socket.socket(fileno=control_fd)
    control.setblocking(True)
    children: dict[int, _Child] = {}
    if settings.level == "namespaces":
        settings.spare_init = _make_init()
    _send(control, {"op": "ready", "pid": os.getpid()})

    while True:
        readable, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
            _reap(control, children, settings, block=False)
        if control.fileno() in readable:
            try:
                data, fds, _flags, _address = socket.recv_fds(control, _MAX_MESSAGE_BYTES, 4)
            except ConnectionResetError:
                data, fds = b"", []
            if not data:
                break
            request = orjson.loads(data)
            if request.get("op") == "spawn" and len(fds) == 2:
                inherited = (control.fileno(), wake_r, wake_w)
                spawn = _spawn_namespaced if settings.level == "namespaces" else _spawn
                spawn(control, children, settings, request["config"], fds, inherited, runtime)
                if settings.level == "namespaces" and settings.spare_init is None:
                    # The next environment's init, made while this one starts.
                    with contextlib.suppress(OSError):
                        settings.spare_init = _make_init()
            else:
                for fd in fds:
                    os.close(fd)

    # The host is gone or closing: nothing may outlive it.
    for pid in list(children):
        _kill_group(pid)
    _reap(control, children, settings, block=True)
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


def _close_all(fds: tuple[int, ...]) -> None:
    for fd in fds:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _limits(config: dict[str, Any], settings: _Settings, uid: int | None) -> None:
    config["address_space_bytes"] = _virtual_size_bytes() + int(config["memory_mb"]) * (1 << 20)
    # RLIMIT_NPROC counts the processes of the real uid (setrlimit(2)), per user namespace:
    # meaningful when the environment has a uid of its own, or is in bubblewrap's user
    # namespace (the edge not root), never with the edge's own uid.
    if uid is not None or settings.level == "namespaces":
        config["max_processes"] = MAX_PROCESSES


def _spawn(
    control: socket.socket,
    children: dict[int, _Child],
    settings: _Settings,
    config: dict[str, Any],
    fds: list[int],
    inherited: tuple[int, ...],
    runtime: Any,
) -> None:
    """uid-only and none: fork the runtime directly, with a private TMPDIR."""
    sock_fd, memfd = fds
    uid = settings.uids.take() if settings.uids is not None else None
    try:
        tmpdir = tempfile.mkdtemp(prefix="edge-env-")
        if uid is not None:
            os.chown(tmpdir, uid, uid)
    except OSError as exc:
        _close_all((sock_fd, memfd))
        if uid is not None and settings.uids is not None:
            settings.uids.give_back(uid)
        _send(control, {"op": "spawn_failed", "error": f"cannot create TMPDIR: {exc}"})
        return
    config["environ"]["TMPDIR"] = tmpdir
    _limits(config, settings, uid)
    fork_time = time.monotonic()
    try:
        pid = os.fork()
    except OSError as exc:
        _close_all((sock_fd, memfd))
        shutil.rmtree(tmpdir, ignore_errors=True)
        if uid is not None and settings.uids is not None:
            settings.uids.give_back(uid)
        _send(control, {"op": "spawn_failed", "error": f"fork failed: {exc}"})
        return
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            _close_all(inherited)
            if uid is not None:
                confinement.drop_to_user(uid)
            else:
                confinement.drop_capabilities()
        except BaseException:  # noqa: BLE001 - never run a function unconfined
            os._exit(70)
        runtime.run_environment(sock_fd, memfd, config, fork_time)
    _close_all((sock_fd, memfd))
    children[pid] = _Child(tmpdir, uid, None)
    _reply_spawned(control, pid, tmpdir)


def _make_init() -> _Init:
    """A new PID namespace and its PID 1 (forked now, used by the next environment)."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        confinement.unshare(confinement.CLONE_NEWPID)
        try:
            pid = os.fork()
        except OSError:
            confinement.setns(own, confinement.CLONE_NEWPID)
            raise
        if pid == 0:
            _run_init()
        confinement.setns(own, confinement.CLONE_NEWPID)
    finally:
        os.close(own)
    pidfd = os.pidfd_open(pid)
    return _Init(pid, pidfd, os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC))


def _run_init() -> NoReturn:
    """PID 1 of an environment: reap what the function orphans (an init's duty,
    pid_namespaces(7)) until the zygote kills it. It keeps uid 0 with no capability left, so
    the function (another uid) can neither signal nor ptrace it."""
    code = 71
    try:
        signal.set_wakeup_fd(-1)
        os.closerange(3, 1 << 20)
        confinement.keep_only_capabilities((), bounding=False)
        confinement.forbid_new_privileges()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        while True:
            signal.sigwait({signal.SIGCHLD})
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
    except BaseException:  # noqa: BLE001 - PID 1 must end, whatever happened
        with contextlib.suppress(Exception):
            import traceback

            traceback.print_exc()
    os._exit(code)


def _close_except(keep: tuple[int, ...]) -> None:
    """Close every descriptor from 3 up but `keep`: a runtime inherits only its own."""
    low = 3
    for fd in sorted(keep):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)


def _spawn_namespaced(
    control: socket.socket,
    children: dict[int, _Child],
    settings: _Settings,
    config: dict[str, Any],
    fds: list[int],
    inherited: tuple[int, ...],
    runtime: Any,
) -> None:
    """namespaces: fork the runtime into a ready init's PID namespace; it makes its mount
    namespace itself, then drops to the function's uid."""
    sock_fd, memfd = fds
    uid = settings.uids.take() if settings.uids is not None else None
    config["environ"]["TMPDIR"] = "/tmp"
    _limits(config, settings, uid)
    tmp_bytes = int(config.get("tmp_bytes", 512 << 20))
    fork_time = time.monotonic()
    try:
        init = settings.spare_init or _make_init()
        settings.spare_init = None
        # The next child is created in the init's PID namespace (setns(2)), then back.
        confinement.setns(init.namespace_fd, confinement.CLONE_NEWPID)
        try:
            pid = os.fork()
        except OSError:
            confinement.setns(settings.own_pid_namespace, confinement.CLONE_NEWPID)
            _end_init(init)
            raise
        if pid != 0:
            confinement.setns(settings.own_pid_namespace, confinement.CLONE_NEWPID)
    except OSError as exc:
        _close_all((sock_fd, memfd))
        if uid is not None and settings.uids is not None:
            settings.uids.give_back(uid)
        _send(control, {"op": "spawn_failed", "error": f"cannot start a namespace: {exc}"})
        return
    if pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            _close_except((sock_fd, memfd))
            confinement.enter_environment_namespaces(uid, tmp_bytes)
            if uid is not None:
                confinement.drop_to_user(uid)
            else:
                confinement.drop_capabilities()
        except BaseException:  # noqa: BLE001 - never run a function unconfined
            with contextlib.suppress(Exception):
                import traceback

                traceback.print_exc()
            os._exit(70)
        runtime.run_environment(sock_fd, memfd, config, fork_time)
    _close_all((sock_fd, memfd))
    children[pid] = _Child(None, uid, init)
    _reply_spawned(control, pid, "/tmp")


def _end_init(init: _Init) -> None:
    """Kill an environment's init, which takes the rest of its PID namespace with it
    (pid_namespaces(7)), and reap it: once reaped, nothing of the namespace is left."""
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(init.pidfd, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PIDFD, init.pidfd, os.WEXITED)
    init.close()


def _reply_spawned(control: socket.socket, pid: int, tmpdir: str) -> None:
    pidfd = os.pidfd_open(pid)
    try:
        _send(control, {"op": "spawned", "pid": pid, "tmpdir": tmpdir}, [pidfd])
    finally:
        os.close(pidfd)


def _kill_user(uid: int) -> None:
    """SIGKILL every process of `uid` (what an environment left behind: a double-forked
    daemon escapes its process group). kill(-1) from a process of that uid reaches all of
    them but itself (kill(2))."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:  # noqa: BLE001 - a helper: nothing to report to
            pass
        os._exit(0)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _reap(
    control: socket.socket, children: dict[int, _Child], settings: _Settings, *, block: bool
) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        child = children.pop(pid, None)
        if child is None:
            if settings.spare_init is not None and pid == settings.spare_init.pid:
                settings.spare_init.close()  # died unused: made again at the next spawn
                settings.spare_init = None
            continue  # an init killed from outside: its runtime is reaped on its own
        if child is not None:
            if child.init is not None:
                _end_init(child.init)
            if child.uid is not None and settings.level != "namespaces":
                _kill_user(child.uid)
            if child.tmpdir is not None:
                shutil.rmtree(child.tmpdir, ignore_errors=True)
            if child.uid is not None and settings.uids is not None:
                settings.uids.give_back(child.uid)
        _send(control, {"op": "exited", "pid": pid, "status": status})


if __name__ == "__main__":
    serve(
        int(sys.argv[1]),
        sys.argv[2] if len(sys.argv) > 2 else None,
        sys.argv[3] if len(sys.argv) > 3 else None,
    )
