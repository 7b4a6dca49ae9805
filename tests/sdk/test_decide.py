"""decide() is pure: one table row per rule, pin, verdict, uncertain/unknown task, health and fallback."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sdk.decide import CategoryVerdict, decide, decide_direct, fallback_decision
from sdk.decision import TaskGuess
from sdk.policy import RouteConfig
from sdk.profile import CategoryStats, Counts

CATS = {
    "reverse": CategoryVerdict("safe", 0.0, -0.02, 0.01),
    "add": CategoryVerdict("unsafe", 0.40, 0.30, 0.50),
    "sort": CategoryVerdict("uncertain", 0.03, -0.01, 0.08),
}


@dataclass
class Est:
    loss: float
    verdict: str


def route(**changes) -> RouteConfig:
    base = {"student": "s", "frontier": "f", "tolerance": {"max_loss": 0.05, "confidence": 0.9}}
    return RouteConfig.model_validate({**base, **changes})


def rule(task: str) -> TaskGuess:
    return TaskGuess(task, "rule", 1.0, rule=f"^{task}:")


S, F, UNK = "student", "frontier", TaskGuess("unknown", "none", 0.0)
FB_S = {"fallback": {"frontier_error": "student"}}  # frontier failures may go to the student
NO_FB = {"fallback": {"student_error": "none"}}  # student failures may not go to the frontier
PP = {"per_prompt": True}

# id, route changes, guess, estimate, unavailable, -> side, rule, verdict, a piece of the reason
# fmt: off
TABLE = [
    ("safe -> student", {}, rule("reverse"), None, (), S, "verdict", "safe", "is safe"),
    ("unsafe -> frontier", {}, rule("add"), None, (), F, "verdict", "unsafe", "is unsafe"),
    ("uncertain -> frontier by default", {}, rule("sort"), None, (), F, "uncertain", "uncertain",
     "straddles"),
    ("uncertain -> student when asked", {"uncertain": S}, rule("sort"), None, (), S, "uncertain", "uncertain",
     "uncertain goes to student"),
    ("task not in profile -> uncertain side", {}, rule("poetry"), None, (), F, "uncertain", "unknown",
     "not in the profile"),
    ("unknown task -> frontier by default", {}, UNK, None, (), F, "unknown_task", "unknown", "not detected"),
    ("unknown task -> student when asked", {"unknown": S}, UNK, None, (), S, "unknown_task", "unknown",
     "go to student"),
    ("pin beats a safe verdict", {"pin": {"reverse": F}}, rule("reverse"), None, (), F, "pin", "safe",
     "pinned to frontier"),
    ("pin beats an unsafe verdict", {"pin": {"add": S}}, rule("add"), None, (), S, "pin", "unsafe",
     "pinned to student"),
    ("per-prompt safe in an unsafe category", PP, rule("add"), Est(0.01, "safe"), (), S, "per_prompt", "safe",
     "estimated loss 0.010"),
    ("per-prompt unsafe in a safe category", PP, rule("reverse"), Est(0.3, "unsafe"), (), F, "per_prompt",
     "unsafe", "estimated loss 0.300"),
    ("per-prompt uncertain -> uncertain side", PP, rule("reverse"), Est(0.05, "uncertain"), (), F,
     "per_prompt", "uncertain", "uncertain"),
    ("estimate ignored unless per_prompt", {}, rule("add"), Est(0.0, "safe"), (), F, "verdict", "unsafe",
     "is unsafe"),
    ("health: student down -> frontier", {}, rule("reverse"), None, ("s",), F, "health", "safe",
     "unavailable"),
    ("health: student down, no fallback -> student", NO_FB, rule("reverse"), None, ("s",), S, "verdict",
     "safe", "is safe"),
    ("health: frontier down, fallback allowed", FB_S, rule("sort"), None, ("f",), S, "health", "uncertain",
     "unavailable"),
    ("health: frontier down, task unsafe -> stays", FB_S, rule("add"), None, ("f",), F, "verdict", "unsafe",
     "is unsafe"),
    ("health: frontier down, default policy -> stays", {}, rule("sort"), None, ("f",), F, "uncertain",
     "uncertain", "straddles"),
    ("health: both down -> first choice", {}, rule("reverse"), None, ("s", "f"), S, "verdict", "safe",
     "is safe"),
]
# fmt: on


@pytest.mark.parametrize(
    ("changes", "guess", "estimate", "down", "side", "rule_", "verdict", "reason"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decide_table(changes, guess, estimate, down, side, rule_, verdict, reason):
    cfg = route(**changes)
    d = decide("auto", cfg, guess, categories=CATS, estimate=estimate, unavailable=frozenset(down))
    assert (d.side, d.rule, d.verdict) == (side, rule_, verdict)
    assert d.target == {"student": "s", "frontier": "f"}[side]
    assert d.route == "auto" and d.task == guess.task and d.task_source == guess.source
    assert d.reason.startswith(f"{side}: ") and reason in d.reason
    assert "\n" not in d.reason
    assert d.fallback_from is None and d.escalated is False


def test_safe_reason_reads_like_the_spec():
    d = decide("auto", route(), rule("reverse"), categories=CATS)
    assert d.reason == "student: task 'reverse' is safe (loss 0.000, upper bound 0.010 <= 0.05 at 90%)"
    assert d.estimated_loss == 0.0


def test_direct_model_is_not_routed():
    d = decide("f", None, TaskGuess("unknown", "none", 0.0), categories=CATS, unavailable=frozenset({"f"}))
    assert d == decide_direct("f")
    assert (d.side, d.target, d.rule) == ("direct", "f", "direct")


def test_decide_is_pure_same_inputs_same_output():
    args = ("auto", route(), rule("sort"))
    assert decide(*args, categories=CATS) == decide(*args, categories=CATS)


# fmt: off
FALLBACK = [
    ("student error -> frontier (default)", {}, "reverse", S, F),
    ("student error, fallback off", NO_FB, "reverse", S, None),
    ("frontier error -> none (default)", {}, "add", F, None),
    ("frontier error -> student when allowed", FB_S, "sort", F, S),
    ("frontier error, task unsafe -> none", FB_S, "add", F, None),
    ("frontier error, task pinned to frontier -> none", {**FB_S, "pin": {"reverse": F}}, "reverse", F, None),
]
# fmt: on


@pytest.mark.parametrize(
    ("changes", "task", "first", "then"), [r[1:] for r in FALLBACK], ids=[r[0] for r in FALLBACK]
)
def test_fallback_table(changes, task, first, then):
    cfg = route(**changes)
    d = decide("auto", cfg, rule(task), categories=CATS)
    assert d.side == first
    other = fallback_decision(cfg, d, why="failed (backend_timeout)")
    if then is None:
        assert other is None
        return
    assert (other.side, other.target, other.fallback_from) == (then, getattr(cfg, then), d.target)
    assert other.reason.startswith(f"{then}: {first} '{d.target}' failed (backend_timeout)")


def test_direct_calls_never_fall_back():
    assert fallback_decision(None, decide_direct("f")) is None


def test_category_verdict_reads_profile_stats_at_the_routes_tolerance():
    # 50 items, 2 breaks: loss 0.04; safe at 0.20, unsafe at nothing, uncertain at 0.05
    stats = CategoryStats(
        n=50, student_accuracy=0.94, frontier_accuracy=0.98, loss=0.04, loss_low=-0.01, loss_high=0.13,
        confidence=0.9, interval="newcombe", breaks=0.04, fixes=0.0, verdict="uncertain",
        counts=Counts(both=47, breaks=2, fixes=0, neither=1),
    )  # fmt: skip
    assert CategoryVerdict.from_stats(stats, 0.20, 0.9).verdict == "safe"
    assert CategoryVerdict.from_stats(stats, 0.05, 0.9).verdict == "uncertain"
    cv = CategoryVerdict.from_stats(stats, 0.05, 0.5)
    assert cv.high < stats.loss_high and cv.loss == 0.04
