"""How far Python functions are isolated from the edge, and the bubblewrap command that does it.

Three levels, best first (`probe_isolation` finds the best this machine allows, once per
process, by really starting a sandbox):

- `namespaces`: each function's zygote runs under bubblewrap (bwrap(1)) in its own mount, PID,
  IPC, UTS and (unless the function has `network = true`) network namespace, with a scrubbed
  environment and read-only binds of only what Python needs plus the function's code (and
  its layers, at /opt); each
  environment is forked into a PID and mount namespace of its own with a private /tmp and
  /proc, and (when the edge is root) a uid of its own.
- `uid-only`: no namespaces (no bwrap, or a container that forbids them), but the edge is root:
  each environment runs under a uid of its own with a private TMPDIR; processes it leaves
  behind are killed by uid when it ends.
- `none`: the environment runs as the edge's user; only the scrubbed environment, the rlimits
  and the zygote per function remain.

`SandboxPolicy.isolation` asks for one: `auto` takes the best available; asking for a level
the machine cannot give raises `SandboxUnavailable` (the edge then refuses to start).

Uids (only when the edge is root): under `namespaces` every environment of a function runs
under that function's uid, the same in every edge process and across restarts (`uid_for`), so
that files it writes in its `writable_paths` stay its own; its environments are kept apart by
their namespaces. Under `uid-only` nothing else keeps environments apart, so each gets a uid
of its own: a zygote claims a block of them (`UIDS_PER_ZYGOTE`) by binding an abstract Unix
socket named after it; the claim ends when the socket closes, so blocks are unique across the
edge's processes (workers, admin) without a file to clean up.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sandbox.runtime.bwrap import mask_arguments
from sandbox.runtime.errors import SandboxError
from sandbox.runtime.layers import OPT, LayerSet

Isolation = Literal["auto", "namespaces", "uid-only", "none"]
Level = Literal["namespaces", "uid-only", "none"]
LEVELS: tuple[Level, ...] = ("namespaces", "uid-only", "none")

# The directory that holds the `sandbox` package: the zygote imports the runtime from there.
SOURCE_ROOT = Path(__file__).resolve().parents[2]

# Uids per zygote under `uid-only`: one per live environment, so that environments cannot
# signal each other and what one leaves behind can be killed by uid. More live environments
# than this share uids.
UIDS_PER_ZYGOTE = 1024
# Far above the ranges distributions and container tools hand out (systemd's container range
# ends at 1879048191), below 2**31 for tools that keep uids in a signed int.
DEFAULT_UID_BASE = 1_900_000_000
DEFAULT_UID_COUNT = 1024 * UIDS_PER_ZYGOTE

_PROBE_TIMEOUT_SECONDS = 20.0
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc entries Python and libc read; the resolver's only when the function has a network.
_ETC_ALWAYS = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/mime.types",
    "/etc/protocols",
    "/etc/services",
)
_ETC_NETWORK = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
)


class SandboxUnavailable(SandboxError):
    """The isolation level asked for cannot be had on this machine."""


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """What the edge asks of the sandbox (the `[sandbox]` table).

    `hidden_paths`: the edge's own files (configuration, cache, queue) to mask should a
    function's code directory contain them.
    """

    isolation: Isolation = "auto"
    uid_base: int = DEFAULT_UID_BASE
    uid_count: int = DEFAULT_UID_COUNT
    hidden_paths: tuple[Path, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class IsolationReport:
    """The level in force and why it is not better (`missing`), for the banner and /metrics."""

    level: Level
    bwrap: str | None
    switches_uid: bool
    missing: str = ""

    def describe(self) -> str:
        """One line for people: the level, what it means, what is missing."""
        if self.level == "namespaces":
            users = (
                "a uid per environment"
                if self.switches_uid
                else "the edge's uid (not root: no uid switch)"
            )
            return (
                f"namespaces (bubblewrap {self.bwrap}; per-environment PID and mount "
                f"namespaces, private /tmp, {users}; network only where network = true)"
            )
        if self.level == "uid-only":
            return (
                f"uid-only: WARNING, functions see the edge's files and network; each "
                f"environment has its own uid ({self.missing})"
            )
        return (
            f"none: WARNING, functions run as the edge's user with its files and network "
            f"({self.missing})"
        )


def bwrap_path() -> str | None:
    """bubblewrap's path on the edge's PATH, if installed."""
    return shutil.which("bwrap")


def _is_root() -> bool:
    return os.geteuid() == 0


def _python_roots() -> list[Path]:
    """Directories the interpreter and its installed packages live in."""
    roots = {
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(sys.base_exec_prefix),
        Path(sys.executable).resolve().parent.parent,
    }
    for name in sysconfig.get_paths().values():
        roots.add(Path(name))
    # Never "/" (a prefix of /): that would show the whole machine.
    found = sorted(p.resolve() for p in roots if p.exists() and p.resolve() != Path("/"))
    # The shortest first; drop any root inside another.
    kept: list[Path] = []
    for path in sorted(found, key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return kept


def _system_binds() -> list[str]:
    args: list[str] = []
    for name in _SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    return args


def bwrap_arguments(
    bwrap: str,
    *,
    code_dirs: Sequence[Path],
    network: bool,
    writable_dirs: Sequence[Path] = (),
    hidden_paths: Iterable[Path] = (),
    layers: LayerSet | None = None,
) -> list[str]:
    """The bwrap command line, up to the command it runs (bwrap(1)).

    `layers`: the function's layers, read-only at /opt, with LD_LIBRARY_PATH=/opt/lib for
    the zygote (the dynamic loader reads it once, when the interpreter starts).

    As root, bwrap runs without a user namespace so its binds resolve as root (a user
    namespace's root cannot enter a root-owned directory of mode 0700 such as /root); the
    zygote then keeps only the capabilities it needs. Not root: a user namespace, in which
    the zygote is root with CAP_SYS_ADMIN to make the environments' namespaces.
    """
    args = [
        bwrap,
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "localhost",
        "--die-with-parent",
        "--new-session",  # no TIOCSTI into the edge's terminal
        "--clearenv",
        "--as-pid-1",  # the zygote reaps its own children
    ]
    if not network:
        args.append("--unshare-net")
    if not _is_root():
        args += ["--unshare-user", "--uid", "0", "--gid", "0", "--cap-add", "CAP_SYS_ADMIN"]
    # The zygote's own /proc, /dev and /tmp first: a code directory under /tmp binds on top.
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(1 << 20), "--tmpfs", "/tmp"]
    args += _system_binds()
    for name in (*_ETC_ALWAYS, *(_ETC_NETWORK if network else ())):
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    visible: list[Path] = [Path(name) for name in _SYSTEM_DIRS]
    made: set[Path] = {Path("/tmp")}
    if layers is not None:
        args += layers.bwrap_arguments()
        args += ["--setenv", "LD_LIBRARY_PATH", f"{layers.root(confined=True)}/lib"]
        made.add(Path(OPT))

    def bind(path: Path, *, writable: bool = False) -> None:
        if not writable and any(path.is_relative_to(v) for v in visible):
            return
        # bwrap makes missing parents mode 0700 when run as root: an environment's uid could
        # not pass them. Make them 0755 first (they hold nothing but the way down).
        for parent in reversed(path.parents[:-1]):
            if parent not in made and not any(parent.is_relative_to(v) for v in visible):
                args.extend(["--perms", "0755", "--dir", str(parent)])
                made.add(parent)
        args.extend(["--bind" if writable else "--ro-bind", str(path), str(path)])
        visible.append(path)

    for root in _python_roots():
        bind(root)
    bind(SOURCE_ROOT / "sandbox")
    for code_dir in code_dirs:
        bind(Path(code_dir).resolve())
    for writable in writable_dirs:
        bind(Path(writable).resolve(), writable=True)
    if layers is not None:
        args += layers.bwrap_closing()
    args += mask_arguments((Path(p).resolve() for p in hidden_paths), visible)
    return args


_PROBE = """
import os, sys
sys.path.insert(0, sys.argv[1])
from sandbox.python_worker import confinement as c
uid = int(sys.argv[2]) or None
own = os.open("/proc/self/ns/pid", os.O_RDONLY)
c.unshare(c.CLONE_NEWPID)
pid = os.fork()
if pid == 0:
    c.enter_environment_namespaces(uid, 1 << 20)
    if uid is not None:
        c.drop_to_user(uid)
    os._exit(0 if os.getpid() == 1 and os.listdir("/proc/1") else 3)
c.setns(own, c.CLONE_NEWPID)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _probe_namespaces(bwrap: str, uid: int | None) -> str:
    """'' when a sandbox with per-environment namespaces really starts here, else why not."""
    command = [
        *bwrap_arguments(bwrap, code_dirs=(), network=False),
        sys.executable,
        "-I",
        "-c",
        _PROBE,
        str(SOURCE_ROOT),
        str(uid or 0),
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_SECONDS,
            env={},
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed: {exc}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap failed: {lines[-1] if lines else f'exit status {done.returncode}'}"
    return ""


def _bwrap_version(bwrap: str) -> str:
    try:
        done = subprocess.run(
            [bwrap, "--version"], capture_output=True, timeout=5, check=False, env={}
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.decode().strip().removeprefix("bubblewrap ") or "?"


@functools.lru_cache(maxsize=8)
def probe_isolation(
    isolation: Isolation = "auto", uid_base: int = DEFAULT_UID_BASE
) -> IsolationReport:
    """The isolation this process can give functions, for `isolation` ('auto': the best).

    Raises `SandboxUnavailable` when a specific level was asked for and cannot be had. The
    answer is kept for the process (and the workers it forks): the probe starts a sandbox.
    """
    root = _is_root()
    missing = ""
    if isolation in ("auto", "namespaces"):
        bwrap = bwrap_path()
        if bwrap is None:
            missing = "bubblewrap (bwrap) is not installed"
        else:
            missing = _probe_namespaces(bwrap, uid_base if root else None)
            if not missing:
                return IsolationReport("namespaces", _bwrap_version(bwrap), switches_uid=root)
        if isolation == "namespaces":
            raise SandboxUnavailable(f'isolation = "namespaces" is not available: {missing}')
    if isolation in ("auto", "uid-only"):
        if root:
            return IsolationReport("uid-only", None, switches_uid=True, missing=missing)
        if isolation == "uid-only":
            raise SandboxUnavailable(
                'isolation = "uid-only" needs the edge to run as root (to switch uids)'
            )
        missing = f"{missing}; not root, so no uid switch" if missing else "not root"
    return IsolationReport("none", None, switches_uid=False, missing=missing or "asked for none")


def uid_for(identity: str, uid_base: int, uid_count: int) -> int:
    """A function's uid under `namespaces`: stable for its name (two names may share one in a
    million; their environments stay apart by namespaces all the same)."""
    digest = hashlib.sha256(identity.encode()).digest()
    return uid_base + int.from_bytes(digest[:8], "big") % uid_count


class UidBlock:
    """`UIDS_PER_ZYGOTE` uids claimed for one zygote; `close()` gives them back."""

    def __init__(self, first: int, count: int, claim: socket.socket) -> None:
        self.first = first
        self.count = count
        self._claim = claim

    def close(self) -> None:
        """Release the claim."""
        self._claim.close()


def claim_uid_block(uid_base: int, uid_count: int) -> UidBlock:
    """The first free block of the range [uid_base, uid_base + uid_count)."""
    for index in range(max(1, uid_count // UIDS_PER_ZYGOTE)):
        first = uid_base + index * UIDS_PER_ZYGOTE
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            # Abstract namespace (unix(7)): no file, gone when the socket closes.
            claim.bind(f"\0edge-sandbox-uids-{first}".encode())
        except OSError as exc:
            claim.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        return UidBlock(first, UIDS_PER_ZYGOTE, claim)
    raise SandboxError(
        f"every block of {UIDS_PER_ZYGOTE} uids in [{uid_base}, {uid_base + uid_count}) is in "
        "use: raise sandbox.uid_count"
    )


def environment_pid(pidfd: int) -> int | None:
    """The pid, in this process's PID namespace, of the process `pidfd` refers to (the "Pid:"
    line of /proc/self/fdinfo, proc(5)); the zygote's own numbering is another namespace's."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/self/fdinfo/{pidfd}", "rb") as info:
        for line in info:
            if line.startswith(b"Pid:"):
                pid = int(line.split()[1])
                return pid if pid > 0 else None
    return None
