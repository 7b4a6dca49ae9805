"""``decide()``: where one request goes and why. PURE: no I/O, no clock, no randomness.

Inputs are data: the route's configuration (or ``None`` for a model called by
name), the detected task, the profile's verdicts at the route's tolerance, an
optional per-prompt estimate, what each side lacks for this request
(:class:`~sdk.capabilities.Lacks`), and which models are unavailable now. The rules
are tried in a fixed order, each a small function that decides or passes:

========== =====================================================================
rule       fires when
========== =====================================================================
direct     the caller named a model, not a route
pin        the task is pinned to one side in the policy
unknown    the task could not be detected (goes to ``route.unknown``)
live       the live monitor demoted the task (``sdk.live``): it goes where ``uncertain`` goes,
           whatever the profile or a per-prompt estimate says
per_prompt the route uses per-prompt estimates and one is available
verdict    the profile says ``safe`` (student) or ``unsafe`` (frontier)
uncertain  the verdict is ``uncertain`` or the profile lacks the task
capability (after the above) the chosen side lacks what the request needs (tools, images,
           a JSON schema, a longer context) and the other side has it all; a move to the
           student also needs what a frontier failure would (``fallback.frontier_error:
           student``, the task neither unsafe nor pinned to the frontier)
health     (after the above) the chosen model is unavailable and fallback allows the other,
           unless the other lacks what the request needs
========== =====================================================================

``fallback_decision()`` applies the same fallback rules after a backend failure, and
``capability_fallback()`` the capability rule after a backend refused what it cannot serve.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sdk.capabilities import NOTHING, Lacks
from sdk.decision import Decision, TaskGuess, Verdict
from sdk.policy import RouteConfig

if TYPE_CHECKING:
    from sdk.profile import CategoryStats

__all__ = [
    "CategoryVerdict",
    "LiveDemotion",
    "LossEstimate",
    "capability_fallback",
    "decide",
    "decide_direct",
    "fallback_decision",
]


@dataclass(frozen=True, slots=True)
class CategoryVerdict:
    """The profile's figures for one category, read at the route's tolerance."""

    verdict: Verdict
    """``safe``, ``uncertain`` or ``unsafe`` at the route's tolerance and confidence."""
    loss: float
    """Mean quality loss (frontier minus student)."""
    low: float
    """Lower end of the loss interval at the route's confidence."""
    high: float
    """Upper end of the loss interval at the route's confidence."""

    @classmethod
    def from_stats(cls, stats: CategoryStats, max_loss: float, confidence: float) -> CategoryVerdict:
        """From a :class:`sdk.profile.CategoryStats` (``verdict_at``/``interval_at``)."""
        low, high = stats.interval_at(confidence)
        verdict = stats.verdict_at(max_loss, confidence)
        return cls(verdict, stats.loss, low, high)


@dataclass(frozen=True, slots=True)
class LiveDemotion:
    """The live monitor's demotion of one category (``sdk.live``), with the figures that made it."""

    since: float
    """When the category was demoted (Unix seconds)."""
    loss: float | None
    """Mean live loss (f - s) over the monitor's watch."""
    low: float
    """Lower end of the anytime-valid loss interval at the demotion."""
    high: float
    """Upper end of that interval."""
    confidence: float
    """The interval's two-sided level."""
    grader: str
    """The grader of the live pairs (a live figure never passes for an offline one)."""
    n: int
    """Live observations behind it."""


class LossEstimate(Protocol):
    """A per-prompt loss estimate (``sdk.estimate``); read-only, so frozen dataclasses satisfy it."""

    @property
    def loss(self) -> float:
        """Expected loss for this prompt if the student answers."""
        ...

    @property
    def verdict(self) -> Verdict:
        """The estimate's verdict at the route's tolerance."""
        ...


@dataclass(frozen=True, slots=True)
class _Inputs:
    name: str
    route: RouteConfig
    guess: TaskGuess
    category: CategoryVerdict | None
    estimate: LossEstimate | None
    lacks: Lacks = NOTHING
    demotion: LiveDemotion | None = None


@dataclass(frozen=True, slots=True)
class _Choice:
    side: str
    rule: str
    reason: str
    verdict: Verdict = "unknown"
    loss: float | None = None
    lacking: tuple[str, ...] = ()


def _pct(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _pin(x: _Inputs) -> _Choice | None:
    side = x.route.pin.get(x.guess.task)
    if side is None:
        return None
    cat = x.category
    return _Choice(
        side,
        "pin",
        f"task '{x.guess.task}' is pinned to {side}",
        cat.verdict if cat else "unknown",
        cat.loss if cat else None,
    )


def _unknown_task(x: _Inputs) -> _Choice | None:
    if x.guess.task != "unknown":
        return None
    return _Choice(
        x.route.unknown, "unknown_task", f"task not detected; unknown tasks go to {x.route.unknown}"
    )


def _live(x: _Inputs) -> _Choice | None:
    live = x.demotion
    if live is None:
        return None
    loss = "-" if live.loss is None else f"{live.loss:.2f}"
    interval = f"{_pct(live.confidence)} [{live.low:.2f}, {live.high:.2f}]"
    figures = f"loss {loss}, {interval}, {live.grader}, n={live.n}"
    why = f"live monitor demoted '{x.guess.task}' ({figures}); uncertain goes to {x.route.uncertain}"
    return _Choice(x.route.uncertain, "live", why, "unsafe", live.loss)


def _per_prompt(x: _Inputs) -> _Choice | None:
    est = x.estimate
    if not x.route.per_prompt or est is None:
        return None
    tol = x.route.tolerance
    sides = {"safe": "student", "unsafe": "frontier"}
    side = sides.get(est.verdict, x.route.uncertain)
    why = f"this prompt's estimated loss {est.loss:.3f} is {est.verdict} at {tol.max_loss:g}"
    return _Choice(
        side, "per_prompt", f"{why} ({_pct(tol.confidence)}, task '{x.guess.task}')", est.verdict, est.loss
    )


def _verdict(x: _Inputs) -> _Choice:
    tol, cat, task = x.route.tolerance, x.category, x.guess.task
    if cat is None:
        why = f"task '{task}' is not in the profile; uncertain goes to {x.route.uncertain}"
        return _Choice(x.route.uncertain, "uncertain", why)
    at = f"at {_pct(tol.confidence)}"
    if cat.verdict == "safe":
        bound = f"upper bound {cat.high:.3f} <= {tol.max_loss:g} {at}"
        why = f"task '{task}' is safe (loss {cat.loss:.3f}, {bound})"
        return _Choice("student", "verdict", why, "safe", cat.loss)
    if cat.verdict == "unsafe":
        bound = f"lower bound {cat.low:.3f} > {tol.max_loss:g} {at}"
        why = f"task '{task}' is unsafe (loss {cat.loss:.3f}, {bound})"
        return _Choice("frontier", "verdict", why, "unsafe", cat.loss)
    why = (
        f"task '{task}' is uncertain (loss {cat.loss:.3f}, interval [{cat.low:.3f}, {cat.high:.3f}] "
        f"straddles {tol.max_loss:g} {at}); uncertain goes to {x.route.uncertain}"
    )
    return _Choice(x.route.uncertain, "uncertain", why, cat.verdict, cat.loss)


_RULES: tuple[Callable[[_Inputs], _Choice | None], ...] = (_pin, _unknown_task, _live, _per_prompt, _verdict)


def _other(side: str) -> str:
    return "frontier" if side == "student" else "student"


def _student_allowed(route: RouteConfig, verdict: Verdict, task: str) -> bool:
    """May a request the frontier cannot take go to the student instead?"""
    blocked = verdict == "unsafe" or route.pin.get(task) == "frontier"
    return route.fallback.frontier_error == "student" and not blocked


def _capability(x: _Inputs, choice: _Choice) -> _Choice:
    lacking = x.lacks.of(choice.side)
    other = _other(choice.side)
    if not lacking or x.lacks.of(other):
        return choice
    if other == "student" and not _student_allowed(x.route, choice.verdict, x.guess.task):
        return choice
    model = getattr(x.route, choice.side)
    why = f"the request needs {', '.join(lacking)}, which {choice.side} '{model}' does not support"
    reason = f"{why} (first choice {choice.side}: {choice.reason})"
    return _Choice(other, "capability", reason, choice.verdict, choice.loss, lacking)


def decide_direct(name: str) -> Decision:
    """The decision for a model called by its own name: no routing."""
    return Decision(
        route=name, target=name, side="direct", rule="direct", reason=f"model '{name}' called directly"
    )


def decide(
    name: str,
    route: RouteConfig | None,
    guess: TaskGuess,
    *,
    categories: Mapping[str, CategoryVerdict] | None = None,
    estimate: LossEstimate | None = None,
    lacks: Lacks = NOTHING,
    unavailable: Set[str] = frozenset(),
    demotion: LiveDemotion | None = None,
) -> Decision:
    """Decide where request for ``name`` (a route, or a direct model when ``route`` is None) goes.

    ``categories`` holds the profile's verdicts at the route's tolerance; ``estimate`` the
    per-prompt estimate (used only when the route enables ``per_prompt``); ``lacks`` what each
    side lacks for this request; ``unavailable`` the models whose circuit is open now;
    ``demotion`` the live monitor's demotion of the request's task, if any.
    """
    if route is None:
        return decide_direct(name)
    x = _Inputs(name, route, guess, (categories or {}).get(guess.task), estimate, lacks, demotion)
    choice = _capability(x, next(c for c in (rule(x) for rule in _RULES) if c is not None))
    decision = Decision(
        route=name,
        target=getattr(route, choice.side),
        side=choice.side,  # type: ignore[arg-type]
        task=guess.task,
        task_source=guess.source,
        task_confidence=guess.confidence,
        verdict=choice.verdict,
        estimated_loss=choice.loss,
        rule=choice.rule,
        reason=f"{choice.side}: {choice.reason}",
        lacking=choice.lacking,
    )
    return _health(decision, route, unavailable, lacks)


def _health(decision: Decision, route: RouteConfig, unavailable: Set[str], lacks: Lacks) -> Decision:
    if decision.target not in unavailable or lacks.of(_other(decision.side)):
        return decision
    other = fallback_decision(route, decision, why="unavailable")
    if other is None or other.target in unavailable:
        return decision
    return other.with_(rule="health", fallback_from=None, lacking=())


def fallback_decision(
    route: RouteConfig | None, decision: Decision, *, why: str = "failed"
) -> Decision | None:
    """The decision to retry with after ``decision.target`` failed, or ``None`` when the policy
    forbids it: student -> frontier when ``fallback.student_error: frontier``; frontier ->
    student only when ``fallback.frontier_error: student``, the task is not unsafe and not
    pinned to the frontier. Direct model calls never fall back."""
    if route is None or decision.side == "direct":
        return None
    if decision.side == "student":
        if route.fallback.student_error != "frontier":
            return None
        side = "frontier"
    else:
        if not _student_allowed(route, decision.verdict, decision.task):
            return None
        side = "student"
    target = getattr(route, side)
    return decision.with_(
        target=target,
        side=side,
        fallback_from=decision.target,
        reason=f"{side}: {decision.side} '{decision.target}' {why}; fallback to {side} ({decision.reason})",
    )


def capability_fallback(
    route: RouteConfig | None, decision: Decision, need: str, other_lacks: tuple[str, ...]
) -> Decision | None:
    """The decision to retry with after ``decision.target`` refused the request for ``need`` before
    answering (:class:`~sdk.errors.Unsupported`), or ``None``: the other side must lack nothing
    (``other_lacks``), and a move to the student needs what the ``capability`` rule needs."""
    if route is None or decision.side == "direct" or other_lacks:
        return None
    side = _other(decision.side)
    if side == "student" and not _student_allowed(route, decision.verdict, decision.task):
        return None
    why = f"{decision.side} '{decision.target}' cannot serve the request's {need}"
    return decision.with_(
        target=getattr(route, side),
        side=side,
        rule="capability",
        fallback_from=decision.target,
        lacking=(need,),
        reason=f"{side}: {why}; fallback to {side} ({decision.reason})",
    )
