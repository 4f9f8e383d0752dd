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

import sys
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
    "python_roots",
]


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


def _roots(python: str) -> list[Path]:
    """What an environment shows of the runtime: the agent's Python and agent.py's folder."""
    return [*python_roots(python), Path(__file__).resolve().parent]


def confinement_level(isolation: str, python: str) -> tuple[Level, str | None]:
    """(the level in force, bwrap's path for `namespaces`): see
    `sandbox.runtime.bwrap.confinement_level`; the probe runs the agent's Python."""
    return _confinement_level(
        isolation,
        runtime="provided",
        roots=_roots(python),
        probe=(python, "-I", "-S", "-c", "0"),
    )


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
    """bwrap's command line for one environment, up to the command it runs (in its own
    network namespace the Runtime API listens on 127.0.0.1:9001; `layers`: the function's
    layers, read-only at /opt)."""
    return environment_arguments(
        bwrap,
        roots=_roots(python),
        code_dir=code_dir,
        network=network,
        tmp_bytes=tmp_bytes,
        writable_dirs=writable_dirs,
        hidden_paths=hidden_paths,
        layers=layers,
    )
