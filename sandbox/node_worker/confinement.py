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

from collections.abc import Iterable, Sequence
from pathlib import Path

from sandbox.runtime.bwrap import (
    ConfinementPolicy,
    ConfinementUnavailable,
    Level,
    environment_arguments,
)
from sandbox.runtime.bwrap import confinement_level as _confinement_level
from sandbox.runtime.layers import LayerSet

__all__ = [
    "ConfinementPolicy",
    "ConfinementUnavailable",
    "Level",
    "bwrap_arguments",
    "confinement_level",
]


def _roots(node: str) -> list[Path]:
    """What an environment shows of the runtime: the installation `node` belongs to (`/usr`
    for a packaged node, else its prefix) and runtime.js's folder."""
    return [Path(node).resolve().parent.parent, Path(__file__).resolve().parent]


def confinement_level(isolation: str, node: str) -> tuple[Level, str | None]:
    """(the level in force, bwrap's path for `namespaces`): see
    `sandbox.runtime.bwrap.confinement_level`; the probe runs `node -e 0`."""
    return _confinement_level(
        isolation, runtime="nodejs", roots=_roots(node), probe=(node, "-e", "0")
    )


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
    return environment_arguments(
        bwrap,
        roots=_roots(node),
        code_dir=code_dir,
        network=network,
        tmp_bytes=tmp_bytes,
        writable_dirs=writable_dirs,
        hidden_paths=hidden_paths,
        layers=layers,
    )
