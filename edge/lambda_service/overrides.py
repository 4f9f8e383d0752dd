"""What the management API changed, kept in `[server] state_dir`, and laid over edge.toml.

One JSON file (`functions.json`) holds, per function: the code uploaded by UpdateFunctionCode
(unpacked beside it, under `code/NAME/SHA/`, never over the user's folder), the settings of
UpdateFunctionConfiguration, reserved concurrency and provisioned concurrency by qualifier.
`apply_overrides` makes the configuration the edge runs from edge.toml and that file.

Uploaded code replaces the configuration's code until the configuration's own code path
changes (its `code` folder or `handler`'s folder): an edit of edge.toml that points the
function elsewhere wins, and the upload is then ignored (and said so in the log).

The file is written whole to a temporary file and renamed over the old one: a reader sees
either version. Every process of the edge polls its signature (`state_signature`).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import os
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from edge.config import EdgeConfig, FunctionConfig
from edge.lambda_service.store import replace_file

STATE_FILE = "functions.json"
# Lambda's limit on a direct upload: 50 MB zipped; unzipped 250 MB.
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class UploadedCode:
    """Code unpacked from a zip: its folder, the zip's SHA-256 (base64) and size, and the
    configuration's code path it replaces."""

    directory: str
    sha256: str
    size: int
    replaces: str


@dataclass(frozen=True, slots=True)
class FunctionOverride:
    """What the API changed of one function (None / empty: the configuration's own)."""

    code: UploadedCode | None = None
    # UpdateFunctionConfiguration's members as sent (Timeout, MemorySize, Environment,
    # Description, Handler).
    configuration: Mapping[str, Any] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    # Provisioned concurrency by qualifier (a version or an alias).
    provisioned: Mapping[str, int] = field(default_factory=dict)
    last_modified: str | None = None
    revision: int = 0

    def is_empty(self) -> bool:
        return (
            self.code is None
            and not self.configuration
            and self.reserved_concurrency is None
            and not self.provisioned
        )


@dataclass(frozen=True, slots=True)
class FunctionState:
    """Every function's override, by name."""

    functions: Mapping[str, FunctionOverride] = field(default_factory=dict)

    def get(self, name: str) -> FunctionOverride:
        return self.functions.get(name) or FunctionOverride()

    def with_function(self, name: str, override: FunctionOverride) -> FunctionState:
        functions = dict(self.functions)
        if override.is_empty():
            functions.pop(name, None)
        else:
            functions[name] = replace(
                override, last_modified=now_text(), revision=override.revision + 1
            )
        return FunctionState(functions)


def now_text() -> str:
    """Lambda's LastModified format: 2019-10-26T18:50:52.000+0000."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def state_path(config: EdgeConfig) -> Path:
    return config.server.state_dir / STATE_FILE


def state_signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when the state file is replaced (None: there is none)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def read_state(path: Path) -> FunctionState:
    """The state in `path` (empty when there is none). Raises ValueError when unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return FunctionState()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the file: {exc}") from None
    try:
        document = orjson.loads(raw)
        functions: dict[str, FunctionOverride] = {}
        for name, item in document.get("functions", {}).items():
            code = item.get("code")
            if code:
                # Kept relative to the state directory (which a cluster's nodes each have).
                code = {**code, "directory": str(path.parent / code["directory"])}
            functions[name] = FunctionOverride(
                code=UploadedCode(**code) if code else None,
                configuration=dict(item.get("configuration") or {}),
                reserved_concurrency=item.get("reserved_concurrency"),
                provisioned={str(k): int(v) for k, v in (item.get("provisioned") or {}).items()},
                last_modified=item.get("last_modified"),
                revision=int(item.get("revision", 0)),
            )
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a state file of this edge: {exc}") from None
    return FunctionState(functions)


def write_state(path: Path, state: FunctionState, held: Any = None) -> None:
    """Replace the state file atomically; `held`: a cluster change in progress
    (`SharedStore.hold`), which stores the file cluster-wide first."""
    document: dict[str, Any] = {"functions": {}}
    for name, override in sorted(state.functions.items()):
        item: dict[str, Any] = {"revision": override.revision}
        if override.code is not None:
            directory = Path(override.code.directory)
            if directory.is_relative_to(path.parent):
                directory = directory.relative_to(path.parent)
            item["code"] = {
                "directory": str(directory),
                "sha256": override.code.sha256,
                "size": override.code.size,
                "replaces": override.code.replaces,
            }
        if override.configuration:
            item["configuration"] = dict(override.configuration)
        if override.reserved_concurrency is not None:
            item["reserved_concurrency"] = override.reserved_concurrency
        if override.provisioned:
            item["provisioned"] = dict(override.provisioned)
        if override.last_modified:
            item["last_modified"] = override.last_modified
        document["functions"][name] = item
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    if held is not None:
        held.publish(STATE_FILE, data)
    replace_file(path, data)


def configured_code_path(function: FunctionConfig) -> str:
    """The code path edge.toml gives a Python or Node.js function (its folder)."""
    return str(function.code_dir_and_handler[0])


def unpack_code(state_dir: Path, name: str, zip_bytes: bytes) -> tuple[Path, str]:
    """Unpack a deployment package into `state_dir/code/NAME/SHA/` (once per content); returns
    the folder and the zip's SHA-256 in base64. Raises ValueError for a zip that is not one,
    or whose members would land outside the folder."""
    digest = hashlib.sha256(zip_bytes).digest()
    sha = base64.b64encode(digest).decode()
    target = state_dir / "code" / name / digest.hex()[:20]
    if target.is_dir():
        return target, sha
    try:
        archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"Could not unzip uploaded file: {exc}") from None
    with archive:
        total = 0
        for member in archive.infolist():
            member_path = Path(member.filename)
            if member_path.is_absolute() or ".." in member_path.parts:
                raise ValueError(f"Could not unzip uploaded file: unsafe path {member.filename!r}")
            total += member.file_size
        if total > MAX_UNZIPPED_BYTES:
            raise ValueError(
                f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes, found {total}"
            )
        staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            archive.extractall(staging)
        except (OSError, zipfile.BadZipFile) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ValueError(f"Could not unzip uploaded file: {exc}") from None
    os.replace(staging, target)
    return target, sha


def apply_overrides(config: EdgeConfig, state: FunctionState) -> tuple[EdgeConfig, list[str]]:
    """`config` with the API's changes laid over it, and notes for the log (an upload no
    longer used because edge.toml's code path changed; a function no longer configured)."""
    notes: list[str] = []
    functions = dict(config.functions)
    for name, override in state.functions.items():
        function = functions.get(name)
        if function is None:
            continue  # kept: the function may come back with the next edit of edge.toml
        functions[name] = apply_override(name, function, override, notes)
    if functions == config.functions:
        return config, notes
    return config.model_copy(update={"functions": functions}), notes


def apply_override(
    name: str, function: FunctionConfig, override: FunctionOverride, notes: list[str] | None = None
) -> FunctionConfig:
    """One function's configuration with its override applied."""
    update: dict[str, Any] = {}
    settings = override.configuration
    has_handler = function.runtime == "python" or function.is_nodejs
    if has_handler and override.code is not None:
        if override.code.replaces == configured_code_path(function):
            _, handler = function.code_dir_and_handler
            update["code"] = Path(override.code.directory)
            update["handler"] = handler
        elif notes is not None:
            notes.append(
                f"functions.{name}: the code uploaded by UpdateFunctionCode is no longer used: "
                f"edge.toml's code path changed from {override.code.replaces} to "
                f"{configured_code_path(function)}"
            )
    if "Handler" in settings and has_handler:
        if "code" not in update:
            update["code"], _ = function.code_dir_and_handler
        update["handler"] = settings["Handler"]
    if "Timeout" in settings:
        update["timeout"] = float(settings["Timeout"])
    if "MemorySize" in settings:
        update["memory"] = int(settings["MemorySize"])
        if function.runtime == "wasm":
            update["memory_pages"] = None
    if "Environment" in settings:
        update["environment"] = dict(settings["Environment"])
    if override.reserved_concurrency is not None:
        update["reserved_concurrency"] = override.reserved_concurrency
    if not update:
        return function
    return function.model_copy(update=update)
