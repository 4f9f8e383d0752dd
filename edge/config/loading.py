"""Reading edge.toml: TOML, then the schema, then the cross-key checks, then paths resolved
against the file's directory; and the one-behavior configuration of `edge serve --origin`."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.config.checks import (
    check_origin_shapes,
    check_references,
    check_reserved_concurrency,
    check_server,
    check_tracing,
)
from edge.config.handlers import parse_handler
from edge.config.messages import (
    ConfigError,
    format_errors,
)
from edge.config.schema import (
    BehaviorConfig,
    DirectoryOriginConfig,
    EdgeConfig,
    FunctionConfig,
    OriginConfig,
)


def parse_config(
    raw: Mapping[str, Any], *, source: str = "<memory>", base_dir: Path | None = None
) -> EdgeConfig:
    """Validate a TOML document already parsed into `raw`."""
    base = base_dir or Path(".")
    shape_problems = check_origin_shapes(raw)
    if shape_problems:
        raise ConfigError(source, shape_problems)
    try:
        config = EdgeConfig.model_validate({**raw, "source": source, "base_dir": base})
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc, raw)) from None
    problems = check_references(config, raw) + check_reserved_concurrency(config)
    problems += check_server(config)
    problems += check_tracing(config)
    if problems:
        raise ConfigError(source, problems)
    return _resolve_paths(config, base)


def _resolve_paths(config: EdgeConfig, base: Path) -> EdgeConfig:
    origins: dict[str, OriginConfig] = {}
    for name, origin in config.origins.items():
        if isinstance(origin, DirectoryOriginConfig) and not origin.directory.is_absolute():
            origin = origin.model_copy(update={"directory": (base / origin.directory).resolve()})
        origins[name] = origin
    functions: dict[str, FunctionConfig] = {}
    for name, function in config.functions.items():
        if function.runtime == "wasm" and function.module is not None:
            module = function.module if function.module.is_absolute() else base / function.module
            functions[name] = function.model_copy(update={"module": module.resolve()})
            continue
        if function.runtime.startswith("cloudfront-js") and function.code is not None:
            code = function.code if function.code.is_absolute() else base / function.code
            functions[name] = function.model_copy(update={"code": code.resolve()})
            continue
        code_dir, handler = function.code_dir_and_handler
        if not code_dir.is_absolute():
            code_dir = (base / code_dir).resolve()
        writable = [(base / w).resolve() for w in function.writable_paths]
        functions[name] = function.model_copy(
            update={"code": code_dir, "handler": handler, "writable_paths": writable}
        )
    stores = {
        name: store.model_copy(update={"file": (base / store.file).resolve()})
        for name, store in config.key_value_stores.items()
    }
    behaviors = list(config.behaviors)
    if not behaviors or behaviors[-1].path != "*":
        # CloudFront always has a default behavior; with one origin it is implied.
        behaviors.append(BehaviorConfig(path="*", origin=next(iter(origins))))
    cache = config.cache
    if cache.disk_directory is not None and not cache.disk_directory.is_absolute():
        cache = cache.model_copy(update={"disk_directory": (base / cache.disk_directory).resolve()})
    server = config.server
    if not server.state_dir.is_absolute():
        server = server.model_copy(update={"state_dir": (base / server.state_dir).resolve()})
    for key in ("certificate", "private_key"):
        path = getattr(server, key)
        if path is not None and not path.is_absolute():
            server = server.model_copy(update={key: (base / path).resolve()})
    invoke = config.invoke
    if not invoke.queue_path.is_absolute():
        invoke = invoke.model_copy(update={"queue_path": (base / invoke.queue_path).resolve()})
    return config.model_copy(
        update={
            "origins": origins,
            "behaviors": behaviors,
            "functions": functions,
            "key_value_stores": stores,
            "invoke": invoke,
            "cache": cache,
            "server": server,
        }
    )


def load_config(path: Path) -> EdgeConfig:
    """Read and validate edge.toml at `path`. Raises ConfigError."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read the file: {exc}"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return parse_config(raw, source=source, base_dir=path.resolve().parent)


# `host:port` (a name, IPv4 or [IPv6] address and a port): what a user means as a URL.
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")


def config_for_origin(
    target: str,
    *,
    hooks: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    include_body: bool = False,
    origin_kind: str | None = None,
    cache: str | None = None,
) -> EdgeConfig:
    """The one-behavior configuration of `edge serve --origin URL|DIR [--viewer-request ...]`.

    `hooks` maps a trigger to a handler (`FILE.py::FUNCTION` or `MODULE.FUNCTION`, relative to
    `base_dir`); each becomes a function of its own. `include_body` is `include_body = true`
    on the request triggers among them; `origin_kind` the origin's `origin_kind` (default:
    "custom" for a URL, "s3" for a directory); `cache` the behavior's cache policy by name
    (default "rfc9111").
    """
    origin: dict[str, Any] = {"url": target} if "://" in target else {"directory": target}
    base = base_dir or Path.cwd()
    if "://" not in target and _HOST_PORT.fullmatch(target) and not (base / target).is_dir():
        raise ConfigError(
            "--origin",
            [
                f"expected an http:// or https:// URL or an existing directory, found "
                f"{target!r}; did you mean 'http://{target}'?"
            ],
        )
    if origin_kind is not None:
        origin["origin_kind"] = origin_kind
    # A generic caching proxy forwards every method, extension methods included.
    behavior: dict[str, Any] = {"path": "*", "origin": "origin", "methods": "any"}
    if cache is not None:
        behavior["cache"] = cache
    functions: dict[str, Any] = {}
    for trigger, spec in (hooks or {}).items():
        try:
            ref = parse_handler(spec)
        except ValueError as exc:
            raise ConfigError(f"--{trigger}", [str(exc)]) from None
        # Named after its file and function (`auth-handler`): what its log lines show.
        stem = ref.module.rpartition(".")[2].rpartition("/")[2]
        name = re.sub(r"[^A-Za-z0-9-]", "-", f"{stem}-{ref.function}")[:64]
        if name in functions:  # one handler at two triggers: two functions, as in CloudFront
            name = f"{name[:40]}-{trigger}"
        functions[name] = {"handler": spec}
        wants_body = include_body and trigger.endswith("-request")
        behavior[trigger] = {"function": name, "include_body": True} if wants_body else name
    raw: dict[str, Any] = {"origins": {"origin": origin}, "behaviors": [behavior]}
    if functions:
        raw["functions"] = functions
    return parse_config(raw, source="--origin", base_dir=base)


def with_server_flags(config: EdgeConfig, flags: Mapping[str, Any]) -> EdgeConfig:
    """`config` with `[server]` keys set from command-line flags (`listen`, `workers`, ...);
    ConfigError names the flag (`--listen`), what was expected and what was found."""
    try:
        server = config.server.model_validate({**config.server.model_dump(), **flags})
    except ValidationError as exc:
        problems = []
        for line in format_errors(exc, {"server": dict(flags)}):
            key, _, rest = line.partition(": ")
            problems.append(f"--{key.removeprefix('server.').replace('_', '-')}: {rest}")
        raise ConfigError("command line", problems) from None
    return config.model_copy(update={"server": server})
