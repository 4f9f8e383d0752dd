"""How a Node.js environment is kept apart from the edge: a bubblewrap sandbox per process.

`node` cannot fork a preloaded copy of itself, so each environment is a process of its own, and
each runs under its own `bwrap` (bwrap(1)): its own mount, PID, IPC, UTS and (unless the
function has `network = true`) network namespace; read-only system directories, the `node`
installation, the runtime script and the function's code (its layers at /opt); a private
tmpfs /tmp of the function's ephemeral storage; no capabilities; a scrubbed environment. The
edge's own files that the code directory would show are masked. Without bwrap (or with
`isolation = "none"`) the process runs as the edge's user with a private TMPDIR and the rlimits
only.

`confinement_level` decides once per process, by really starting a sandbox.
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
# /etc entries node and libc read; the resolver's only when the function has a network.
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
    """What the node runtime reads of the edge's `[sandbox]` policy."""

    @property
    def isolation(self) -> str: ...
    @property
    def hidden_paths(self) -> tuple[Path, ...]: ...


class ConfinementUnavailable(SandboxError):
    """The isolation asked for cannot be given to Node.js functions on this machine."""


@functools.lru_cache(maxsize=4)
def _bwrap_works(bwrap: str, node: str) -> str:
    """ "" when `node` runs under a minimal bwrap sandbox, else why not."""
    args = bwrap_arguments(bwrap, node=node, code_dir=None, network=False, tmp_bytes=1 << 20)
    try:
        subprocess.run(
            [*args, node, "-e", "0"],
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


def confinement_level(isolation: str, node: str) -> tuple[Level, str | None]:
    """(the level in force, bwrap's path for `namespaces`) for the policy's `isolation`.

    `auto`: namespaces when bubblewrap works here, else none. `namespaces`: bubblewrap or
    `ConfinementUnavailable`. `none`: none. `uid-only` is the Python runtime's (a uid per forked
    environment) and is refused: a Node.js function is either under bubblewrap or not confined.
    Blocking on its first call (it starts a sandbox).
    """
    if isolation == "none":
        return "none", None
    if isolation == "uid-only":
        raise ConfinementUnavailable(
            "isolation 'uid-only' is not available for nodejs functions: use 'namespaces' "
            "(bubblewrap) or 'none'"
        )
    bwrap = shutil.which("bwrap")
    why = "bubblewrap (bwrap) is not installed" if bwrap is None else _bwrap_works(bwrap, node)
    if bwrap is not None and not why:
        return "namespaces", bwrap
    if isolation == "namespaces":
        raise ConfinementUnavailable(f"isolation 'namespaces' is unavailable: {why}")
    return "none", None


def _node_root(node: str) -> Path:
    """The installation `node` belongs to (`/usr` for a packaged node, else its prefix)."""
    return Path(node).resolve().parent.parent


def bwrap_arguments(
    bwrap: str,
    *,
    node: str,
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
        args.append("--unshare-net")
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

    bind(_node_root(node))
    bind(Path(__file__).resolve().parent)  # runtime.js
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
