"""Offline replay: what a route would have done on recorded outcomes, without calling any model.

Each outcome row (:class:`profiles.outcomes.OutcomeRow`; ``category`` may be left out,
then the route's detectors name the task) becomes a chat request to the
route. The route's own detection, per-prompt estimator and pure ``decide()`` pick a
side; the row's recorded score for that side is what the routed mix would have
scored. :func:`replay_report` then computes the figures ``bitrate route eval`` prints.

Every routed item also gets a **score** for RouteLLM's threshold sweep (higher means
"needs the frontier more"): the per-prompt estimate when the route uses one, else
the upper end of the category's loss interval (the route sends a category to the
student exactly when that is within ``max_loss``, so the route's own operating
point lies on the swept curve). Pinned and undetected tasks sit at the ends.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from profiles.outcomes import OutcomeRow
from profiles.router_metrics import CurvePoint, apgr, cpt, realised_loss, sweep
from sdk.cascade import CascadeGate
from sdk.decide import CategoryVerdict, decide
from sdk.decision import Decision, TaskGuess
from sdk.detect import last_user_text
from sdk.detect.offline import detect_many
from sdk.engine import RouteRuntime
from sdk.estimate import PromptEstimate
from sdk.protocol import ChatRequest

__all__ = ["ReplayReport", "RoutedItem", "replay", "replay_report", "replay_route", "route_with"]


@dataclass(frozen=True, slots=True)
class RoutedItem:
    """One replayed row: where it went, its sweep score, and the recorded scores."""

    id: str
    side: str
    """``student`` or ``frontier``."""
    score: float
    """The router's sweep score (higher: more in need of the frontier)."""
    student: float
    frontier: float
    student_cost: float | None = None
    frontier_cost: float | None = None
    decision: Decision | None = None
    prompt_key: str | None = None
    """What the row asked (its prompt, or its messages as JSON): rows with the same key are
    scored on one response (e.g. an IFEval prompt's instructions) and are not independent."""
    label: str | None = None
    """The row's own category, when it gave one (detection accuracy is measured against it)."""


Router = Callable[[OutcomeRow], tuple[Decision, float]]
"""Decides one row: ``(decision, sweep score)``."""

Progress = Callable[[int, int], None]
"""Told ``(rows done, rows in all)`` as a replay goes."""

CHUNK = 1024
"""Rows routed together: detection, embeddings and estimates are batched over a chunk."""


def route_with(runtime: RouteRuntime, *, detect: bool = False) -> Router:
    """A :data:`Router` from an engine's per-route runtime (``Engine(policy).routes()[name]``):
    its detection pipeline, category verdicts, per-prompt estimator, cascade and ``decide()``,
    one row at a time (:func:`replay_route` does the same in batches). ``detect``: let the
    detectors name the task even when the row gives its category."""

    def route_row(row: OutcomeRow) -> tuple[Decision, float]:
        request = row.request(runtime.name)
        given = row.category is not None and not detect
        guess = TaskGuess(row.category or "", "hint", 1.0) if given else runtime.pipeline.detect(request)
        estimator = runtime.estimator if guess.task != "unknown" else None
        estimate = estimator.estimate(request, guess) if estimator is not None else None
        return _decided(runtime, row, request, guess, estimate)

    return route_row


def _decided(
    runtime: RouteRuntime,
    row: OutcomeRow,
    request: ChatRequest,
    guess: TaskGuess,
    estimate: PromptEstimate | None,
) -> tuple[Decision, float]:
    """``decide()`` for one row as the engine would (the verdicts its guess is read against,
    what each side lacks), then the cascade on the row's recorded confidence."""
    lacks = runtime.capabilities.lacks(request)
    categories = runtime.verdicts_for(guess)
    decision = decide(
        runtime.name, runtime.config, guess, categories=categories, estimate=estimate, lacks=lacks
    )
    gate = runtime.cascade
    if gate is not None and gate.applies(decision, lacks.student):
        return _cascaded(gate, runtime, row, decision)
    return decision, _sweep_score(decision, categories, estimate)


def _cascaded(
    gate: CascadeGate, runtime: RouteRuntime, row: OutcomeRow, decision: Decision
) -> tuple[Decision, float]:
    confidence = row.to_outcome().confidence()
    if confidence is None:
        return decision.with_(rule="cascade", escalated=True), _END
    score = gate.score(confidence, decision.estimated_loss)
    if gate.keeps(confidence, decision.estimated_loss):
        return decision.with_(target=runtime.config.student, side="student", rule="cascade"), score
    return decision.with_(rule="cascade", escalated=True), score


_END = 1e6  # stands for "always frontier" / "always student" in the sweep


def _sweep_score(
    decision: Decision, categories: Mapping[str, CategoryVerdict], estimate: PromptEstimate | None
) -> float:
    if decision.rule in ("pin", "unknown_task"):
        return _END if decision.side == "frontier" else -_END
    if decision.rule == "per_prompt" and estimate is not None:
        return float(estimate.loss)
    category = categories.get(decision.task)
    return float(category.high) if category is not None else _END


def replay(rows: Sequence[OutcomeRow], router: Router) -> list[RoutedItem]:
    """Route every row (no model is called)."""
    return [_item(row, *router(row)) for row in rows]


def _item(row: OutcomeRow, decision: Decision, score: float) -> RoutedItem:
    return RoutedItem(
        str(row.id),
        "student" if decision.side == "student" else "frontier",
        score,
        row.student,
        row.frontier,
        row.student_cost,
        row.frontier_cost,
        decision,
        row.prompt_key(),
        row.category,
    )


def replay_route(
    rows: Sequence[OutcomeRow],
    runtime: RouteRuntime,
    *,
    detect: bool = False,
    progress: Progress | None = None,
) -> list[RoutedItem]:
    """:func:`replay` through ``route_with(runtime, detect=detect)``, batched: per chunk of rows,
    the learnt detectors embed every undecided prompt at once (``sdk.detect.offline.detect_many``)
    and the estimator scores them from one matrix product per block (``estimate_many``). Same
    decisions as row by row, up to float rounding. ``progress(done, total)`` follows it."""
    items: list[RoutedItem] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        requests = [row.request(runtime.name) for row in chunk]
        guesses = _guesses(runtime, chunk, requests, detect)
        estimates = _estimates(runtime, requests, guesses)
        for row, request, guess, estimate in zip(chunk, requests, guesses, estimates, strict=True):
            items.append(_item(row, *_decided(runtime, row, request, guess, estimate)))
        if progress is not None:
            progress(len(items), len(rows))
    return items


def _guesses(
    runtime: RouteRuntime, rows: Sequence[OutcomeRow], requests: list[ChatRequest], detect: bool
) -> list[TaskGuess]:
    asked = [i for i, row in enumerate(rows) if detect or row.category is None]
    found = iter(detect_many(runtime.pipeline, [requests[i] for i in asked]))
    wanted = set(asked)
    return [
        next(found) if i in wanted else TaskGuess(row.category or "", "hint", 1.0)
        for i, row in enumerate(rows)
    ]


def _estimates(
    runtime: RouteRuntime, requests: list[ChatRequest], guesses: list[TaskGuess]
) -> list[PromptEstimate | None]:
    estimator = runtime.estimator
    out: list[PromptEstimate | None] = [None] * len(requests)
    wanted = [i for i, guess in enumerate(guesses) if guess.task != "unknown"]
    if estimator is None or not wanted:
        return out
    vectors = estimator.embedder.embed([last_user_text(requests[i]) for i in wanted])
    for i, estimate in zip(
        wanted, estimator.estimate_many(vectors, [guesses[i].task for i in wanted]), strict=True
    ):
        out[i] = estimate
    return out


@dataclass
class ReplayReport:
    """What ``bitrate route eval`` reports (shares and qualities are fractions)."""

    n: int
    student_share: float
    quality: float
    """Mean score of the answers the routed mix gave."""
    frontier_quality: float
    student_quality: float
    oracle_quality: float
    """Mean of the better of the two scores per item."""
    realised_loss: float | None
    """Mean ``f - s`` over the student-routed items (``None`` when none)."""
    realised_loss_low: float | None
    realised_loss_high: float | None
    max_loss: float
    confidence: float
    within_tolerance: bool
    """``realised_loss <= max_loss`` (true when nothing went to the student)."""
    apgr: float | None
    cpt50: float | None
    """Smallest frontier share reaching PGR 0.5 (fraction of calls)."""
    cpt80: float | None
    cost_saved: float | None
    """Share of the all-frontier cost saved, when every row has both costs."""
    cost_routed: float | None = None
    cost_all_frontier: float | None = None
    curve: list[CurvePoint] = field(default_factory=list)
    rules: dict[str, int] = field(default_factory=dict)
    """How many rows each decision rule decided."""
    detection_accuracy: float | None = None
    """Share of the rows that give a category and were routed by detection (``route eval
    --detect``, or no hint) whose detected task is that category; ``None`` when there are none."""
    undetected_share: float | None = None
    """Share of those rows the detectors left ``unknown`` (they go where ``unknown`` goes)."""
    cascaded: int = 0
    """Rows a cascade let the student answer first (each cost a student call)."""
    cascade_kept: int = 0
    """Of those, the rows whose student answer was kept; the others also cost a frontier call."""

    def to_json(self) -> dict[str, Any]:
        """One JSON object (``route eval --json``)."""
        out = asdict(self)
        out["curve"] = [asdict(p) for p in self.curve]
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}

    def dumps(self) -> str:
        """``to_json`` as a JSON line."""
        return json.dumps(self.to_json())


def _costs(items: Sequence[RoutedItem]) -> tuple[float | None, float | None, float | None]:
    if not items or any(i.student_cost is None or i.frontier_cost is None for i in items):
        return None, None, None
    routed = math.fsum(i.student_cost if i.side == "student" else i.frontier_cost for i in items)  # type: ignore[misc]
    frontier = math.fsum(i.frontier_cost for i in items)  # type: ignore[misc]
    saved = 1.0 - routed / frontier if frontier > 0 else None
    return saved, routed, frontier


def replay_report(
    items: Sequence[RoutedItem], *, max_loss: float, confidence: float, bins: int | None = 10
) -> ReplayReport:
    """The figures of a replay: shares, qualities, realised loss against ``max_loss``, the PGR sweep."""
    if not items:
        raise ValueError("nothing replayed")
    n = len(items)
    chosen = [i.student if i.side == "student" else i.frontier for i in items]
    to_student = [i for i in items if i.side == "student"]
    keys = [i.prompt_key for i in to_student]
    check = realised_loss(
        [i.student for i in to_student],
        [i.frontier for i in to_student],
        confidence,
        groups=None if None in keys else keys,
    )
    scores = [i.score for i in items]
    curve = sweep(scores, [i.student for i in items], [i.frontier for i in items], bins=bins)
    saved, routed, frontier = _costs(items)
    rules: dict[str, int] = {}
    for item in items:
        rule = item.decision.rule if item.decision else "none"
        rules[rule] = rules.get(rule, 0) + 1
    detected = [i for i in items if i.label is not None and i.decision and i.decision.task_source != "hint"]
    hits = sum(i.decision.task == i.label for i in detected if i.decision)
    unknown = sum(i.decision.task == "unknown" for i in detected if i.decision)
    return ReplayReport(
        n=n,
        student_share=len(to_student) / n,
        quality=math.fsum(chosen) / n,
        frontier_quality=math.fsum(i.frontier for i in items) / n,
        student_quality=math.fsum(i.student for i in items) / n,
        oracle_quality=math.fsum(max(i.student, i.frontier) for i in items) / n,
        realised_loss=check.loss,
        realised_loss_low=check.low,
        realised_loss_high=check.high,
        max_loss=max_loss,
        confidence=confidence,
        within_tolerance=check.within(max_loss),
        apgr=apgr(curve),
        cpt50=cpt(curve, 0.5),
        cpt80=cpt(curve, 0.8),
        cost_saved=saved,
        cost_routed=routed,
        cost_all_frontier=frontier,
        curve=curve,
        rules=rules,
        detection_accuracy=hits / len(detected) if detected else None,
        undetected_share=unknown / len(detected) if detected else None,
        cascaded=rules.get("cascade", 0),
        cascade_kept=sum(i.side == "student" and i.decision.rule == "cascade" for i in items if i.decision),
    )
