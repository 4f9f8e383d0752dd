"""Changing a running edge: a new edge.toml, new function code, the management API's changes.

One `Reloader` per process (made before any fork; each worker then runs its own) holds the
configuration in force: edge.toml (with the command line's flags) with the management API's
overrides laid over it (`edge.lambda_service.overrides`). A reload reads both again, checks
the result as `edge serve` does before serving (the schema, the cross-key checks, every
function's code) and, when it passes, hands it to the targets attached in this process: the
viewer app (`edge.app.LiveViewer`) and the Invoke API (`InvokeService.apply`). A function
whose sandbox description changed, or whose code changed, gets a new runtime; the others keep
theirs. When it fails, the old configuration keeps serving and the log says why.

What starts a reload:
- SIGHUP (the main process passes it on to the workers), always; a function whose code files
  changed since (their modification times and sizes) is replaced too;
- the state file changing (the management API wrote it, perhaps in another process), always:
  polled every quarter second;
- with `edge serve --reload`: edge.toml, or a file of a function's code, changing
  (`watchfiles`).

Listener addresses, workers, the engine and the other `[server]`, `[sandbox]`, `[cache]`,
`[admin]`, `[invoke]` and `[tracing]` keys are read once at startup: a reload that changes
them keeps the old values and says that a restart is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge.config import ConfigError, EdgeConfig
from edge.lambda_service.overrides import (
    FunctionState,
    apply_overrides,
    read_state,
    state_path,
    state_signature,
)

logger = logging.getLogger("edge.reload")

# The sections a running edge keeps as they were at startup.
RESTART_SECTIONS = ("server", "sandbox", "cache", "admin", "invoke", "tracing")
STATE_POLL_SECONDS = 0.25


class ReloadTarget(Protocol):
    """Something in this process that serves the configuration (a viewer app, the Invoke
    API): `apply` takes a new one; `replace` names functions whose code changed."""

    async def apply(self, config: EdgeConfig, *, replace: Collection[str] = ()) -> Any: ...


class Limits(Protocol):
    def set_reserved(self, reserved: dict[str, int]) -> None: ...


class ReloadCounter(Protocol):
    def labels(self, outcome: str) -> Any: ...


@dataclass(slots=True)
class ReloadOutcome:
    """What one reload did: applied or refused (`problems`), the functions replaced."""

    applied: bool
    replaced: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Reloader:
    """The configuration in force in this process, and the means to change it.

    `load_base` reads edge.toml again (with the command line's flags; raises ConfigError);
    None: there is no file (`--origin`). `check` lists what keeps a configuration's functions
    from running (`edge.functions.check_functions`). `watch`: follow edge.toml and the
    functions' code (`--reload`). `limits`: the process's concurrency limiter, given the new
    reservations. `counter`: a metric with an `outcome` label.
    """

    def __init__(
        self,
        base: EdgeConfig,
        *,
        load_base: Callable[[], EdgeConfig] | None,
        check: Callable[[EdgeConfig], list[str]],
        watch: bool = False,
        limits: Limits | None = None,
        counter: ReloadCounter | None = None,
    ) -> None:
        self.base = base
        self.state_file = state_path(base)
        self.state = read_state(self.state_file)
        self.config, notes = apply_overrides(base, self.state)
        for note in notes:
            logger.warning("%s", note)
        self._load_base = load_base
        self._check = check
        self.watch = watch
        self.limits = limits
        self.counter = counter
        self._targets: list[ReloadTarget] = []
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock: asyncio.Lock | None = None
        self._state_signature = state_signature(self.state_file)
        self._rewatch: asyncio.Event | None = None
        self._prints = code_fingerprints(self.config)

    # -- in a process's event loop ----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def attached(self, target: ReloadTarget) -> AsyncIterator[None]:
        """While entered, `target` takes every reload of this process (the first one attached
        starts the watching, the last one to leave stops it)."""
        if self._runner is None:
            self._lock = asyncio.Lock()
            self._runner = asyncio.get_running_loop().create_task(self._run())
        assert self._lock is not None
        async with self._lock:
            self._targets.append(target)
            # A reload may have happened while the target was starting (built from the
            # configuration of startup): it catches up.
            if getattr(target, "config", self.config) is not self.config:
                await target.apply(self.config)
            await _provision(target, self.state)
        try:
            yield
        finally:
            self._targets.remove(target)
            if not self._targets and self._runner is not None:
                runner, self._runner = self._runner, None
                runner.cancel()
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(runner, *self._tasks, return_exceptions=True)

    def request(self, reason: str) -> None:
        """Reload soon (a signal handler's way in; on the loop's thread)."""
        if self._runner is None:
            # Not serving yet, or nothing in this process serves (the main process of several
            # workers without an admin listener): the workers take their own signal.
            return
        task = asyncio.get_running_loop().create_task(self.reload(reason=reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(
        self,
        *,
        reason: str,
        replace: Collection[str] = (),
        quiet_if_unchanged: bool = False,
        read_config: bool = True,
    ) -> ReloadOutcome:
        """Read edge.toml (unless not `read_config`) and the state file again, check, and
        apply (or refuse)."""
        assert self._lock is not None, "attach a target first"
        async with self._lock:
            started = time.monotonic()
            signature = state_signature(self.state_file)
            try:
                load = self._load_base if read_config else None
                base = load() if load is not None else self.base
                state = read_state(self.state_file)
            except ConfigError as error:
                return self._refused(reason, [f"{error.source}: {p}" for p in error.problems])
            except ValueError as error:
                return self._refused(reason, [str(error)])
            self._state_signature = signature
            outcome = await self._apply(base, state, reason=reason, replace=replace)
            if outcome.applied and (outcome.replaced or not quiet_if_unchanged):
                count = len(outcome.replaced)
                named = f": {', '.join(sorted(outcome.replaced))}" if count else ""
                logger.info(
                    "config reloaded (%d function%s replaced%s; %s, %.0f ms)",
                    count,
                    "" if count == 1 else "s",
                    named,
                    reason,
                    (time.monotonic() - started) * 1000,
                )
            return outcome

    async def apply_state(self, state: FunctionState, *, reason: str) -> ReloadOutcome:
        """Apply overrides the management API has just written to the state file."""
        assert self._lock is not None, "attach a target first"
        async with self._lock:
            self._state_signature = state_signature(self.state_file)
            outcome = await self._apply(self.base, state, reason=reason, replace=())
            if outcome.applied:
                logger.info(
                    "config reloaded (%d function%s replaced; %s)",
                    len(outcome.replaced),
                    "" if len(outcome.replaced) == 1 else "s",
                    reason,
                )
            return outcome

    def busy(self) -> bool:
        """A reload is running in this process."""
        return self._lock is not None and self._lock.locked()

    def candidate(self, state: FunctionState) -> tuple[EdgeConfig, list[str]]:
        """The configuration `state` would make, and what keeps it from running."""
        config, _ = apply_overrides(self.base, state)
        return config, self._check(config)

    async def _apply(
        self, base: EdgeConfig, state: FunctionState, *, reason: str, replace: Collection[str]
    ) -> ReloadOutcome:
        config, notes = apply_overrides(base, state)
        problems = await asyncio.to_thread(self._check, config)
        if problems:
            return self._refused(reason, [f"{config.source}: {p}" for p in problems])
        for note in notes:
            logger.warning("%s", note)
        config = self._keep_restart_sections(config)
        prints = await asyncio.to_thread(code_fingerprints, config)
        replace = {*replace, *(n for n, p in prints.items() if self._prints.get(n, p) != p)}
        replaced: set[str] = set()
        for target in list(self._targets):
            done = await target.apply(config, replace=replace)
            if isinstance(done, list):
                replaced.update(done)
            await _provision(target, state)
        if self.limits is not None:
            from edge.invoke.concurrency import ConcurrencyLimiter

            self.limits.set_reserved(ConcurrencyLimiter.reservations(config))
        moved = self.watch and watched_paths(self.config) != watched_paths(config)
        self.base, self.state, self.config = base, state, config
        self._prints = prints
        if moved and self._rewatch is not None:
            self._rewatch.set()  # follow the new set of files
        if self.counter is not None:
            self.counter.labels("applied").inc()
        return ReloadOutcome(True, sorted(replaced))

    def _keep_restart_sections(self, config: EdgeConfig) -> EdgeConfig:
        """`config` with the sections read only at startup as they are now; a change to them
        is logged as needing a restart."""
        kept: dict[str, Any] = {}
        for section in RESTART_SECTIONS:
            old, new = getattr(self.config, section), getattr(config, section)
            if old == new:
                continue
            for key in sorted(type(old).model_fields):
                before, after = getattr(old, key), getattr(new, key)
                if before != after:
                    logger.warning(
                        "%s: %s.%s changed from %r to %r: it takes effect after a restart",
                        config.source,
                        section,
                        key,
                        before,
                        after,
                    )
            kept[section] = old
        return config.model_copy(update=kept) if kept else config

    def _refused(self, reason: str, problems: list[str]) -> ReloadOutcome:
        logger.error(
            "config refused (%s), the previous configuration keeps serving: %s",
            reason,
            "; ".join(problems),
        )
        if self.counter is not None:
            self.counter.labels("refused").inc()
        return ReloadOutcome(False, problems=problems)

    # -- watching -----------------------------------------------------------------------------

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._poll_state())
            if self.watch:
                tasks.create_task(self._watch_files())

    async def _poll_state(self) -> None:
        while True:
            await asyncio.sleep(STATE_POLL_SECONDS)
            if state_signature(self.state_file) != self._state_signature:
                # The management API's change, over the edge.toml in force (one being
                # edited waits for its own reload).
                await self.reload(
                    reason="state changed", quiet_if_unchanged=True, read_config=False
                )

    async def _watch_files(self) -> None:
        from watchfiles import awatch

        # It logs every batch of changes at INFO; the reload's own line says what mattered.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        while True:
            files, folders = watched_paths(self.config)
            self._rewatch = asyncio.Event()
            # Files are followed through their folder (an editor may replace a file by
            # renaming another over it), without descending; code folders, recursively.
            parents = sorted({str(p.parent) for p in files if p.parent.is_dir()})
            roots = sorted({str(p) for p in folders if p.is_dir()})
            async with asyncio.TaskGroup() as tasks:
                if parents:
                    tasks.create_task(self._watch(awatch, parents, recursive=False))
                if roots:
                    tasks.create_task(self._watch(awatch, roots, recursive=True))
                await self._rewatch.wait()

    async def _watch(self, awatch: Any, paths: list[str], *, recursive: bool) -> None:
        changed_sets = awatch(
            *paths, recursive=recursive, step=30, debounce=400, stop_event=self._rewatch
        )
        async for changes in changed_sets:
            config_changed, functions = self._classify(Path(path) for _, path in changes)
            if config_changed:
                await self.reload(reason=f"{Path(self.config.source).name} changed")
            elif functions:
                await self.reload(
                    reason=f"code of {', '.join(sorted(functions))} changed", replace=functions
                )

    def _classify(self, paths: Iterable[Path]) -> tuple[bool, set[str]]:
        """(edge.toml changed, the functions whose code changed)."""
        config = self.config
        source = (
            Path(config.source).resolve() if config.source not in ("<memory>", "--origin") else None
        )
        state_dir = config.server.state_dir
        changed = False
        functions: set[str] = set()
        for path in paths:
            if source is not None and path == source:
                changed = True
                continue
            if path.is_relative_to(state_dir):
                continue
            for name, roots in function_paths(config).items():
                if any(path == root or path.is_relative_to(root) for root in roots):
                    functions.add(name)
        return changed, functions


def code_fingerprints(config: EdgeConfig) -> dict[str, frozenset[tuple[str, int, int]]]:
    """Each function's code files with their modification time and size: a reload replaces a
    function whose files changed (SIGHUP after an edit, without `--reload`). Blocking."""
    prints: dict[str, frozenset[tuple[str, int, int]]] = {}
    for name, roots in function_paths(config).items():
        found: set[tuple[str, int, int]] = set()
        for root in roots:
            if root.is_file():
                found.add(_stat_entry(root))
                continue
            for folder, subfolders, files in os.walk(root):
                subfolders[:] = [d for d in subfolders if d not in _SKIPPED_FOLDERS]
                found.update(_stat_entry(Path(folder, file)) for file in files)
        prints[name] = frozenset(found)
    return prints


# What `--reload`'s watcher ignores too (watchfiles' DefaultFilter): caches, version control,
# virtual environments and installed packages.
_SKIPPED_FOLDERS = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".tox",
        ".venv",
        ".idea",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".hypothesis",
    }
)


def _stat_entry(path: Path) -> tuple[str, int, int]:
    try:
        info = path.stat()
    except OSError:
        return (str(path), 0, -1)
    return (str(path), info.st_mtime_ns, info.st_size)


def function_paths(config: EdgeConfig) -> dict[str, list[Path]]:
    """The files and folders each function's code is in (uploaded code excepted: it never
    changes in place)."""
    state_dir = config.server.state_dir
    found: dict[str, list[Path]] = {}
    for name, function in config.functions.items():
        if function.runtime == "wasm" and function.module is not None:
            paths = [function.module]
        elif function.runtime.startswith("cloudfront-js") and function.code is not None:
            paths = [function.code]
        else:
            paths = [function.code_dir_and_handler[0]]
        found[name] = [p for p in paths if not p.is_relative_to(state_dir)]
    return found


def watched_paths(config: EdgeConfig) -> tuple[frozenset[Path], frozenset[Path]]:
    """(files, folders) `--reload` follows: edge.toml, WASM modules and CloudFront Functions'
    files; Python and Node.js functions' code folders."""
    files: set[Path] = set()
    folders: set[Path] = set()
    if config.source not in ("<memory>", "--origin"):
        files.add(Path(config.source).resolve())
    for paths in function_paths(config).values():
        for path in paths:
            (folders if path.is_dir() else files).add(path.resolve())
    return frozenset(files), frozenset(folders)


async def _provision(target: Any, state: FunctionState) -> None:
    """Hand a target's functions the provisioned concurrency `state` asks for (by qualifier)."""
    registry = getattr(target, "registry", None)
    if registry is None or not hasattr(registry, "set_provisioned"):
        return
    wanted = {name: dict(o.provisioned) for name, o in state.functions.items() if o.provisioned}
    changed = await registry.set_provisioned(wanted)
    if changed:
        logger.info("provisioned concurrency applied to %s", ", ".join(changed))
