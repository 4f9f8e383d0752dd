"""One process environment under bubblewrap (bwrap(1)), as the Node.js and custom runtimes
run theirs: its own mount, PID, IPC, UTS and (unless the function has `network = true`) network
namespace; read-only system directories, the runtime's own directories and the function's code
(its layers at /opt); a private tmpfs /tmp of the function's ephemeral storage; no
capabilities. The edge's own files that a bound directory would show are masked.

`confinement_level` decides once per interpreter, by really starting a sandbox (the runtime
gives the command that proves it works).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, Protocol

from sandbox.runtime.errors import SandboxError
from sandbox.runtime.layers import LayerSet

Level = Literal["namespaces", "none"]

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc entries programs and libc read; the resolver's only when the function has a network.
_ETC_ALWAYS = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/protocols",
    "/etc/services",
)
_ETC_NETWORK = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf")
_PROBE_TIMEOUT_SECONDS = 20.0


class ConfinementPolicy(Protocol):
    """What a process runtime reads of the edge's `[sandbox]` policy."""

    @property
    def isolation(self) -> str: ...
    @property
    def hidden_paths(self) -> tuple[Path, ...]: ...


class ConfinementUnavailable(SandboxError):
    """The isolation asked for cannot be given to a runtime's functions on this machine."""


def environment_arguments(
    bwrap: str,
    *,
    roots: Sequence[Path],
    code_dir: Path | None,
    network: bool,
    tmp_bytes: int,
    writable_dirs: Sequence[Path] = (),
    hidden_paths: Iterable[Path] = (),
    layers: LayerSet | None = None,
) -> list[str]:
    """bwrap's command line for one environment, up to the command it runs: `roots` are the
    runtime's own directories (its interpreter, its scripts), bound read-only; `layers` the
    function's layers, read-only at /opt."""
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
        "--cap-drop",
        "ALL",
    ]
    if not network:
        args.append("--unshare-net")  # bwrap brings its loopback up
    if os.geteuid() != 0:
        args.append("--unshare-user")
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    visible: list[Path] = []
    for name in _SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
            visible.append(path)
    for name in (*_ETC_ALWAYS, *(_ETC_NETWORK if network else ())):
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    if layers is not None:
        args += layers.bwrap_arguments()

    def bind(path: Path, *, writable: bool = False) -> None:
        if not writable and any(path.is_relative_to(v) for v in visible):
            return
        args.extend(["--bind" if writable else "--ro-bind", str(path), str(path)])
        visible.append(path)

    for root in roots:
        bind(root)
    if code_dir is not None:
        bind(Path(code_dir).resolve())
    for writable in writable_dirs:
        bind(Path(writable).resolve(), writable=True)
    if layers is not None:
        args += layers.bwrap_closing()
    args += mask_arguments((Path(p).resolve() for p in hidden_paths), visible)
    return args


def mask_arguments(paths: Iterable[Path], visible: Sequence[Path]) -> list[str]:
    """Hide the edge's files that a bound directory would show (an empty read-only tmpfs over
    a directory, /dev/null over a file)."""
    args: list[str] = []
    masked: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(v) for v in visible):
            continue
        if any(path.is_relative_to(m) for m in masked):
            continue  # inside a directory already hidden
        if path.is_dir():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
            masked.append(path)
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


@functools.lru_cache(maxsize=8)
def _bwrap_works(bwrap: str, roots: tuple[Path, ...], command: tuple[str, ...]) -> str:
    """ "" when `command` runs under a minimal sandbox showing `roots`, else why not."""
    args = environment_arguments(
        bwrap, roots=roots, code_dir=None, network=False, tmp_bytes=1 << 20
    )
    try:
        subprocess.run(
            [*args, *command],
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=_PROBE_TIMEOUT_SECONDS,
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        return exc.stderr.decode("utf-8", "replace").strip() or f"exit status {exc.returncode}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return ""


def confinement_level(
    isolation: str, *, runtime: str, roots: Sequence[Path], probe: Sequence[str]
) -> tuple[Level, str | None]:
    """(the level in force, bwrap's path for `namespaces`) for the policy's `isolation`, for
    `runtime`'s functions (its name in messages), whose `probe` command must run in a sandbox
    showing `roots`.

    `auto`: namespaces when bubblewrap works here, else none. `namespaces`: bubblewrap or
    `ConfinementUnavailable`. `none`: none. `uid-only` is the Python runtime's (a uid per forked
    environment) and is refused: a process runtime is either under bubblewrap or not confined.
    Blocking on its first call (it starts a sandbox).
    """
    if isolation == "none":
        return "none", None
    if isolation == "uid-only":
        raise ConfinementUnavailable(
            f"isolation 'uid-only' is not available for {runtime} functions: use 'namespaces' "
            "(bubblewrap) or 'none'"
        )
    bwrap = shutil.which("bwrap")
    why = (
        "bubblewrap (bwrap) is not installed"
        if bwrap is None
        else _bwrap_works(bwrap, tuple(roots), tuple(probe))
    )
    if bwrap is not None and not why:
        return "namespaces", bwrap
    if isolation == "namespaces":
        raise ConfinementUnavailable(f"isolation 'namespaces' is unavailable: {why}")
    return "none", None
