"""One runtime process (a `node`, a custom runtime's agent), as the host sees it: started,
watched, killed, its output read.

`start_process` spawns the command with `os.posix_spawn` (no fork of the edge): fd 0 is
/dev/null, fds 1 and 2 one memory file opened for appending (so that the process can empty it
and go on writing at its start), fd 3 its end of the framed socket, in a session of its own.
Its exit is learnt from a pidfd on the event loop, and a kill goes through the pidfd (never a
recycled pid) and to its process group.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import resource
import shutil
import signal
import socket
import termios
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sandbox.runtime.output_tail import read_output_tail

# The fd the runtime script reads its socket from (its first argument).
IPC_FD = 3
# §14: 1,024 file descriptors.
MAX_OPEN_FILES = 1024


@dataclass(eq=False)
class SpawnedProcess:
    """A started process. `exited` resolves to its raw wait status. `tmpdir`: the host
    directory that is its TMPDIR (None under bubblewrap, whose /tmp is its own tmpfs)."""

    pid: int
    pidfd: int
    sock: socket.socket
    memfd: int
    tmpdir: str | None
    exited: asyncio.Future[int | None] = field(repr=False)

    def kill(self) -> None:
        """SIGKILL the process and its process group; a no-op once it has exited."""
        if self.exited.done():
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def read_output(self, max_bytes: int) -> str:
        """What the process wrote since its last drain (for timeouts and crashes)."""
        return read_output_tail(self.memfd, max_bytes)

    def peak_memory_mb(self) -> int | None:
        """The peak resident set (VmHWM) of the process, or of the one it runs (bwrap's
        child), while it is alive."""
        pid = self.pid
        for _ in range(3):
            try:
                with open(f"/proc/{pid}/status", "rb") as status:
                    fields = dict(line.split(b":", 1) for line in status if b":" in line)
                name = fields.get(b"Name", b"").strip()
                if name != b"bwrap":
                    return int(fields[b"VmHWM"].split()[0]) // 1024
                with open(f"/proc/{pid}/task/{pid}/children", "rb") as children:
                    pid = int(children.read().split()[0])
            except (OSError, ValueError, KeyError, IndexError):
                return None
        return None

    def runtime_pid(self) -> int:
        """The pid of the process that runs the runtime (bwrap's child's child under bubblewrap)."""
        pid = self.pid
        for _ in range(3):
            try:
                with open(f"/proc/{pid}/comm", "rb") as comm:
                    if comm.read().strip() != b"bwrap":
                        return pid
                with open(f"/proc/{pid}/task/{pid}/children", "rb") as children:
                    pid = int(children.read().split()[0])
            except (OSError, ValueError, IndexError):
                return pid
        return pid

    def sleeps(self) -> bool:
        """True when the process that runs the runtime is asleep (state S or D), not on a CPU."""
        try:
            with open(f"/proc/{self.runtime_pid()}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split(maxsplit=1)[0]
        except (OSError, IndexError):
            return False
        return state in (b"S", b"D")

    def answer_pending(self) -> bool:
        """True when bytes the process sent wait unread on the host's socket."""
        pending = array.array("i", [0])
        try:
            fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, pending)
        except OSError:
            return False
        return pending[0] > 0

    def release(self) -> None:
        """Close the host's descriptors and remove the TMPDIR (after the process exited)."""
        for fd in (self.pidfd, self.memfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pidfd = self.memfd = -1
        self.sock.close()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def _high_fd(fd: int) -> int:
    """`fd` moved above the three standard ones and IPC_FD (a dup2 onto itself would keep its
    close-on-exec flag)."""
    if fd > IPC_FD:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, IPC_FD + 1)
    os.close(fd)
    return moved


def start_process(
    command: Sequence[str],
    environment: Mapping[str, str],
    *,
    tmpdir: str | None,
    data_limit_bytes: int | None,
    max_file_bytes: int,
) -> SpawnedProcess:
    """Spawn `command` (an absolute path first) with `environment`; its socket's fd number is
    appended as its last argument. `data_limit_bytes`: RLIMIT_DATA set on the process right
    after it starts, before it has loaded any code (None: the command sets its own)."""
    loop = asyncio.get_running_loop()
    host_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    memfd = os.memfd_create("edge-runtime-output", os.MFD_CLOEXEC)
    output = child = -1
    try:
        output = _high_fd(os.open(f"/proc/self/fd/{memfd}", os.O_RDWR | os.O_APPEND | os.O_CLOEXEC))
        child = _high_fd(child_sock.detach())
        pid = os.posix_spawn(
            command[0],
            [*command, str(IPC_FD)],
            dict(environment),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, output, 1),
                (os.POSIX_SPAWN_DUP2, output, 2),
                (os.POSIX_SPAWN_DUP2, child, IPC_FD),
            ],
            setsid=True,
        )
    except BaseException:
        host_sock.close()
        os.close(memfd)
        raise
    finally:
        for fd in (output, child):
            if fd >= 0:
                os.close(fd)
    pidfd = os.pidfd_open(pid)
    if data_limit_bytes is not None:
        with contextlib.suppress(OSError):
            resource.prlimit(pid, resource.RLIMIT_DATA, (data_limit_bytes, data_limit_bytes))
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
    exited: asyncio.Future[int | None] = loop.create_future()

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        status: int | None = None
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(pid, 0)
        if not exited.done():
            exited.set_result(status)

    loop.add_reader(pidfd, on_exit)
    host_sock.setblocking(False)
    return SpawnedProcess(pid, pidfd, host_sock, memfd, tmpdir, exited)


def limit_prefix(prlimit: str, *, data_limit_bytes: int, max_file_bytes: int) -> list[str]:
    """The `prlimit(1)` command that sets the limits inside a sandbox, where the host cannot
    reach the process that runs the runtime."""
    return [
        prlimit,
        f"--data={data_limit_bytes}",
        f"--fsize={max_file_bytes}",
        f"--nofile={MAX_OPEN_FILES}",
        "--",
    ]


def confined_command(
    prefix: list[str],
    command: Sequence[str],
    *,
    code_dir: str,
    data_limit_bytes: int,
    max_file_bytes: int,
) -> list[str]:
    """`command` run by the bubblewrap `prefix` in `code_dir`, under `prlimit(1)`'s limits when
    it is installed (inside the sandbox the host cannot set them on the process)."""
    confined = [*prefix, "--chdir", code_dir]
    prlimit = shutil.which("prlimit")
    if prlimit is not None:
        confined += limit_prefix(
            prlimit, data_limit_bytes=data_limit_bytes, max_file_bytes=max_file_bytes
        )
    return [*confined, *command]


# How long `Spares.aclose` waits for the killed spares to exit.
_SPARE_EXIT_SECONDS = 5.0


class Spares:
    """Processes started ahead of need (a runtime's `spare_environments`), so that a cold
    start takes one already booted. `start` starts one; `count` is how many to keep."""

    def __init__(self, start: Callable[[], SpawnedProcess], count: int) -> None:
        self._start = start
        self._count = count
        self._spares: list[SpawnedProcess] = []

    def fill(self) -> None:
        """Start spares up to the count, replacing those that died."""
        for process in self._spares:
            if process.exited.done():
                process.release()
        self._spares = [p for p in self._spares if not p.exited.done()]
        while len(self._spares) < self._count:
            self._spares.append(self._start())

    def take(self) -> SpawnedProcess:
        """A live spare (the oldest), or a process started now when there is none."""
        while self._spares:
            candidate = self._spares.pop(0)
            if not candidate.exited.done():
                return candidate
            candidate.release()
        return self._start()

    async def aclose(self) -> None:
        """Kill the spares and wait (a little) for them to exit."""
        spares, self._spares = self._spares, []
        for process in spares:
            process.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(asyncio.shield(p.exited) for p in spares)), _SPARE_EXIT_SECONDS
            )
        for process in spares:
            process.release()
