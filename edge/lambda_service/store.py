"""Published versions and aliases of the edge's functions, kept in the state directory.

Layout under `STATE_DIR/lambda/`:

- `state.json`: every function's versions and aliases, replaced atomically (a temporary file,
  fsync, rename) on every change; readers never see half a file.
- `functions/NAME/N/`: version N's snapshot: `code/` (the function's code directory, or its
  module or .js file) and `config.json` (its `[functions.NAME]` settings as published, paths
  relative to the snapshot).
- `.lock`: held (flock) while a change is made, so the CLI, the admin listener and other edges
  on the same state directory never lose each other's changes.

As Lambda (PublishVersion): a version is an immutable snapshot of `$LATEST`'s code and
configuration, numbered 1, 2, 3...; publishing what the latest version already holds makes no
new one. An alias names one published version (or `$LATEST`), optionally sending a fraction of
invocations to one more published version. The store is synchronous and thread-safe; readers
pick up another process's changes when the file's stat changes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from edge.config import FunctionConfig

LATEST = "$LATEST"
STATE_FILE = "state.json"
# The state file's path under the state directory, as the cluster names it.
STATE_DOCUMENT = f"lambda/{STATE_FILE}"

# Lambda's alias name: `(?!^[0-9]+$)([a-zA-Z0-9-_]+)`, 1 to 128 characters (BOTO model).
_ALIAS_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
# Nothing a snapshot needs: bytecode caches and version control.
_SKIPPED_NAMES = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".venv",
        ".tox",
    }
)
# Lambda's limit on a function's unzipped code: 262,144,000 bytes.
CODE_LIMIT_BYTES = 262_144_000


class NotFound(LookupError):
    """No such function version or alias (the API's ResourceNotFoundException)."""


class AliasConflict(Exception):
    """The alias exists already (the API's ResourceConflictException)."""


class InvalidAlias(ValueError):
    """An alias name, version or routing Lambda would refuse (InvalidParameterValueException)."""


class CodeTooLarge(ValueError):
    """The code to publish is over Lambda's unzipped limit (InvalidParameterValueException)."""


class RevisionMismatch(Exception):
    """The caller's RevisionId is not the alias's (the API's PreconditionFailedException)."""


class StateUnavailable(OSError):
    """The cluster's shared state cannot take a change now (`[cluster] redis` unreachable):
    the change was made nowhere (the API's ServiceException)."""


class SharedStore(Protocol):
    """Where a cluster keeps the state directory's documents (`edge.cluster.state`): `hold`
    takes the cluster's lock and brings the local files up to date; the held object's
    `publish(document, data)` stores a document cluster-wide before it is written locally."""

    def hold(self) -> contextlib.AbstractContextManager[Any]: ...

    def publish(self, document: str, data: bytes) -> None: ...


# The shared store of each state directory this process serves (set by `edge serve` and the
# CLI when `[cluster] redis` is on): every FunctionStore, overrides writer and deployer on that
# directory goes through it.
_SHARED: dict[Path, SharedStore] = {}


def share_state(state_dir: Path, shared: SharedStore | None) -> None:
    """Route changes to `state_dir` through `shared` (None: this node's folder alone)."""
    key = state_dir.resolve()
    if shared is None:
        _SHARED.pop(key, None)
    else:
        _SHARED[key] = shared


def shared_store(state_dir: Path) -> SharedStore | None:
    """The shared store `state_dir`'s changes go through, if any."""
    if not _SHARED:
        return None
    return _SHARED.get(state_dir.resolve())


@dataclass(frozen=True)
class Version:
    """A published version: its number, its code's hash (Lambda's base64 CodeSha256)."""

    function: str
    number: str
    code_sha256: str
    description: str
    created: str  # ISO time, UTC
    code_size: int = 0
    settings_sha256: str = ""


@dataclass(frozen=True)
class Alias:
    """A named pointer to a version, with an optional second version and its share."""

    function: str
    name: str
    version: str
    additional_weights: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    revision_id: str = ""


def is_version_number(qualifier: str) -> bool:
    """True for a published version's qualifier (`1`, `42`), False for `$LATEST` or an alias."""
    return qualifier.isascii() and qualifier.isdigit()


def validate_alias_name(name: str) -> None:
    """InvalidAlias unless `name` is a name Lambda accepts for an alias."""
    if not _ALIAS_NAME.fullmatch(name) or name.isdigit():
        raise InvalidAlias(
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "(?!^[0-9]+$)([a-zA-Z0-9-_]+) (1 to 128 characters, not all digits)"
        )


def replace_file(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (a temporary file beside it, fsync, rename):
    readers see the old file or the new one. The new file's mtime is always later than the
    old one's: readers tell files apart by (inode, mtime, size), an inode can be reused at once
    and the clock is coarse."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        previous = path.stat().st_mtime_ns
    except OSError:
        previous = 0
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        modified = max(time.time_ns(), previous + 1_000)
        os.utime(temporary, ns=(modified, modified))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _code_files(function: FunctionConfig) -> tuple[Path, bool]:
    """(what to snapshot, whether it is a directory): the code directory of a Python or
    Node.js function, the module of a WASM function, the .js file of a CloudFront Function."""
    if function.runtime == "wasm":
        assert function.module is not None
        return function.module, False
    if function.runtime.startswith("cloudfront-js"):
        assert function.code is not None
        return function.code, False
    return function.code_dir_and_handler[0], True


def _files_under(root: Path, excluded: Iterable[Path] = ()) -> list[Path]:
    """The regular files under `root` a snapshot holds, in path order."""
    ignore = _ignore_for(excluded)
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(set(dirs) - set(ignore(folder, dirs)))
        for name in set(files) - set(ignore(folder, files)):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return sorted(found)


def _tree_digest(root: Path, excluded: Iterable[Path] = ()) -> tuple[str, int]:
    """Base64 SHA-256 over every file under `root` (path and bytes, in path order), and the
    total size."""
    digest = hashlib.sha256()
    size = 0
    for path in _files_under(root, excluded):
        data = path.read_bytes()
        relative = path.relative_to(root).as_posix().encode()
        digest.update(len(relative).to_bytes(4, "big") + relative)
        digest.update(len(data).to_bytes(8, "big") + data)
        size += len(data)
    return base64.b64encode(digest.digest()).decode(), size


def code_digest(function: FunctionConfig, exclude: Iterable[Path] = ()) -> tuple[str, int]:
    """The CodeSha256 and size a version published now from `function` would have."""
    source, is_dir = _code_files(function)
    if is_dir:
        return _tree_digest(source, [*exclude])
    digest = hashlib.sha256()
    try:
        data = source.read_bytes()
    except OSError:
        data = b""
    relative = source.name.encode()
    digest.update(len(relative).to_bytes(4, "big") + relative)
    digest.update(len(data).to_bytes(8, "big") + data)
    return base64.b64encode(digest.digest()).decode(), len(data)


def _ignore_for(excluded: Iterable[Path]) -> Any:
    hidden = {p.resolve() for p in excluded}

    def ignore(folder: str, names: list[str]) -> list[str]:
        base = Path(folder).resolve()
        return [n for n in names if n in _SKIPPED_NAMES or (base / n) in hidden]

    return ignore


def _snapshot_settings(function: FunctionConfig, code_name: str) -> dict[str, Any]:
    """The function's settings as a version keeps them: code paths relative to the snapshot."""
    document: dict[str, Any] = function.model_dump(mode="json", exclude_unset=True)
    document.pop("aliases", None)  # they point at versions; they are not part of one
    if function.runtime == "wasm":
        document["module"] = f"code/{code_name}"
    elif function.runtime.startswith("cloudfront-js"):
        document["code"] = f"code/{code_name}"
    else:
        document["code"] = "code"
        document["handler"] = function.code_dir_and_handler[1]
    return document


def _settings_digest(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest()


class FunctionStore:
    """Versions and aliases of the functions, persisted under `state_dir` (see the module)."""

    def __init__(self, state_dir: Path, shared: SharedStore | None = None) -> None:
        self.state_dir = state_dir
        self.shared = shared if shared is not None else shared_store(state_dir)
        self.root = state_dir / "lambda"
        self.path = self.root / STATE_FILE
        self._lock = threading.RLock()
        self._state: dict[str, Any] = {"functions": {}}
        self._stamp: tuple[int, int, int] | None = None
        self._configs: dict[tuple[str, str], FunctionConfig] = {}

    # -- reading -----------------------------------------------------------------------------

    def stamp(self) -> tuple[int, int, int] | None:
        """The state file's (inode, mtime ns, size), None when there is none: one stat, for
        readers that want to know cheaply whether anything changed."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _current(self, *, force: bool = False) -> dict[str, Any]:
        with self._lock:
            stamp = self.stamp()
            if force or stamp != self._stamp:
                if stamp is None:
                    self._state = {"functions": {}}
                else:
                    try:
                        self._state = orjson.loads(self.path.read_bytes())
                    except FileNotFoundError:
                        self._state = {"functions": {}}
                self._stamp = stamp
            return self._state

    def _function(self, state: Mapping[str, Any], function: str) -> dict[str, Any]:
        found: dict[str, Any] = state["functions"].get(function) or {
            "versions": [],
            "aliases": {},
            "next_version": 1,
        }
        return found

    def function_names(self) -> list[str]:
        """The functions that have versions or aliases."""
        return sorted(self._current()["functions"])

    def versions(self, function: str) -> list[Version]:
        """The published versions of `function`, oldest first (none: an empty list)."""
        entry = self._function(self._current(), function)
        return [self._version(function, v) for v in entry["versions"]]

    def version(self, function: str, number: str) -> Version:
        """Published version `number` of `function`; NotFound when there is none."""
        for v in self._function(self._current(), function)["versions"]:
            if v["number"] == number:
                return self._version(function, v)
        raise NotFound(f"{function}:{number}")

    def version_config(self, function: str, number: str) -> FunctionConfig:
        """The settings version `number` of `function` runs with, its paths in the snapshot."""
        key = (function, number)
        cached = self._configs.get(key)
        if cached is not None:
            return cached
        self.version(function, number)  # NotFound unless published
        folder = self.root / "functions" / function / number
        document = orjson.loads((folder / "config.json").read_bytes())
        for name in ("code", "module"):
            if document.get(name):
                document[name] = str(folder / document[name])
        config = FunctionConfig.model_validate(document)
        self._configs[key] = config
        return config

    def snapshot_dir(self, function: str, number: str) -> Path:
        return self.root / "functions" / function / number

    def alias(self, function: str, name: str) -> Alias:
        """Alias `name` of `function`; NotFound when there is none."""
        found = self._function(self._current(), function)["aliases"].get(name)
        if found is None:
            raise NotFound(f"{function}:{name}")
        return self._alias(function, name, found)

    def aliases(self, function: str) -> list[Alias]:
        """The aliases of `function`, by name."""
        entry = self._function(self._current(), function)
        return [self._alias(function, n, a) for n, a in sorted(entry["aliases"].items())]

    @staticmethod
    def _version(function: str, v: Mapping[str, Any]) -> Version:
        return Version(
            function,
            v["number"],
            v["code_sha256"],
            v.get("description", ""),
            v["created"],
            v.get("code_size", 0),
            v.get("settings_sha256", ""),
        )

    @staticmethod
    def _alias(function: str, name: str, a: Mapping[str, Any]) -> Alias:
        return Alias(
            function,
            name,
            a["version"],
            dict(a.get("weights") or {}),
            a.get("description", ""),
            a.get("revision_id", ""),
        )

    # -- changing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self) -> Iterator[dict[str, Any]]:
        """The current state to change in place, written back atomically; other processes
        wait on the lock file meanwhile. With a shared store (a cluster), the cluster's lock
        is held too and the new state is stored cluster-wide before it is written here
        (StateUnavailable: it was written nowhere)."""
        with self._lock:
            holding = self.shared.hold() if self.shared is not None else contextlib.nullcontext()
            with holding as held:
                self.root.mkdir(parents=True, exist_ok=True)
                with open(self.root / ".lock", "a+b") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    try:
                        state = orjson.loads(orjson.dumps(self._current(force=True)))
                        yield state
                        self._write(state, held)
                    finally:
                        fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, state: dict[str, Any], held: Any = None) -> None:
        data = orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        if held is not None:
            held.publish(STATE_DOCUMENT, data)
        replace_file(self.path, data)
        self._state = state
        self._stamp = self.stamp()

    def publish(
        self,
        function: str,
        config: FunctionConfig,
        *,
        description: str = "",
        exclude: Iterable[Path] = (),
    ) -> Version:
        """Snapshot `config` (function `function`'s `$LATEST`, paths resolved) as a new version,
        or return the latest version when it holds the same code and settings (as Lambda).
        `exclude`: files and folders not to copy (the edge's own state, its configuration)."""
        source, is_dir = _code_files(config)
        staging_root = self.root / "staging"
        with self._change() as state:
            staging_root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=staging_root))
            try:
                code = staging / "code"
                if is_dir:
                    excluded = [*exclude, self.state_dir]
                    size = sum(p.stat().st_size for p in _files_under(source, excluded))
                    if size > CODE_LIMIT_BYTES:
                        raise CodeTooLarge(
                            f"Unzipped size must be smaller than {CODE_LIMIT_BYTES} bytes: "
                            f"{source} holds {size}"
                        )
                    shutil.copytree(source, code, ignore=_ignore_for(excluded), symlinks=True)
                else:
                    code.mkdir()
                    shutil.copy2(source, code / source.name)
                code_sha, size = _tree_digest(code)
                settings = _snapshot_settings(config, source.name)
                settings_sha = _settings_digest(settings)
                entry = state["functions"].setdefault(
                    function, {"versions": [], "aliases": {}, "next_version": 1}
                )
                versions = entry["versions"]
                if versions and (
                    versions[-1]["code_sha256"] == code_sha
                    and versions[-1].get("settings_sha256") == settings_sha
                ):
                    return self._version(function, versions[-1])
                number = str(entry.get("next_version", len(versions) + 1))
                (staging / "config.json").write_bytes(
                    orjson.dumps(settings, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
                )
                target = self.snapshot_dir(function, number)
                if target.exists():  # left by a publish that died before writing the state
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging, target)
                record = {
                    "number": number,
                    "code_sha256": code_sha,
                    "code_size": size,
                    "settings_sha256": settings_sha,
                    "description": description,
                    "created": _now(),
                }
                versions.append(record)
                entry["next_version"] = int(number) + 1
                return self._version(function, record)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)

    def _check_target(
        self, entry: Mapping[str, Any], function: str, version: str, weights: Mapping[str, float]
    ) -> None:
        published = {v["number"] for v in entry["versions"]}
        if version != LATEST and not is_version_number(version):
            raise InvalidAlias(
                f"An alias can only point to a version ($LATEST or a number), not to "
                f"{version!r} (an alias cannot point to an alias)"
            )
        if is_version_number(version) and version not in published:
            raise NotFound(f"{function}:{version}")
        if len(weights) > 1:
            raise InvalidAlias(
                "RoutingConfig.AdditionalVersionWeights may name one additional version, "
                f"found {len(weights)}"
            )
        for extra, weight in weights.items():
            if not is_version_number(extra) or not is_version_number(version):
                raise InvalidAlias(
                    "Weighted routing needs published versions on both sides (not $LATEST, "
                    f"not an alias): found {version!r} and {extra!r}"
                )
            if extra not in published:
                raise NotFound(f"{function}:{extra}")
            if extra == version:
                raise InvalidAlias(
                    f"The additional version {extra!r} must differ from the alias's version"
                )
            if not (isinstance(weight, int | float) and math.isfinite(weight)) or not (
                0.0 <= weight <= 1.0
            ):
                raise InvalidAlias(
                    f"The weight of version {extra} must be between 0.0 and 1.0, found {weight!r}"
                )

    def create_alias(
        self,
        function: str,
        name: str,
        version: str,
        *,
        additional_weights: Mapping[str, float] | None = None,
        description: str = "",
    ) -> Alias:
        """A new alias; AliasConflict when it exists, NotFound for an unpublished version."""
        validate_alias_name(name)
        weights = dict(additional_weights or {})
        with self._change() as state:
            entry = state["functions"].setdefault(
                function, {"versions": [], "aliases": {}, "next_version": 1}
            )
            if name in entry["aliases"]:
                raise AliasConflict(f"Alias already exists: {function}:{name}")
            self._check_target(entry, function, version, weights)
            record = {
                "version": version,
                "weights": weights,
                "description": description,
                "revision_id": str(uuid.uuid4()),
            }
            entry["aliases"][name] = record
            return self._alias(function, name, record)

    def update_alias(
        self,
        function: str,
        name: str,
        *,
        version: str | None = None,
        additional_weights: Mapping[str, float] | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> Alias:
        """Change an alias (None: keep that part; `additional_weights={}` clears the routing).
        NotFound when the alias does not exist; RevisionMismatch when `revision_id` is given
        and is not the alias's."""
        with self._change() as state:
            entry = state["functions"].get(function)
            record = entry["aliases"].get(name) if entry else None
            if entry is None or record is None:
                raise NotFound(f"{function}:{name}")
            if revision_id is not None and revision_id != record.get("revision_id"):
                raise RevisionMismatch(
                    "The Revision Id provided does not match the latest Revision Id. "
                    "Call the GetAlias API to retrieve the latest Revision Id"
                )
            new_version = version if version is not None else record["version"]
            weights = (
                dict(additional_weights)
                if additional_weights is not None
                else dict(record.get("weights") or {})
            )
            self._check_target(entry, function, new_version, weights)
            record.update(version=new_version, weights=weights, revision_id=str(uuid.uuid4()))
            if description is not None:
                record["description"] = description
            return self._alias(function, name, record)

    def delete_alias(self, function: str, name: str) -> None:
        """Remove an alias; NotFound when there is none."""
        with self._change() as state:
            entry = state["functions"].get(function)
            if entry is None or name not in entry["aliases"]:
                raise NotFound(f"{function}:{name}")
            del entry["aliases"][name]

    def declare_alias(
        self,
        function: str,
        name: str,
        version: str,
        *,
        additional_weights: Mapping[str, float] | None = None,
        description: str = "",
    ) -> Alias:
        """Apply an alias as edge.toml declares it. The declaration is applied when the alias
        does not exist or when the declaration differs from the one last applied (the file
        was edited); otherwise the alias stays as the API last left it, so UpdateAlias (and a
        gradual deployment) are not undone by a restart."""
        validate_alias_name(name)
        weights = dict(additional_weights or {})
        declared = {"version": version, "weights": weights, "description": description}
        current = self._function(self._current(), function)["aliases"].get(name)
        if current is not None and current.get("declared") == declared:
            return self._alias(function, name, current)
        with self._change() as state:
            entry = state["functions"].setdefault(
                function, {"versions": [], "aliases": {}, "next_version": 1}
            )
            self._check_target(entry, function, version, weights)
            record = {**declared, "revision_id": str(uuid.uuid4()), "declared": declared}
            entry["aliases"][name] = record
            return self._alias(function, name, record)
