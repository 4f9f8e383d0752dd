"""What spans several keys of edge.toml: references between tables (behaviors to origins and
functions, origin groups, destinations) and AWS's rules across them (trigger limits, Lambda@Edge's
environment rule, reserved concurrency). Each check returns the problems it found, one line
each, in the house format."""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import re
import shutil
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.config.schema import (
    TRIGGERS,
    DirectoryOriginConfig,
    EdgeConfig,
    FunctionConfig,
    FunctionOriginConfig,
    OriginGroupConfig,
)
from sandbox import check_environment, check_layers


def check_origin_shapes(raw: Mapping[str, Any]) -> list[str]:
    """Each origin is exactly one kind; said plainly before the model's union errors."""
    problems: list[str] = []
    origins = raw.get("origins")
    if not isinstance(origins, Mapping):
        return problems
    for name, table in origins.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(name)):
            problems.append(
                f"origins.{name}: expected a name of letters, digits, '-', '_' and '.', "
                f"found {name!r}"
            )
        elif (
            isinstance(table, Mapping)
            and sum(kind in table for kind in ("url", "directory", "function", "primary")) != 1
        ):
            keys = ", ".join(repr(k) for k in table) or "no keys"
            problems.append(
                f"origins.{name}: expected exactly one of 'url' (an HTTP origin), "
                f"'directory' (a local folder), 'function' (a Lambda function) or 'primary' "
                f"with 'secondary' (an origin group), found {keys}"
            )
    return problems


def check_server(config: EdgeConfig) -> list[str]:
    """`[server]`: no two listeners on one address; HTTPS with readable certificate and key
    files, and those only with HTTPS."""
    server = config.server
    problems: list[str] = []
    listeners = {
        "listen": server.listen,
        "admin": server.admin,
        "https_listen": server.https_listen,
    }
    seen: dict[str, str] = {}
    for key, address in listeners.items():
        if address is None or address.endswith(":0"):
            continue
        if address in seen:
            problems.append(
                f"server.{key}: expected an address of its own, found {address!r}, which "
                f"server.{seen[address]} listens on already"
            )
        seen.setdefault(address, key)
    tls = {"certificate": server.certificate, "private_key": server.private_key}
    if server.https_listen is None:
        problems += [
            f"server.{key}: goes with server.https_listen, which is not set"
            for key, path in tls.items()
            if path is not None
        ]
        return problems
    files: list[Path] = []
    for key, path in tls.items():
        if path is None:
            problems.append(f"server.{key}: expected a PEM file for server.https_listen")
            continue
        file = path if path.is_absolute() else config.base_dir / path
        if not file.is_file():
            problems.append(f"server.{key}: expected a PEM file, found no file at {str(file)!r}")
        files.append(file)
    if not problems:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(*map(str, files))
        except (ssl.SSLError, OSError) as exc:
            problems.append(
                "server.certificate: expected a PEM certificate chain that goes with "
                f"server.private_key, found one that does not load ({exc})"
            )
    return problems


def check_tracing(config: EdgeConfig) -> list[str]:
    """`[tracing]`: an OTLP endpoint needs the OpenTelemetry SDK and its exporter."""
    if config.tracing.otlp_endpoint is None:
        return []
    for module in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return [
                "tracing.otlp_endpoint: expected the OpenTelemetry SDK and its OTLP/HTTP "
                f"exporter installed for spans, found no module {module!r}: "
                "pip install 'edge[tracing]'"
            ]
    return []


def check_references(
    config: EdgeConfig, raw: Mapping[str, Any], *, qualifiers_exist: bool = True
) -> list[str]:
    """References between tables. `qualifiers_exist`: a `NAME:VERSION` or `NAME:ALIAS`
    reference must name one published in the state directory (off for `edge publish` and
    `edge alias`, which make them)."""
    problems: list[str] = []
    names = sorted(config.origins)
    for index, behavior in enumerate(config.behaviors):
        if behavior.origin not in config.origins:
            close = difflib.get_close_matches(behavior.origin, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"behaviors[{index}].origin: expected one of the origins "
                f"{', '.join(repr(n) for n in names)}, found {behavior.origin!r}{hint}"
            )
        if behavior.path == "*" and index != len(config.behaviors) - 1:
            problems.append(
                f"behaviors[{index}].path: '*' is the default behavior and must come last, "
                f"found it at position {index} of {len(config.behaviors)}"
            )
    functions = sorted(config.functions)
    edge = config.lambda_edge
    qualifiers = _Qualifiers(config, enabled=qualifiers_exist)
    problems += qualifiers.check_declared_aliases()
    for index, behavior in enumerate(config.behaviors):
        for trigger in TRIGGERS:
            association = behavior.association(trigger)
            if association is None:
                continue
            where = f"behaviors[{index}].{trigger}"
            table = raw["behaviors"][index]
            given = table.get(trigger, table.get(trigger.replace("-", "_")))
            if association.name not in config.functions:
                close = difflib.get_close_matches(association.name, functions, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(repr(n) for n in functions) or "none are defined"
                problems.append(
                    f"{where}: expected one of the functions ({known}), "
                    f"found {association.name!r}{hint}"
                )
                continue
            qualifier_problem = qualifiers.check(
                f"{where}.function" if isinstance(given, Mapping) else where, association.function
            )
            if qualifier_problem:
                problems.append(qualifier_problem)
            if association.include_body and trigger.endswith("-response"):
                problems.append(
                    f"{where}.include_body: expected false (CloudFront allows include_body only "
                    f"on viewer-request and origin-request), found true"
                )
            function = config.functions[association.name]
            viewer = trigger.startswith("viewer")
            if function.runtime.startswith("cloudfront-js"):
                if not viewer:
                    problems.append(
                        f"{where}: expected a Lambda@Edge function: {association.name!r} is a "
                        f"CloudFront Function ({function.runtime}), which runs only on "
                        "viewer-request and viewer-response"
                    )
                if association.include_body:
                    problems.append(
                        f"{where}.include_body: expected false: CloudFront Functions do not "
                        "see the request body"
                    )
                continue
            limit = edge.viewer_timeout if viewer else edge.origin_timeout
            if function.timeout is not None and function.timeout > limit:
                problems.append(
                    f"functions.{association.name}.timeout: expected at most {limit:g} s for a "
                    f"function on {trigger} ({where}), found {function.timeout:g}"
                )
            if function.ephemeral_storage > 512:
                problems.append(
                    f"functions.{association.name}.ephemeral_storage: expected at most 512 MB "
                    f"for a function on a Lambda@Edge trigger ({where}), "
                    f"found {function.ephemeral_storage}"
                )
            if viewer and function.memory_size_mb > edge.viewer_memory:
                key = "memory" if function.memory_pages is None else "memory_pages"
                problems.append(
                    f"functions.{association.name}.{key}: expected at most "
                    f"{edge.viewer_memory} MB for a function on {trigger} ({where}), "
                    f"found {function.memory_size_mb}"
                )
            if function.environment and not edge.allow_environment:
                problems.append(
                    f"functions.{association.name}.environment: expected none for a function "
                    f"on a Lambda@Edge trigger ({where}); Lambda@Edge has no environment "
                    f"variables (set lambda_edge.allow_environment = true to allow them), "
                    f"found {len(function.environment)}"
                )
    for index, behavior in enumerate(config.behaviors):
        problems += _check_function_kinds(config, index, behavior.association)
    for name, function in config.functions.items():
        problems += _check_function_destinations(name, function, functions)
        problems += _check_runtime_keys(name, function)
        problems += _check_layers(config, name, function)
        problems += _check_node(name, function, config.sandbox.isolation)
        problems += _check_provided(name, function, config.sandbox.isolation)
        problems += _check_provisioned(name, function)
        try:
            check_environment(function.environment)
        except ValueError as exc:
            problems.append(f"functions.{name}.environment: {exc}")
        if function.runtime.startswith("cloudfront-js"):
            problems += _check_cloudfront_function(config, name, function)
            continue
        if function.runtime == "wasm" and function.module is not None:
            module = function.module
            found = module if module.is_absolute() else config.base_dir / module
            if not found.is_file():
                problems.append(
                    f"functions.{name}.module: expected an existing .wasm or .wat file, "
                    f"found {str(module)!r} (looked at {found})"
                )
            continue
        for index, writable in enumerate(function.writable_paths):
            found = writable if writable.is_absolute() else config.base_dir / writable
            if not found.is_dir():
                problems.append(
                    f"functions.{name}.writable_paths[{index}]: expected an existing directory, "
                    f"found {str(writable)!r} (looked at {found})"
                )
        code_dir, _ = function.code_dir_and_handler
        folder = code_dir if code_dir.is_absolute() else config.base_dir / code_dir
        if not folder.is_dir():
            key = "code" if function.is_provided else "handler"
            problems.append(
                f"functions.{name}.{key}: expected code in an existing directory, "
                f"found {str(code_dir)!r} (looked at {folder})"
            )
    paths = [b.path for b in config.behaviors]
    for index, path in enumerate(paths):
        if path in paths[:index]:
            problems.append(
                f"behaviors[{index}].path: each path pattern may appear once, "
                f"found {path!r} again (first at behaviors[{paths.index(path)}])"
            )
    if (not config.behaviors or config.behaviors[-1].path != "*") and len(config.origins) > 1:
        problems.append(
            'behaviors: expected a default behavior with path = "*" (needed when there is '
            f"more than one origin), found none among {len(config.behaviors)} behaviors"
        )
    for name, origin in config.origins.items():
        if isinstance(origin, OriginGroupConfig):
            for role in ("primary", "secondary"):
                member = getattr(origin, role)
                target = config.origins.get(member)
                if target is None or isinstance(target, OriginGroupConfig) or member == name:
                    plain = sorted(
                        n for n, o in config.origins.items() if not isinstance(o, OriginGroupConfig)
                    )
                    problems.append(
                        f"origins.{name}.{role}: expected one of the origins "
                        f"{', '.join(repr(n) for n in plain)} (not a group), found {member!r}"
                    )
        target_name = (
            origin.function.partition(":")[0] if isinstance(origin, FunctionOriginConfig) else ""
        )
        if isinstance(origin, FunctionOriginConfig) and config.functions.get(
            target_name, FunctionConfig(handler="x.y")
        ).runtime.startswith("cloudfront-js"):
            problems.append(
                f"origins.{name}.function: expected a Lambda function: {origin.function!r} is a "
                "CloudFront Function, which runs only on viewer triggers"
            )
        elif isinstance(origin, FunctionOriginConfig) and target_name not in config.functions:
            close = difflib.get_close_matches(target_name, functions, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(repr(n) for n in functions) or "none are defined"
            problems.append(
                f"origins.{name}.function: expected one of the functions ({known}), "
                f"found {origin.function!r}{hint}"
            )
        elif isinstance(origin, FunctionOriginConfig):
            qualifier_problem = qualifiers.check(f"origins.{name}.function", origin.function)
            if qualifier_problem:
                problems.append(qualifier_problem)
        if isinstance(origin, DirectoryOriginConfig):
            folder = (
                origin.directory
                if origin.directory.is_absolute()
                else (config.base_dir / origin.directory)
            )
            if not folder.is_dir():
                problems.append(
                    f"origins.{name}.directory: expected an existing directory, "
                    f"found {str(origin.directory)!r} (looked at {folder})"
                )
    return problems


class _Qualifiers:
    """Checks `NAME:QUALIFIER` references against the published versions and aliases in the
    state directory (read only when a reference has a qualifier) and the aliases edge.toml
    declares (made at start)."""

    def __init__(self, config: EdgeConfig, *, enabled: bool = True) -> None:
        self._config = config
        self._enabled = enabled
        self._store: Any = None

    def _published(self, function: str) -> tuple[list[str], list[str]]:
        """(published version numbers, alias names in the store) of `function`."""
        if self._store is None:
            # Imported here: the store reads FunctionConfig from this package.
            from edge.lambda_service import FunctionStore

            state_dir = self._config.server.state_dir
            if not state_dir.is_absolute():
                state_dir = self._config.base_dir / state_dir
            if self._config.cluster.enabled:
                # The cluster's versions and aliases, not only what this node saw last.
                with contextlib.suppress(ImportError):  # no redis client: said at serve
                    from edge.cluster.state import shared_state_for

                    shared = shared_state_for(self._config, state_dir)
                    if shared is not None:
                        shared.refresh()
            self._store = FunctionStore(state_dir)
        try:
            versions = [v.number for v in self._store.versions(function)]
            aliases = [a.name for a in self._store.aliases(function)]
        except (OSError, ValueError, KeyError):
            return [], []
        return versions, aliases

    def check(self, where: str, reference: str) -> str | None:
        """A problem with `reference`'s qualifier, or None (none, `$LATEST`, or one that
        exists); the function itself is known."""
        name, sep, qualifier = reference.partition(":")
        if not sep or qualifier == "$LATEST" or not self._enabled:
            return None
        function = self._config.functions[name]
        if function.runtime.startswith("cloudfront-js"):
            return (
                f"{where}: expected {name!r} without a qualifier (CloudFront Functions have no "
                f"published versions or aliases), found {reference!r}"
            )
        versions, aliases = self._published(name)
        if qualifier.isdigit():
            if qualifier in versions:
                return None
            known = ", ".join(versions) or f"none yet: `edge publish {name}` makes one"
            return (
                f"{where}: expected a published version of {name!r} ({known}), found {reference!r}"
            )
        aliases = sorted({*aliases, *function.aliases})
        if qualifier in aliases:
            return None
        known = ", ".join(aliases) or "none"
        return (
            f"{where}: expected $LATEST, a published version or an alias of {name!r} "
            f"(aliases: {known}; `edge alias create` or [functions.{name}.aliases.NAME] makes "
            f"one), found {reference!r}"
        )

    def check_declared_aliases(self) -> list[str]:
        """`[functions.NAME.aliases.ALIAS]`: a valid name, published versions, one weight."""
        problems: list[str] = []
        for name, function in self._config.functions.items():
            for alias, declared in function.aliases.items():
                where = f"functions.{name}.aliases.{alias}"
                if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", alias) or alias.isdigit():
                    problems.append(
                        f"{where}: expected an alias name of letters, digits, '-' and '_' "
                        f"(not all digits, at most 128), found {alias!r}"
                    )
                    continue
                if function.runtime.startswith("cloudfront-js"):
                    problems.append(
                        f"{where}: expected no aliases on a CloudFront Function, found {alias!r}"
                    )
                    continue
                versions, _ = self._published(name)
                known = ", ".join(versions) or f"none yet: `edge publish {name}` makes one"
                if not self._enabled:
                    continue
                if declared.version != "$LATEST" and declared.version not in versions:
                    problems.append(
                        f"{where}.version: expected a published version of {name!r} "
                        f"({known}), found {declared.version!r}"
                    )
                if len(declared.weights) > 1:
                    problems.append(
                        f"{where}.weights: expected at most one additional version, "
                        f"found {len(declared.weights)}"
                    )
                for extra, weight in declared.weights.items():
                    if declared.version == "$LATEST":
                        problems.append(
                            f'{where}.weights: expected none with version = "$LATEST" '
                            "(weighted routing needs published versions), found "
                            f"{dict(declared.weights)}"
                        )
                    elif extra not in versions or extra == declared.version:
                        problems.append(
                            f"{where}.weights: expected a published version of {name!r} other "
                            f"than {declared.version!r} ({known}), found {extra!r}"
                        )
                    if not 0.0 <= weight <= 1.0:
                        problems.append(
                            f"{where}.weights.{extra}: expected a share from 0.0 to 1.0, "
                            f"found {weight}"
                        )
        return problems


def _qualified_name(where: str, reference: str) -> str | None:
    """A `name:qualifier` destination is refused: asynchronous records go to `$LATEST`."""
    name, sep, _ = reference.partition(":")
    if not sep:
        return None
    return (
        f"{where}: qualified function names are not supported for destinations: "
        f"expected {name!r}, found {reference!r}"
    )


def _check_function_destinations(
    name: str, function: FunctionConfig, functions: Sequence[str]
) -> list[str]:
    """A `function:NAME` destination names a configured function (else its records would be
    dropped at run time)."""
    problems: list[str] = []
    for key in ("on_success", "on_failure", "dead_letter"):
        target = getattr(function, key)
        if target is None or not target.startswith("function:"):
            continue
        where = f"functions.{name}.{key}"
        reference = target.removeprefix("function:")
        qualified = _qualified_name(where, reference)
        if qualified:
            problems.append(qualified)
        elif reference not in functions:
            close = difflib.get_close_matches(reference, functions, n=1)
            hint = f" (did you mean 'function:{close[0]}'?)" if close else ""
            problems.append(
                f"{where}: expected 'function:NAME' naming one of the functions "
                f"({', '.join(repr(n) for n in functions)}), found {target!r}{hint}"
            )
    return problems


# Keys one runtime reads and the other would silently pass over (Node.js functions and custom
# runtimes read the Python keys: a handler, a code directory, network, writable paths).
_RUNTIME_KEYS = {
    "python": ("handler", "code", "network", "writable_paths", "log_format", "log_level"),
    "wasm": ("module", "abi", "reuse_instance", "fuel"),
    "cloudfront-js": ("code", "key_value_store"),
}


def _check_runtime_keys(name: str, function: FunctionConfig) -> list[str]:
    own = "cloudfront-js" if function.runtime.startswith("cloudfront-js") else function.runtime
    if function.is_nodejs or function.is_provided:
        own = "python"  # Node.js and custom runtimes read the Python keys
    return [
        f"functions.{name}.{key}: expected no {key} for a {function.runtime} function (a "
        f"{other} setting), found {getattr(function, key)!r}"
        for other, keys in _RUNTIME_KEYS.items()
        if other != own
        for key in keys
        if key in function.model_fields_set and key not in _RUNTIME_KEYS[own]
    ]


# The runtimes that see layers at /opt. The custom runtime ("provided") takes them too once
# it exists: add its name here (its worker adds /opt and /opt/bin with `LayerSet`).
_LAYER_RUNTIMES = ("python", "nodejs", "provided")


def _check_layers(config: EdgeConfig, name: str, function: FunctionConfig) -> list[str]:
    """Layers only where a runtime shows them at /opt, within Lambda's limits: at most 5, each
    an existing folder or .zip file, 250 MB unzipped with the function's code."""
    where = f"functions.{name}.layers"
    if not function.layers:
        return []
    runtime = "nodejs" if function.is_nodejs else function.runtime
    if function.is_provided:
        runtime = "provided"
    if runtime not in _LAYER_RUNTIMES:
        return [
            f"{where}: expected no layers for a {function.runtime} function (layers are "
            "extracted to /opt for python, nodejs and provided functions), found "
            f"{len(function.layers)}"
        ]
    layers = [p if p.is_absolute() else config.base_dir / p for p in function.layers]
    code_dir, _ = function.code_dir_and_handler
    folder = code_dir if code_dir.is_absolute() else config.base_dir / code_dir
    return [
        f"{where}{'' if index is None else f'[{index}]'}: {problem}"
        for index, problem in check_layers(
            layers, folder.resolve(), excluded=[(config.base_dir / ".edge").resolve()]
        )
    ]


def _check_node(name: str, function: FunctionConfig, isolation: str) -> list[str]:
    """A Node.js function needs `node` on the edge's PATH (every nodejs name runs that one),
    and an isolation it can have: bubblewrap or none (`uid-only` is the Python zygote's)."""
    if not function.is_nodejs:
        return []
    if isolation == "uid-only":
        return [
            f"functions.{name}.runtime: a {function.runtime} function runs under bubblewrap or "
            "unconfined, found sandbox.isolation = 'uid-only' (set 'auto', 'namespaces' or "
            "'none')"
        ]
    if shutil.which("node") is not None:
        return []
    return [
        f"functions.{name}.runtime: expected `node` on PATH for a {function.runtime} function, "
        "found none: install Node.js (Debian/Ubuntu: `apt-get install nodejs`, or from "
        "https://nodejs.org)"
    ]


def _check_provided(name: str, function: FunctionConfig, isolation: str) -> list[str]:
    """A custom runtime runs under bubblewrap or unconfined, as Node.js functions do (its
    bootstrap is checked with the other functions' code)."""
    if function.is_provided and isolation == "uid-only":
        return [
            f"functions.{name}.runtime: a {function.runtime} function runs under bubblewrap or "
            "unconfined, found sandbox.isolation = 'uid-only' (set 'auto', 'namespaces' or "
            "'none')"
        ]
    return []


def _check_function_kinds(config: EdgeConfig, index: int, association: Any) -> list[str]:
    """CloudFront: a behavior's viewer triggers hold CloudFront Functions or Lambda@Edge
    functions, not both (origin triggers may use Lambda@Edge next to viewer CloudFront
    Functions)."""
    kinds: dict[str, str] = {}
    for trigger in ("viewer-request", "viewer-response"):
        attached = association(trigger)
        function = config.functions.get(attached.name) if attached is not None else None
        if function is not None:
            cloudfront = function.runtime.startswith("cloudfront-js")
            kinds[trigger] = "a CloudFront Function" if cloudfront else "a Lambda@Edge function"
    if len(set(kinds.values())) > 1:
        shown = ", ".join(f"{t}: {k}" for t, k in kinds.items())
        return [
            f"behaviors[{index}]: expected CloudFront Functions or Lambda@Edge functions on the "
            f"viewer triggers, not both (CloudFront refuses the mix), found {shown}"
        ]
    return []


def _check_cloudfront_function(
    config: EdgeConfig, name: str, function: FunctionConfig
) -> list[str]:
    problems: list[str] = []
    code = function.code
    if code is not None:
        found = code if code.is_absolute() else config.base_dir / code
        if not found.is_file():
            problems.append(
                f"functions.{name}.code: expected an existing .js file, found {str(code)!r} "
                f"(looked at {found})"
            )
    store = function.key_value_store
    if store is not None and store not in config.key_value_stores:
        known = ", ".join(repr(n) for n in config.key_value_stores) or "none are defined"
        problems.append(
            f"functions.{name}.key_value_store: expected one of the key_value_stores ({known}), "
            f"found {store!r}"
        )
    return problems


def _check_provisioned(name: str, function: FunctionConfig) -> list[str]:
    """Environments started in advance never exceed what may run: `max_concurrency`, and (as
    Lambda refuses provisioned concurrency over it) the reservation."""
    where = f"functions.{name}.provisioned"
    if function.provisioned > function.max_concurrency:
        return [
            f"{where}: expected at most max_concurrency ({function.max_concurrency}), "
            f"found {function.provisioned}"
        ]
    reserved = function.reserved_concurrency
    if reserved is not None and function.provisioned > reserved:
        return [
            f"{where}: expected at most reserved_concurrency ({reserved}), which provisioned "
            f"environments count against, found {function.provisioned}"
        ]
    return []


# Lambda (PutFunctionConcurrency): reservations must leave at least this much of the account's
# concurrency unreserved (UnreservedConcurrentExecutions >= 100), else InvalidParameterValue.
MIN_UNRESERVED_CONCURRENCY = 100


def check_reserved_concurrency(config: EdgeConfig) -> list[str]:
    """The first reservation (in file order) that leaves less than 100 of the node unreserved,
    as Lambda refuses the PutFunctionConcurrency that would."""
    node = config.invoke.node_concurrency
    reserved_so_far = 0
    for name, function in config.functions.items():
        reserved = function.reserved_concurrency
        if not reserved:  # None, or 0: it takes nothing from the others
            continue
        allowed = max(0, node - MIN_UNRESERVED_CONCURRENCY - reserved_so_far)
        if reserved > allowed:
            others = (
                f" less {reserved_so_far} reserved by other functions," if reserved_so_far else ""
            )
            return [
                f"functions.{name}.reserved_concurrency: expected at most {allowed} "
                f"(invoke.node_concurrency {node},{others} less the "
                f"{MIN_UNRESERVED_CONCURRENCY} that must stay unreserved), found {reserved}"
            ]
        reserved_so_far += reserved
    return []
