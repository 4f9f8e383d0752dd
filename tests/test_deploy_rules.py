"""The pure rules of gradual deployments: every CodeDeploy predefined Lambda configuration under
its CodeDeploy and its SAM name, and the custom canary/linear syntax, as the steps they make;
when a step's counts fire an alarm."""

from __future__ import annotations

import pytest

from edge.lambda_service.deploy_record import Sample, Thresholds, alarm_reason
from edge.lambda_service.strategies import PREDEFINED, StrategyInvalid, parse_strategy

MINUTE = 60.0


def _linear(minutes: float) -> list[tuple[float, float]]:
    return [(k / 10, minutes * MINUTE) for k in range(1, 10)]


# (SAM name, steps as (new version's weight, hold seconds)); CodeDeploy: 10 % first, the rest
# after the interval (canary); +10 % every interval until 100 % (linear).
PREDEFINED_STEPS = [
    pytest.param("Canary10Percent5Minutes", [(0.1, 5 * MINUTE)], id="canary-5"),
    pytest.param("Canary10Percent10Minutes", [(0.1, 10 * MINUTE)], id="canary-10"),
    pytest.param("Canary10Percent15Minutes", [(0.1, 15 * MINUTE)], id="canary-15"),
    pytest.param("Canary10Percent30Minutes", [(0.1, 30 * MINUTE)], id="canary-30"),
    pytest.param("Linear10PercentEvery1Minute", _linear(1), id="linear-1"),
    pytest.param("Linear10PercentEvery2Minutes", _linear(2), id="linear-2"),
    pytest.param("Linear10PercentEvery3Minutes", _linear(3), id="linear-3"),
    pytest.param("Linear10PercentEvery10Minutes", _linear(10), id="linear-10"),
    pytest.param("AllAtOnce", [], id="all-at-once"),
]


@pytest.mark.parametrize(("sam_name", "steps"), PREDEFINED_STEPS)
def test_predefined_by_sam_and_codedeploy_name(
    sam_name: str, steps: list[tuple[float, float]]
) -> None:
    for text in (sam_name, f"CodeDeployDefault.Lambda{sam_name}", sam_name.lower()):
        strategy = parse_strategy(text)
        assert strategy.name == sam_name
        assert [(s.weight, s.hold_seconds) for s in strategy.steps] == steps


def test_every_predefined_configuration_is_in_the_table() -> None:
    assert {p.values[0] for p in PREDEFINED_STEPS} == set(PREDEFINED)


@pytest.mark.parametrize(
    ("text", "name", "steps"),
    [
        pytest.param("canary:25:10m", "canary:25:10m", [(0.25, 600.0)], id="canary-minutes"),
        pytest.param("Canary:5%:90s", "canary:5:90s", [(0.05, 90.0)], id="percent-sign-seconds"),
        pytest.param("canary:50:1h", "canary:50:1h", [(0.5, 3600.0)], id="hours"),
        pytest.param("canary:10:3", "canary:10:3m", [(0.1, 180.0)], id="bare-number-is-minutes"),
        pytest.param(
            "linear:20:2m",
            "linear:20:2m",
            [(0.2, 120.0), (0.4, 120.0), (0.6, 120.0), (0.8, 120.0)],
            id="linear-even",
        ),
        pytest.param(
            "linear:30:1m",
            "linear:30:1m",
            [(0.3, 60.0), (0.6, 60.0), (0.9, 60.0)],
            id="linear-last-step-below-100",
        ),
        pytest.param("linear:50:30s", "linear:50:30s", [(0.5, 30.0)], id="linear-half"),
        pytest.param("all-at-once", "AllAtOnce", [], id="all-at-once-custom-spelling"),
    ],
)
def test_custom_syntax(text: str, name: str, steps: list[tuple[float, float]]) -> None:
    strategy = parse_strategy(text)
    assert strategy.name == name
    assert [(s.weight, s.hold_seconds) for s in strategy.steps] == steps


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Canary10Percent6Minutes", id="not-predefined"),
        pytest.param("canary:0:5m", id="zero-percent"),
        pytest.param("canary:100:5m", id="hundred-percent"),
        pytest.param("linear:10:0m", id="zero-interval"),
        pytest.param("linear:10:5d", id="unknown-unit"),
        pytest.param("canary:10", id="no-interval"),
        pytest.param("", id="empty"),
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(StrategyInvalid):
        parse_strategy(text)


# Durations as cumulative histogram buckets (upper bound in seconds, count).
FAST = ((0.05, 100.0), (0.1, 100.0), (0.5, 100.0), (1.0, 100.0), (float("inf"), 100.0))
SLOW = ((0.05, 0.0), (0.1, 0.0), (0.5, 0.0), (1.0, 100.0), (float("inf"), 100.0))


@pytest.mark.parametrize(
    ("step", "thresholds", "fires"),
    [
        pytest.param(Sample(100, 5), Thresholds(), None, id="error-rate-at-the-limit"),
        pytest.param(Sample(100, 6), Thresholds(), "error rate 6.0%", id="error-rate-over"),
        pytest.param(Sample(19, 19), Thresholds(), None, id="too-few-invocations-to-judge"),
        pytest.param(
            Sample(3, 3), Thresholds(min_invocations=0), "error rate 100.0%", id="min-zero"
        ),
        pytest.param(Sample(100, 90), Thresholds(max_error_rate=None), None, id="rate-off"),
        pytest.param(Sample(0, 0, 1), Thresholds(max_throttles=0), "1 throttles", id="throttle"),
        pytest.param(Sample(0, 0, 5), Thresholds(), None, id="throttles-off-by-default"),
        pytest.param(
            Sample(100, 0, 0, SLOW), Thresholds(max_p99_ms=500), "p99 duration 995 ms", id="p99"
        ),
        pytest.param(Sample(100, 0, 0, FAST), Thresholds(max_p99_ms=500), None, id="p99-fast"),
    ],
)
def test_alarms(step: Sample, thresholds: Thresholds, fires: str | None) -> None:
    reason = alarm_reason(step, thresholds)
    if fires is None:
        assert reason is None
    else:
        assert reason is not None
        assert fires in reason


def test_counts_over_a_step_survive_a_counter_reset() -> None:
    before = Sample(50, 5, 1, ((0.1, 40.0), (float("inf"), 50.0)))
    assert Sample(80, 6, 1, ((0.1, 60.0), (float("inf"), 80.0))).since(before) == Sample(
        30, 1, 0, ((0.1, 20.0), (float("inf"), 30.0))
    )
    # The process that counted restarted: its counters start from zero again.
    assert Sample(7, 1).since(before) == Sample(7, 1, 0)
