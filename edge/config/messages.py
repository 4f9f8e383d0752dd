"""Configuration errors as a user reads them: the file, the key path (`behaviors[1].origin`),
what was expected and what was found, and the nearest valid name for an unknown key."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from edge.config.schema import (
    HEADER_NAME_PATTERN,
    AdminConfig,
    BehaviorConfig,
    CacheConfig,
    DirectoryOriginConfig,
    EdgeConfig,
    FunctionAssociation,
    FunctionConfig,
    FunctionOriginConfig,
    HttpOriginConfig,
    InvokeConfig,
    LambdaEdgeConfig,
    OriginGroupConfig,
    SandboxConfig,
    ServerConfig,
)


class ConfigError(Exception):
    """The configuration cannot be used. `problems` are one line each, ready to print."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: invalid configuration\n{lines}")


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a table",
    "list_type": "an array",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _known_fields(model: type[BaseModel]) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        names.append(info.alias or name)
    return names


_MODELS_BY_LOC: dict[str, type[BaseModel]] = {
    "server": ServerConfig,
    "behaviors": BehaviorConfig,
    "functions": FunctionConfig,
    "lambda_edge": LambdaEdgeConfig,
    "invoke": InvokeConfig,
    "cache": CacheConfig,
    "sandbox": SandboxConfig,
    "admin": AdminConfig,
}


def _model_for(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model whose table holds the key at `loc` (for suggesting names)."""
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    if not parents:
        return EdgeConfig
    top = parents[0]
    if top == "origins":
        if "HttpOriginConfig" in parents:
            return HttpOriginConfig
        if "FunctionOriginConfig" in parents:
            return FunctionOriginConfig
        if "OriginGroupConfig" in parents:
            return OriginGroupConfig
        return DirectoryOriginConfig
    if top == "behaviors" and "FunctionAssociation" in parents:
        return FunctionAssociation
    return _MODELS_BY_LOC.get(top)


def _describe(error: Mapping[str, Any]) -> str:
    # Union alternatives (`literal[...]`, model names) and pydantic's own markers are not keys.
    loc = [
        f'"{p}"' if isinstance(p, str) and not _IDENT.fullmatch(p) else p
        for p in error["loc"]
        if not _is_union_tag(p) and p not in ("str", "FunctionAssociation", "[key]")
    ]
    where = _loc_path(loc) or "(top level)"
    kind = error["type"]
    found = error.get("input")
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        model = _model_for(error["loc"])
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(key, _known_fields(model), n=1)
            if close:
                hint = f"; did you mean {close[0]!r}?"
        return f"{where}: unknown key{hint}"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "list_type" and isinstance(found, Mapping) and len(error["loc"]) == 1:
        # `[behaviors]` where `[[behaviors]]` was meant: TOML makes one table, not an array.
        return (
            f"{where}: expected an array of tables, found one table; write "
            f"[[{where}]] (double brackets) before each entry"
        )
    if kind in _TYPE_WORDS:
        return f"{where}: expected {_TYPE_WORDS[kind]}, found {found!r}"
    ctx = error.get("ctx", {})
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        return f"{where}: expected a number {bounds[kind].format(**ctx)}, found {found!r}"
    if kind == "string_pattern_mismatch":
        return f"{where}: {_pattern_words(ctx.get('pattern'), found)}"
    if kind in ("string_too_short", "string_too_long"):
        return f"{where}: {str(error['msg']).lower()}, found {found!r}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        hint = ""
        if isinstance(found, str):
            choices = re.findall(r"'([^']*)'", str(expected))
            close = difflib.get_close_matches(found, choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: expected one of {expected}, found {found!r}{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if "found" in message or kind == "value_error":
        return f"{where}: {message}"
    return f"{where}: {message}, found {found!r}"


def _pattern_words(pattern: object, found: object) -> str:
    """What a pattern-checked key expects, in words (never the regular expression)."""
    if pattern == HEADER_NAME_PATTERN:
        return f"expected an HTTP header name (RFC 9110 token), found {found!r}"
    return f"expected a different form of text, found {found!r}"


def _is_union_tag(part: int | str) -> bool:
    """Whether a location part names an alternative of a union (`literal[...]`, a model)."""
    return isinstance(part, str) and (part.startswith("literal[") or part.endswith("Config"))


def _origin_kind_of(raw: Mapping[str, Any], name: str) -> str | None:
    table = raw.get("origins", {}).get(name)
    if isinstance(table, Mapping):
        if "url" in table:
            return "HttpOriginConfig"
        if "directory" in table:
            return "DirectoryOriginConfig"
        if "function" in table:
            return "FunctionOriginConfig"
        if "primary" in table:
            return "OriginGroupConfig"
    return None


def format_errors(exc: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 3 and loc[0] == "origins" and isinstance(loc[1], str):
            wanted = _origin_kind_of(raw, loc[1])
            if wanted is not None and loc[2] != wanted:
                continue
        if len(loc) >= 3 and loc[0] == "behaviors" and "str" in loc:
            # An association given as a table failed; the string alternative is noise.
            continue
        if len(loc) >= 3 and loc[0] == "behaviors" and "FunctionAssociation" in loc:
            behavior = raw.get("behaviors", [])[loc[1]] if isinstance(loc[1], int) else {}
            if isinstance(behavior, Mapping) and isinstance(behavior.get(str(loc[2])), str):
                continue
        if loc and _is_union_tag(loc[-1]):
            # The value failed every alternative of a union (a name, or a table): report only
            # the one it was meant for (a table for a table, a name otherwise).
            found = error.get("input")
            is_name = str(loc[-1]).startswith("literal[")
            if is_name == isinstance(found, Mapping):
                continue
            if is_name:
                ctx = dict(error.get("ctx", {}))
                ctx["expected"] = f"{ctx.get('expected', '')}, or a table"
                error = {**error, "ctx": ctx}
        text = _describe(error)
        if text not in problems:
            problems.append(text)
    return problems
