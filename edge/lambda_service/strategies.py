"""Traffic-shifting strategies: CodeDeploy's predefined Lambda deployment configurations, by
their CodeDeploy and SAM names, and custom canary/linear ones, as a list of weighted steps.

Pure: names in, steps out; no clock, no I/O.

A strategy is the weights the new version holds, in order, each for its interval; after the
last step the alias moves to the new version whole (weights cleared). Canary: one step
(`Canary10Percent5Minutes`: 10 % for 5 minutes, then everything). Linear: equal increments at
equal intervals until the next would reach 100 % (`Linear10PercentEvery1Minute`: 10 %, 20 %,
... 90 %, a minute each, then everything: 100 % nine minutes in). All at once: no step.

Custom syntax (case-insensitive): `canary:PERCENT:INTERVAL`, `linear:PERCENT:INTERVAL`,
`all-at-once`. PERCENT is above 0 and below 100 (a trailing `%` is allowed); INTERVAL is a
number with a unit, `s`, `m` or `h` (`90s`, `10m`, `1.5h`); a bare number is minutes, as
CodeDeploy's custom configurations count.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

CODEDEPLOY_PREFIX = "CodeDeployDefault.Lambda"

Kind = Literal["canary", "linear", "all-at-once"]


@dataclass(frozen=True, slots=True)
class Step:
    """The new version's share of traffic (0..1), held for `hold_seconds` (unscaled)."""

    weight: float
    hold_seconds: float


@dataclass(frozen=True, slots=True)
class Strategy:
    """How traffic moves to the new version. `name` is the SAM name of a predefined
    configuration, else the canonical custom spelling (`canary:25:10m`)."""

    name: str
    kind: Kind
    percent: float = 100.0
    interval_seconds: float = 0.0

    @property
    def steps(self) -> tuple[Step, ...]:
        if self.kind == "all-at-once":
            return ()
        if self.kind == "canary":
            return (Step(self.percent / 100, self.interval_seconds),)
        # The number of whole increments below 100 %; float noise (3 x 33.4) must not add one.
        count = math.ceil(round(100 / self.percent, 9)) - 1
        return tuple(
            Step(round(self.percent * k / 100, 6), self.interval_seconds)
            for k in range(1, count + 1)
        )

    @property
    def total_seconds(self) -> float:
        """Unscaled time from the first shift to the new version holding everything."""
        return sum(step.hold_seconds for step in self.steps)


class StrategyInvalid(ValueError):
    """The text names no predefined configuration and is no valid custom one."""


def _predefined() -> dict[str, Strategy]:
    table = [
        Strategy("Canary10Percent5Minutes", "canary", 10, 5 * 60),
        Strategy("Canary10Percent10Minutes", "canary", 10, 10 * 60),
        Strategy("Canary10Percent15Minutes", "canary", 10, 15 * 60),
        Strategy("Canary10Percent30Minutes", "canary", 10, 30 * 60),
        Strategy("Linear10PercentEvery1Minute", "linear", 10, 60),
        Strategy("Linear10PercentEvery2Minutes", "linear", 10, 2 * 60),
        Strategy("Linear10PercentEvery3Minutes", "linear", 10, 3 * 60),
        Strategy("Linear10PercentEvery10Minutes", "linear", 10, 10 * 60),
        Strategy("AllAtOnce", "all-at-once"),
    ]
    return {strategy.name: strategy for strategy in table}


PREDEFINED: dict[str, Strategy] = _predefined()

_BY_LOWER = {name.lower(): strategy for name, strategy in PREDEFINED.items()} | {
    (CODEDEPLOY_PREFIX + name).lower(): strategy for name, strategy in PREDEFINED.items()
}

_CUSTOM = re.compile(
    r"^(?P<kind>canary|linear):(?P<percent>\d+(?:\.\d+)?)%?:(?P<interval>\d+(?:\.\d+)?)(?P<unit>[smh]?)$"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "": 60, "h": 3600}


def parse_strategy(text: str) -> Strategy:
    """The strategy `text` names: a SAM name (`Canary10Percent5Minutes`), a CodeDeploy name
    (`CodeDeployDefault.LambdaCanary10Percent5Minutes`) or the custom syntax of the module
    docstring. Raises StrategyInvalid saying what is accepted."""
    key = text.strip().lower()
    found = _BY_LOWER.get(key)
    if found is not None:
        return found
    if key in ("all-at-once", "allatonce", "all_at_once"):
        return PREDEFINED["AllAtOnce"]
    match = _CUSTOM.match(key)
    if match is None:
        raise StrategyInvalid(
            f"unknown strategy {text!r}: expected a predefined configuration "
            f"({', '.join(PREDEFINED)}, with or without the {CODEDEPLOY_PREFIX} prefix), "
            "or canary:PERCENT:INTERVAL, linear:PERCENT:INTERVAL (e.g. canary:25:10m, "
            "linear:20:90s), all-at-once"
        )
    percent = float(match["percent"])
    if not 0 < percent < 100:
        raise StrategyInvalid(f"strategy {text!r}: PERCENT must be above 0 and below 100")
    interval = float(match["interval"]) * _UNIT_SECONDS[match["unit"]]
    if interval <= 0:
        raise StrategyInvalid(f"strategy {text!r}: INTERVAL must be above 0")
    kind: Kind = "canary" if match["kind"] == "canary" else "linear"
    canonical = f"{kind}:{_number(percent)}:{_interval_text(interval)}"
    return Strategy(canonical, kind, percent, interval)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _interval_text(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{_number(seconds / 3600)}h"
    if seconds % 60 == 0:
        return f"{_number(seconds / 60)}m"
    return f"{_number(seconds)}s"
