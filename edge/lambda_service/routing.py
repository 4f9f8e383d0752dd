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

from edge.lambda_service.store import LATEST, FunctionStore, NotFound

# How often a router looks whether the store's file changed.
CHECK_SECONDS = 0.1


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
        self._targets: dict[tuple[str, str], Resolved] = {}

    def resolve(self, function: str, qualifier: str | None) -> str:
        """The version to run for `function:qualifier`; NotFound for an unknown qualifier."""
        if qualifier is None or qualifier == LATEST:
            return LATEST
        if self._clock() - self._checked >= self._check_seconds:
            self._refresh()
        # Published versions are in the table too, as aliases of themselves.
        target = self._targets.get((function, qualifier))
        if target is None:
            raise NotFound(f"{function}:{qualifier}")
        if target.extra is not None and self._draw() < target.weight:
            return target.extra
        return target.version

    def refresh_now(self) -> None:
        """Read the store again at the next resolution (after a change made in this process)."""
        self._checked = -float("inf")

    def _refresh(self) -> None:
        if self.store is None:
            return
        with self._lock:
            self._checked = self._clock()
            stamp = self.store.stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            store = self.store
            targets: dict[tuple[str, str], Resolved] = {}
            for function in store.function_names():
                for version in store.versions(function):
                    targets[(function, version.number)] = Resolved(version.number)
                for alias in store.aliases(function):
                    extra, weight = next(iter(alias.additional_weights.items()), (None, 0.0))
                    targets[(function, alias.name)] = Resolved(alias.version, extra, weight)
            self._targets = targets
