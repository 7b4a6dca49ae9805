"""decide()'s ``capability`` rule, one table row per case, and ``capability_fallback`` after a refusal."""

from __future__ import annotations

import pytest

from sdk.capabilities import Lacks
from sdk.decide import CategoryVerdict, capability_fallback, decide
from sdk.decision import TaskGuess
from sdk.policy import RouteConfig

CATS = {
    "reverse": CategoryVerdict("safe", 0.0, -0.02, 0.01),
    "add": CategoryVerdict("unsafe", 0.40, 0.30, 0.50),
    "sort": CategoryVerdict("uncertain", 0.03, -0.01, 0.08),
}


def route(**changes) -> RouteConfig:
    base = {"student": "s", "frontier": "f", "tolerance": {"max_loss": 0.05, "confidence": 0.9}}
    return RouteConfig.model_validate({**base, **changes})


def rule(task: str) -> TaskGuess:
    return TaskGuess(task, "rule", 1.0, rule=f"^{task}:")


S, F = "student", "frontier"
FB_S = {"fallback": {"frontier_error": "student"}}
NO_FB = {"fallback": {"student_error": "none"}}
STUDENT_NO_TOOLS = Lacks(student=("tools",))
FRONTIER_NO_TOOLS = Lacks(frontier=("tools",))
NEITHER = Lacks(student=("tools",), frontier=("tools",))

# id, route changes, task, lacks, unavailable, -> side, rule, lacking, a piece of the reason
# fmt: off
TABLE = [
    ("safe task needing tools -> frontier", {}, "reverse", STUDENT_NO_TOOLS, (), F, "capability", ("tools",),
     "needs tools, which student 's' does not support"),
    ("the first choice is kept in the reason", {}, "reverse", STUDENT_NO_TOOLS, (), F, "capability",
     ("tools",), "first choice student: task 'reverse' is safe"),
    ("several needs are named", {}, "reverse", Lacks(student=("vision", "context")), (), F, "capability",
     ("vision", "context"), "needs vision, context"),
    ("a capability beats a pin to the student", {"pin": {"reverse": S}}, "reverse", STUDENT_NO_TOOLS, (),
     F, "capability", ("tools",), "pinned to student"),
    ("student_error none does not stop it: no failure", NO_FB, "reverse", STUDENT_NO_TOOLS, (), F,
     "capability", ("tools",), "does not support"),
    ("frontier chosen anyway -> no change", {}, "add", STUDENT_NO_TOOLS, (), F, "verdict", (), "is unsafe"),
    ("neither side serves it -> first choice", {}, "reverse", NEITHER, (), S, "verdict", (), "is safe"),
    ("frontier lacks, student has, default policy -> stays", {}, "sort", FRONTIER_NO_TOOLS, (), F,
     "uncertain", (), "straddles"),
    ("frontier lacks, fallback to student allowed", FB_S, "sort", FRONTIER_NO_TOOLS, (), S, "capability",
     ("tools",), "frontier 'f' does not support"),
    ("frontier lacks, task unsafe -> stays", FB_S, "add", FRONTIER_NO_TOOLS, (), F, "verdict", (),
     "is unsafe"),
    ("frontier lacks, pinned to frontier -> stays", {**FB_S, "pin": {"sort": F}}, "sort", FRONTIER_NO_TOOLS,
     (), F, "pin", (), "pinned to frontier"),
    ("health never moves to a side that lacks", {}, "reverse", STUDENT_NO_TOOLS, ("f",), F, "capability",
     ("tools",), "does not support"),
    ("health keeps a student whose frontier lacks", {}, "reverse", FRONTIER_NO_TOOLS, ("s",), S, "verdict",
     (), "is safe"),
    ("health moves when nothing is lacking", {}, "reverse", Lacks(), ("s",), F, "health", (), "unavailable"),
]
# fmt: on


@pytest.mark.parametrize(
    ("changes", "task", "lacks", "down", "side", "rule_", "lacking", "reason"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_capability_table(changes, task, lacks, down, side, rule_, lacking, reason):
    d = decide(
        "auto", route(**changes), rule(task), categories=CATS, lacks=lacks, unavailable=frozenset(down)
    )
    assert (d.side, d.rule, d.lacking) == (side, rule_, lacking)
    assert d.target == {S: "s", F: "f"}[side]
    assert d.reason.startswith(f"{side}: ") and reason in d.reason
    assert d.task == task and d.verdict == CATS[task].verdict  # the profile's view is kept
    assert d.fallback_from is None


def test_the_reason_reads_as_one_line():
    d = decide("auto", route(), rule("reverse"), categories=CATS, lacks=STUDENT_NO_TOOLS)
    assert d.reason == (
        "frontier: the request needs tools, which student 's' does not support "
        "(first choice student: task 'reverse' is safe (loss 0.000, upper bound 0.010 <= 0.05 at 90%))"
    )


def test_nothing_lacking_decides_as_before():
    args = ("auto", route(), rule("reverse"))
    assert decide(*args, categories=CATS, lacks=Lacks()) == decide(*args, categories=CATS)


# id, route changes, task, first side, what the other side lacks, -> side or None
# fmt: off
FALLBACK = [
    ("student refused -> frontier", {}, "reverse", S, (), F),
    ("student refused, student_error none -> still frontier", NO_FB, "reverse", S, (), F),
    ("student refused, frontier lacks it too -> none", {}, "reverse", S, ("tools",), None),
    ("frontier refused, default policy -> none", {}, "sort", F, (), None),
    ("frontier refused, fallback to student allowed", FB_S, "sort", F, (), S),
    ("frontier refused, task unsafe -> none", FB_S, "add", F, (), None),
]
# fmt: on


@pytest.mark.parametrize(
    ("changes", "task", "first", "other_lacks", "side"),
    [row[1:] for row in FALLBACK],
    ids=[row[0] for row in FALLBACK],
)
def test_capability_fallback_table(changes, task, first, other_lacks, side):
    cfg = route(**changes)
    decision = decide("auto", cfg, rule(task), categories=CATS)
    assert decision.side == first
    moved = capability_fallback(cfg, decision, "tools", other_lacks)
    if side is None:
        assert moved is None
        return
    assert moved is not None
    assert (moved.side, moved.rule, moved.lacking) == (side, "capability", ("tools",))
    assert moved.fallback_from == first[0] and moved.target == side[0]
    assert moved.reason.startswith(f"{side}: {first} '{first[0]}' cannot serve the request's tools")


def test_a_direct_model_never_falls_back():
    direct = decide("s", None, TaskGuess("unknown", "none", 0.0))
    assert capability_fallback(route(), direct, "tools", ()) is None
    assert capability_fallback(None, direct, "tools", ()) is None
