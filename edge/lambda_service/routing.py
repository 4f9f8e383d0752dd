"""From a qualifier to the version that runs: `$LATEST`, a published number, or an alias's pick.

The router keeps a table of the store's aliases and versions and looks at the store's file
(one stat) at most every `check_seconds`: an UpdateAlias made by any process on the same state
directory steers new invocations within that time, and an invocation never reads a file. An
alias with `AdditionalVersionWeights` picks its extra version with that probability, per
invocation (Lambda's routing is per invocation and random).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.lambda_service.store import LATEST, FunctionStore, NotFound, is_version_number

# How often a router looks whether the store's file changed.
CHECK_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Resolved:
    """An alias as the router uses it: its version, and the extra one with its share."""

    version: str
    extra: str | None = None
    weight: float = 0.0


class AliasRouter:
    """Resolves qualifiers against a `FunctionStore` (None: only `$LATEST` exists)."""

    def __init__(
        self,
        store: FunctionStore | None,
        *,
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self._check_seconds = check_seconds
        self._clock = clock
        self._draw = draw
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._stamp: tuple[int, int, int] | None = None
        self._aliases: dict[tuple[str, str], Resolved] = {}
        self._versions: frozenset[tuple[str, str]] = frozenset()

    def resolve(self, function: str, qualifier: str | None) -> str:
        """The version to run for `function:qualifier`; NotFound for an unknown qualifier."""
        if qualifier is None or qualifier == LATEST:
            return LATEST
        self._refresh()
        if is_version_number(qualifier):
            if (function, qualifier) in self._versions:
                return qualifier
            raise NotFound(f"{function}:{qualifier}")
        alias = self._aliases.get((function, qualifier))
        if alias is None:
            raise NotFound(f"{function}:{qualifier}")
        if alias.extra is not None and self._draw() < alias.weight:
            return alias.extra
        return alias.version

    def refresh_now(self) -> None:
        """Read the store again at the next resolution (after a change made in this process)."""
        self._checked = -float("inf")

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked < self._check_seconds or self.store is None:
            return
        with self._lock:
            self._checked = now
            stamp = self.store.stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            store = self.store
            functions = store.function_names()
            versions = {(f, v.number) for f in functions for v in store.versions(f)}
            aliases: dict[tuple[str, str], Resolved] = {}
            for function in functions:
                for alias in store.aliases(function):
                    extra, weight = next(iter(alias.additional_weights.items()), (None, 0.0))
                    aliases[(function, alias.name)] = Resolved(alias.version, extra, weight)
            self._versions = frozenset(versions)
            self._aliases = aliases
