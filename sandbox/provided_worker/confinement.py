"""How a custom-runtime environment is kept apart from the edge: a bubblewrap sandbox per agent.

Each environment (the agent and the bootstrap it starts) runs under its own `bwrap` (bwrap(1)),
as Node.js environments do: its own mount, PID, IPC, UTS and (unless the function has
`network = true`) network namespace, where the Runtime API listens on 127.0.0.1:9001 as on
Lambda; read-only system directories, the edge's Python (its installation and environment, as
Python functions see them: the agent runs on it, and a bootstrap may `exec` it), the agent and
the function's code; a private tmpfs /tmp of the function's ephemeral storage; no capabilities;
a scrubbed environment. The edge's own files that a bound directory would show are masked.
Without bwrap (or with `isolation = "none"`) the processes run as the edge's user with a private
TMPDIR and the rlimits only.

`confinement_level` decides once per interpreter, by really starting a sandbox.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
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
    """What the custom runtime reads of the edge's `[sandbox]` policy."""

    @property
    def isolation(self) -> str: ...
    @property
    def hidden_paths(self) -> tuple[Path, ...]: ...


class ConfinementUnavailable(SandboxError):
    """The isolation asked for cannot be given to custom runtimes on this machine."""


def python_roots(python: str) -> list[Path]:
    """The directories the agent's interpreter needs: its installation and, when it is the
    edge's own, the edge's (virtual) environment. Never `/`."""
    roots = {Path(python).resolve().parent.parent}
    if Path(python).resolve() == Path(sys.executable).resolve():
        roots |= {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    found = sorted(p.resolve() for p in roots if p.exists() and p.resolve() != Path("/"))
    kept: list[Path] = []
    for path in sorted(found, key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return kept


@functools.lru_cache(maxsize=4)
def _bwrap_works(bwrap: str, python: str) -> str:
    """ "" when `python` runs under a minimal bwrap sandbox, else why not."""
    args = bwrap_arguments(bwrap, python=python, code_dir=None, network=False, tmp_bytes=1 << 20)
    try:
        subprocess.run(
            [*args, python, "-I", "-S", "-c", "0"],
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


def confinement_level(isolation: str, python: str) -> tuple[Level, str | None]:
    """(the level in force, bwrap's path for `namespaces`) for the policy's `isolation`.

    `auto`: namespaces when bubblewrap works here, else none. `namespaces`: bubblewrap or
    `ConfinementUnavailable`. `none`: none. `uid-only` (the Python runtime's) is refused.
    Blocking on its first call (it starts a sandbox).
    """
    if isolation == "none":
        return "none", None
    if isolation == "uid-only":
        raise ConfinementUnavailable(
            "isolation 'uid-only' is not available for provided functions: use 'namespaces' "
            "(bubblewrap) or 'none'"
        )
    bwrap = shutil.which("bwrap")
    why = "bubblewrap (bwrap) is not installed" if bwrap is None else _bwrap_works(bwrap, python)
    if bwrap is not None and not why:
        return "namespaces", bwrap
    if isolation == "namespaces":
        raise ConfinementUnavailable(f"isolation 'namespaces' is unavailable: {why}")
    return "none", None


def bwrap_arguments(
    bwrap: str,
    *,
    python: str,
    code_dir: Path | None,
    network: bool,
    tmp_bytes: int,
    writable_dirs: Sequence[Path] = (),
    hidden_paths: Iterable[Path] = (),
    layers: LayerSet | None = None,
) -> list[str]:
    """bwrap's command line for one environment, up to the command it runs (`layers`: the
    function's layers, read-only at /opt)."""
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
        args.append("--unshare-net")  # bwrap brings its loopback up: 127.0.0.1:9001 is ours
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

    for root in python_roots(python):
        bind(root)
    bind(Path(__file__).resolve().parent)  # agent.py
    if code_dir is not None:
        bind(Path(code_dir).resolve())
    for writable in writable_dirs:
        bind(Path(writable).resolve(), writable=True)
    if layers is not None:
        args += layers.bwrap_closing()
    args += _mask((Path(p).resolve() for p in hidden_paths), visible)
    return args


def _mask(paths: Iterable[Path], visible: Sequence[Path]) -> list[str]:
    """Hide the edge's files that a bound directory would show (an empty read-only tmpfs over
    a directory, /dev/null over a file)."""
    args: list[str] = []
    masked: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(v) for v in visible):
            continue
        if any(path.is_relative_to(m) for m in masked):
            continue
        if path.is_dir():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
            masked.append(path)
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args
