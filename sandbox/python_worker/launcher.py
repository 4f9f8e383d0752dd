"""The host's side of the zygote: start it, ask it for processes, learn how they end.

`Zygote.launch()` starts the zygote (`zygote.py`) as a fresh interpreter; `spawn()` hands it a
socket and a memfd for the new environment and gets back the child's pid and a pidfd (so a kill
can never hit a recycled pid); each child's end arrives as a wait status on
`SpawnedProcess.exited`, after the zygote has reaped it and removed its temporary directory.
A zygote is bound to the event loop that launched it. Its confinement (`isolation.py`) is fixed
at launch: under bubblewrap it sees only the code directories it was given, so a zygote serves
the functions whose code it was launched with (the pool launches one per function).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sandbox.python_worker.isolation import (
    SOURCE_ROOT,
    IsolationReport,
    SandboxPolicy,
    UidBlock,
    bwrap_arguments,
    bwrap_path,
    claim_uid_block,
    environment_pid,
    probe_isolation,
    uid_for,
)
from sandbox.runtime.errors import SandboxError
from sandbox.runtime.layers import LayerSet
from sandbox.runtime.output_tail import read_output_tail

_SOURCE_ROOT = str(SOURCE_ROOT)
_MAX_MESSAGE_BYTES = 1 << 16
_STARTUP_TIMEOUT_SECONDS = 30.0


@dataclass(eq=False)
class SpawnedProcess:
    """One forked environment process, as the host sees it.

    `exited` resolves to the raw wait status once the zygote has reaped the process and removed
    its temporary directory (None if the zygote itself went away first). `pid` is in the host's
    PID namespace. `namespaced`: the process has a PID namespace of its own, whose init the
    zygote kills (taking every process left in it) once the process has ended.
    """

    pid: int
    pidfd: int
    tmpdir: str
    sock: socket.socket
    memfd: int
    exited: asyncio.Future[int | None] = field(repr=False)
    namespaced: bool = False

    def kill(self) -> None:
        """SIGKILL the process (and its process group); a no-op once it has exited."""
        if self.exited.done():
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        if not self.namespaced:  # its namespace's end takes every descendant
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    def read_output(self, max_bytes: int) -> str:
        """What the process wrote to fds 1/2 since its last drain (for timeouts and crashes):
        the last `max_bytes`, after a marker line when more was written."""
        return read_output_tail(self.memfd, max_bytes)

    def peak_memory_mb(self) -> int | None:
        """The process's peak resident set (VmHWM), while it is alive."""
        try:
            with open(f"/proc/{self.pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        return int(line.split()[1]) // 1024
        except (OSError, ValueError):
            return None
        return None

    def release(self) -> None:
        """Close the host's descriptors (after the process has exited)."""
        for fd in (self.pidfd, self.memfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pidfd = self.memfd = -1


class Zygote:
    """A running zygote process and its control channel. Use `await Zygote.launch()`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        process: asyncio.subprocess.Process,
        control: socket.socket,
        isolation: IsolationReport,
        uids: UidBlock | None,
        layers_root: str | None = None,
    ) -> None:
        self._loop = loop
        # Where its environments see the function's layers (None: it has none).
        self.layers_root = layers_root
        self._process = process
        self._control = control
        self.isolation = isolation
        self._uids = uids
        self._replies: collections.deque[asyncio.Future[tuple[dict[str, Any], list[int]]]] = (
            collections.deque()
        )
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._early_exits: dict[int, int] = {}
        self._ready: asyncio.Future[None] = loop.create_future()
        self._closed = False
        loop.add_reader(control.fileno(), self._on_readable)

    @property
    def pid(self) -> int:
        """The zygote's pid."""
        return self._process.pid

    @property
    def alive(self) -> bool:
        """True until the zygote exited or was closed."""
        return not self._closed and self._process.returncode is None

    @classmethod
    async def launch(
        cls,
        *,
        sandbox: SandboxPolicy | None = None,
        code_dirs: Sequence[Path] = (),
        writable_dirs: Sequence[Path] = (),
        network: bool = False,
        identity: str = "",
        layers: LayerSet | None = None,
    ) -> Zygote:
        """Start a zygote as a fresh interpreter and wait until it has preloaded.

        `sandbox` (default: the best isolation available) decides its confinement;
        `code_dirs` are the function code it may show (read-only), `writable_dirs` the host
        directories its environments may write, `network` whether they share the host's
        network. `identity` (the function's name) picks its uid under namespaces. `layers`:
        the function's layers, at /opt under bubblewrap (else at their merged tree). Raises
        `SandboxUnavailable` when the policy asks for a level this machine cannot give.
        """
        loop = asyncio.get_running_loop()
        policy = sandbox or SandboxPolicy()
        # The first probe of the process starts a sandbox (tens of ms): off the event loop.
        report = await loop.run_in_executor(
            None, probe_isolation, policy.isolation, policy.uid_base
        )
        uids: UidBlock | None = None
        settings: dict[str, Any] = {"level": report.level}
        if report.switches_uid and report.level == "namespaces":
            name = identity or ",".join(str(d) for d in code_dirs)
            uid = uid_for(name, policy.uid_base, policy.uid_count)
            settings.update(uid_first=uid, uid_count=1)
        elif report.switches_uid:
            uids = claim_uid_block(policy.uid_base, policy.uid_count)
            settings.update(uid_first=uids.first, uid_count=uids.count)
        prefix: list[str] = []
        confined = report.level == "namespaces"
        if confined:
            prefix = await loop.run_in_executor(
                None, _bwrap_prefix, code_dirs, writable_dirs, network, policy.hidden_paths, layers
            )
        layers_root = layers.root(confined) if layers is not None else None
        # Nothing of the edge's environment reaches a function; the loader reads
        # LD_LIBRARY_PATH when the interpreter starts, so the layers' lib is set here.
        environ = (
            {} if layers_root is None or confined else {"LD_LIBRARY_PATH": f"{layers_root}/lib"}
        )
        host_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            code = (
                "import sys; sys.path.insert(0, sys.argv[2]); "
                "from sandbox.python_worker.zygote import serve; "
                "serve(int(sys.argv[1]), sys.argv[2], sys.argv[3])"
            )
            process = await asyncio.create_subprocess_exec(
                *prefix,
                sys.executable,
                "-I",
                "-c",
                code,
                str(zygote_end.fileno()),
                _SOURCE_ROOT,
                orjson.dumps(settings).decode(),
                pass_fds=(zygote_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
                env=environ,
            )
        except BaseException:
            host_end.close()
            if uids is not None:
                uids.close()
            raise
        finally:
            zygote_end.close()
        host_end.setblocking(False)
        zygote = cls(loop, process, host_end, report, uids, layers_root)
        try:
            await asyncio.wait_for(asyncio.shield(zygote._ready), _STARTUP_TIMEOUT_SECONDS)
        except BaseException:
            await zygote.aclose()
            raise
        return zygote

    async def spawn(self, config: dict[str, Any]) -> SpawnedProcess:
        """Fork one environment running `runtime.run_environment` with `config`."""
        if not self.alive:
            raise SandboxError("the zygote is not running")
        host_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        memfd = os.memfd_create("edge-env-output", os.MFD_CLOEXEC)
        reply: asyncio.Future[tuple[dict[str, Any], list[int]]] = self._loop.create_future()
        try:
            message = orjson.dumps({"op": "spawn", "config": config})
            self._replies.append(reply)
            try:
                socket.send_fds(self._control, [message], [child_sock.fileno(), memfd])
            except OSError as exc:
                self._replies.remove(reply)
                raise SandboxError(f"cannot reach the zygote: {exc}") from exc
        except BaseException:
            host_sock.close()
            os.close(memfd)
            raise
        finally:
            child_sock.close()
        try:
            document, fds = await reply
        except BaseException:
            host_sock.close()
            os.close(memfd)
            if reply.done() and not reply.cancelled() and reply.exception() is None:
                for fd in reply.result()[1]:
                    os.close(fd)
            raise
        if document.get("op") != "spawned" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            host_sock.close()
            os.close(memfd)
            raise SandboxError(f"the zygote could not start an environment: {document}")
        pid = int(document["pid"])  # in the zygote's PID namespace: the key of its reports
        exited: asyncio.Future[int | None] = self._loop.create_future()
        if pid in self._early_exits:
            exited.set_result(self._early_exits.pop(pid))
        else:
            self._exits[pid] = exited
        host_sock.setblocking(False)
        return SpawnedProcess(
            pid=environment_pid(fds[0]) or pid,
            pidfd=fds[0],
            tmpdir=str(document["tmpdir"]),
            sock=host_sock,
            memfd=memfd,
            exited=exited,
            namespaced=self.isolation.level == "namespaces",
        )

    def _on_readable(self) -> None:
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(self._control, _MAX_MESSAGE_BYTES, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._on_lost()
                return
            self._dispatch(orjson.loads(data), fds)

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> None:
        op = message.get("op")
        if op == "exited":
            pid, status = int(message["pid"]), int(message["status"])
            future = self._exits.pop(pid, None)
            if future is None:
                self._early_exits[pid] = status
            elif not future.done():
                future.set_result(status)
        elif op == "ready":
            if not self._ready.done():
                self._ready.set_result(None)
        elif self._replies:
            reply = self._replies.popleft()
            if reply.done():
                for fd in fds:
                    os.close(fd)
            else:
                reply.set_result((message, fds))
        else:
            for fd in fds:
                os.close(fd)

    def _on_lost(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._control.fileno())
        self._control.close()
        error = SandboxError("the zygote exited")
        if not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved: launch() reports it
        while self._replies:
            reply = self._replies.popleft()
            if not reply.done():
                reply.set_exception(error)
        # Without the zygote nobody reaps or reports: the environments die with their sockets.
        for future in self._exits.values():
            if not future.done():
                future.set_result(None)
        self._exits.clear()

    async def aclose(self) -> None:
        """Stop the zygote: it kills and reaps every environment it still has, then exits."""
        self._on_lost()
        try:
            await asyncio.wait_for(self._process.wait(), _STARTUP_TIMEOUT_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        finally:
            if self._uids is not None:
                self._uids.close()
                self._uids = None


def _bwrap_prefix(
    code_dirs: Sequence[Path],
    writable_dirs: Sequence[Path],
    network: bool,
    hidden_paths: Sequence[Path],
    layers: LayerSet | None,
) -> list[str]:
    """bwrap's command line for a zygote (it stats the paths it binds: off the event loop)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxError("bubblewrap (bwrap) was removed since the edge started")
    return bwrap_arguments(
        bwrap,
        code_dirs=code_dirs,
        writable_dirs=writable_dirs,
        network=network,
        hidden_paths=hidden_paths,
        layers=layers,
    )
