"""decide()'s ``live`` rule: a category the live monitor demoted goes where ``uncertain`` goes, and
the reason names the live loss interval and the grader. One table row per case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sdk.capabilities import Lacks
from sdk.decide import CategoryVerdict, LiveDemotion, decide, fallback_decision
from sdk.decision import TaskGuess
from sdk.policy import RouteConfig

CATS = {
    "reverse": CategoryVerdict("safe", 0.0, -0.02, 0.01),
    "add": CategoryVerdict("unsafe", 0.40, 0.30, 0.50),
}
DEMOTED = LiveDemotion(
    since=1_700_000_000.0,
    loss=0.31,
    low=0.18,
    high=0.44,
    confidence=0.9,
    grader="agreement:normalised",
    n=120,
)


@dataclass(frozen=True)
class Est:
    loss: float
    verdict: str


def route(**changes: Any) -> RouteConfig:
    base = {"student": "s", "frontier": "f", "tolerance": {"max_loss": 0.05, "confidence": 0.9}}
    return RouteConfig.model_validate({**base, **changes})


def rule(task: str) -> TaskGuess:
    return TaskGuess(task, "rule", 1.0, rule=f"^{task}:")


@dataclass(frozen=True)
class Row:
    id: str
    task: str
    demotion: LiveDemotion | None
    route: dict[str, Any]
    target: str
    rule: str
    estimate: Est | None = None
    lacks: Lacks = Lacks()


ROWS = [
    Row("no demotion: the profile decides", "reverse", None, {}, "s", "verdict"),
    Row("safe but demoted: uncertain side (frontier)", "reverse", DEMOTED, {}, "f", "live"),
    Row("demoted, uncertain goes to the student", "reverse", DEMOTED, {"uncertain": "student"}, "s", "live"),
    Row("demoted and not in the profile", "novel", DEMOTED, {}, "f", "live"),
    Row("a pin still wins", "reverse", DEMOTED, {"pin": {"reverse": "student"}}, "s", "pin"),
    Row(
        "demoted beats a per-prompt safe estimate",
        "reverse",
        DEMOTED,
        {"per_prompt": True},
        "f",
        "live",
        estimate=Est(0.0, "safe"),
    ),
    Row(
        "the capability rule never moves a demoted category to the student",
        "reverse",
        DEMOTED,
        {},
        "f",
        "live",
        lacks=Lacks(frontier=("tools",)),
    ),
    Row(
        "the capability rule moves it to the frontier",
        "reverse",
        DEMOTED,
        {"uncertain": "student"},
        "f",
        "capability",
        lacks=Lacks(student=("tools",)),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_live_rule(row: Row):
    decision = decide(
        "auto",
        route(**row.route),
        rule(row.task),
        categories=CATS,
        estimate=row.estimate,
        lacks=row.lacks,
        demotion=row.demotion,
    )
    assert (decision.target, decision.rule) == (row.target, row.rule)


def test_the_reason_names_the_live_interval_and_the_grader():
    decision = decide("auto", route(), rule("reverse"), categories=CATS, demotion=DEMOTED)
    assert decision.reason == (
        "frontier: live monitor demoted 'reverse' (loss 0.31, 90% [0.18, 0.44], agreement:normalised, "
        "n=120); uncertain goes to frontier"
    )
    assert (decision.verdict, decision.estimated_loss) == ("unsafe", 0.31)


def test_an_unknown_task_is_not_a_live_decision():
    unknown = TaskGuess("unknown", "none", 0.0)
    decision = decide("auto", route(unknown="student"), unknown, categories=CATS, demotion=DEMOTED)
    assert (decision.target, decision.rule) == ("s", "unknown_task")


def test_a_demoted_category_never_falls_back_to_the_student():
    config = route(fallback={"frontier_error": "student"})
    decision = decide("auto", config, rule("reverse"), categories=CATS, demotion=DEMOTED)
    assert fallback_decision(config, decision) is None
