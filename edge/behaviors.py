"""Cache behaviors: CloudFront's path-pattern matching and allowed-method sets. Pure.

Path patterns (CloudFront): case-sensitive; `*` matches any run of characters, `/` included;
`?` matches exactly one character; a leading `/` is optional; the first behavior in the listed
order whose pattern matches wins, and the default behavior `*` comes last.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

MethodSet = Literal["get-head", "get-head-options", "all", "any"]

# CloudFront's three AllowedMethods sets, and "any": every method, extension methods such as
# PROPFIND or M-SEARCH included, as a generic proxy forwards them (CloudFront has no such
# setting; `edge serve --origin URL` uses it). None stands for "no restriction".
METHOD_SETS: dict[str, frozenset[str] | None] = {
    "get-head": frozenset({"GET", "HEAD"}),
    "get-head-options": frozenset({"GET", "HEAD", "OPTIONS"}),
    "all": frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}),
    "any": None,
}


def compile_path_pattern(pattern: str) -> re.Pattern[str]:
    """A regex that full-matches exactly the paths `pattern` matches."""
    if not pattern.startswith("/") and pattern != "*":
        pattern = "/" + pattern
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Rule(Generic[T]):
    regex: re.Pattern[str] | None  # None: matches everything
    value: T


class PathMatcher(Generic[T]):
    """First-match lookup of a path among patterns, in the order given."""

    def __init__(self, rules: Sequence[tuple[str, T]]) -> None:
        self._rules = [
            _Rule(None if pattern in ("*", "/*") else compile_path_pattern(pattern), value)
            for pattern, value in rules
        ]

    def match(self, path: str) -> T | None:
        for rule in self._rules:
            if rule.regex is None or rule.regex.fullmatch(path):
                return rule.value
        return None
