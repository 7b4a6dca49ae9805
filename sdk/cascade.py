"""The cascade: the student answers first, and its own confidence decides whether its answer stands.

Routers that read only the prompt sit near the category average (the "routing plateau");
the signal they lack is the student's answer. A route with ``cascade:`` lets the student
answer the requests it would otherwise send to the frontier, asks it for token
log-probabilities, and keeps the answer when the student was confident enough
(FrugalGPT, Chen et al. 2023; AutoMix, Madaan et al. 2023):

=========== ===========================================================================
step        what happens
=========== ===========================================================================
applies     the route has ``cascade:``; the request is not streamed; ``decide()`` sent it to
            the frontier by rule ``verdict``, ``uncertain`` or ``unknown_task`` (never a pin,
            a live demotion, a capability or a health move); the student lacks nothing the
            request needs; the route's evidence calibrated a threshold (:class:`CascadeGate`)
kept        the answer's score is at or below the threshold: the student's answer is
            returned (side ``student``, rule ``cascade``)
escalated   otherwise the frontier answers (side ``frontier``, rule ``cascade``,
            ``escalated``); also when the student fails or returns no log-probabilities
=========== ===========================================================================

**Score** (higher: the frontier is needed more), by the route's ``cascade.signal``:
``mean_logprob`` scores ``-mean``, ``min_logprob`` scores ``-min`` (the least likely token),
``combined`` a linear model ``b0 + b1 mean + b2 min + b3 task_loss`` of the loss ``f - s``,
least squares on the evidence (``task_loss``: the loss of the task the request was detected
as, the evidence's overall loss for an unknown task).

**Calibration** (``sdk.cascade_fit``): every evidence item is routed as category routing
would route it, its task as the route's detectors assign it (``sdk.detect.offline``); items
that go to the student anyway count as always kept, items pinned to the frontier are left
out, and every other item is scored on its recorded confidence. The threshold is the largest
one whose student-routed items (always-kept plus kept) have a loss interval within
``max_loss`` at the route's confidence, cross-fitted over the evidence's prompts exactly as
per-prompt thresholds are (``sdk.estimate.crossfit_calibrate``; the combined model refitted on
each fold's complement). Without per-item confidence in the profile there is no threshold and
the route routes as if it had no cascade (``route explain`` notes why).

**The price.** A kept answer costs one student call instead of a frontier call. An escalated
request costs a student call *and* a frontier call, and waits for both in turn: the
cascade's latency is the student's answer time on top of the frontier's for every request it
escalates. Streams are not cascaded (the student's answer would have to be held back whole).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sdk.backends import Backend
from sdk.cascade_config import CascadeConfig, CascadeSignal
from sdk.decide import CategoryVerdict
from sdk.decision import Decision, TaskGuess
from sdk.detect.offline import EvidenceDetection
from sdk.errors import BackendError
from sdk.policy import RouteConfig
from sdk.profile import Profile, StudentConfidence
from sdk.protocol import ChatCompletion, ChatRequest

__all__ = [
    "CASCADED_RULES",
    "CascadeGate",
    "cascade_answer",
    "cascade_gate",
    "confidence_of",
    "features",
]

T = TypeVar("T")

CASCADED_RULES = frozenset({"verdict", "uncertain", "unknown_task"})
"""The ``decide()`` rules whose frontier choice a cascade may try the student on first."""

Runner = Callable[[str, Callable[[Backend], Awaitable[T]]], Awaitable[T]]
"""The engine's call of one model (circuit breaker included): ``run(target, op)``."""


def features(confidence: StudentConfidence, task_loss: float) -> tuple[float, float, float, float]:
    """The combined signal's inputs: ``(1, mean, min, task_loss)``."""
    return 1.0, confidence.mean_logprob, confidence.min_logprob, task_loss


@dataclass(frozen=True, slots=True)
class CascadeGate:
    """A route's calibrated cascade: how an answer is scored and where the threshold sits."""

    signal: CascadeSignal
    """Which score (see the module docstring)."""
    threshold: float
    """Answers scoring at or below this are kept (``-inf``: none; the evidence certified nothing)."""
    overall_loss: float
    """The evidence's mean loss: ``task_loss`` for a request whose task is unknown."""
    coef: tuple[float, ...] = ()
    """The combined signal's coefficients, for :func:`features`."""
    kept_share: float = 0.0
    """Share of the evidence's cascaded items the threshold keeps (cross-fitted)."""
    loss_high: float = 0.0
    """Upper end of the student-routed evidence's loss interval at the threshold (cross-fitted)."""

    def score(self, confidence: StudentConfidence, task_loss: float | None) -> float:
        """The answer's score: higher means the frontier is needed more."""
        if self.signal == "mean_logprob":
            return -confidence.mean_logprob
        if self.signal == "min_logprob":
            return -confidence.min_logprob
        x = features(confidence, self.overall_loss if task_loss is None else task_loss)
        return sum(c * v for c, v in zip(self.coef, x, strict=True))

    def keeps(self, confidence: StudentConfidence | None, task_loss: float | None) -> bool:
        """Whether an answer with this confidence stands (never without a confidence)."""
        return confidence is not None and self.score(confidence, task_loss) <= self.threshold

    def applies(self, decision: Decision, student_lacks: tuple[str, ...] = ()) -> bool:
        """Whether the student may answer first (see the module docstring's table)."""
        cascaded = decision.side == "frontier" and decision.rule in CASCADED_RULES
        return cascaded and not student_lacks and self.threshold > float("-inf")


def confidence_of(completion: ChatCompletion) -> StudentConfidence | None:
    """The first choice's token log-probabilities as a confidence (``None`` when absent)."""
    choice = completion.choices[0] if completion.choices else None
    tokens = choice.logprobs.content if choice is not None and choice.logprobs is not None else None
    if not tokens:
        return None
    values = [min(0.0, t.logprob) for t in tokens]
    return StudentConfidence(
        mean_logprob=sum(values) / len(values), min_logprob=min(values), tokens=len(values)
    )


def _without_logprobs(completion: ChatCompletion) -> ChatCompletion:
    for choice in completion.choices:
        choice.logprobs = None
    return completion


async def cascade_answer(
    gate: CascadeGate,
    route: RouteConfig,
    request: ChatRequest,
    decision: Decision,
    run: Runner[ChatCompletion],
) -> tuple[ChatCompletion, Decision]:
    """Ask the student first (with log-probabilities), keep its answer when ``gate`` does, else
    ask the frontier ``decision`` named. A caller that did not ask for log-probabilities gets none."""
    asked = bool(request.logprobs)
    probe = request if asked else request.model_copy(update={"logprobs": True})
    try:
        answer = await run(route.student, lambda b: b.complete(probe))
    except BackendError as exc:
        why = f"cascade: the student failed first ({exc.code}); {decision.reason}"
        return await run(decision.target, lambda b: b.complete(request)), decision.with_(reason=why)
    confidence = confidence_of(answer)
    if gate.keeps(confidence, decision.estimated_loss):
        assert confidence is not None
        why = f"student: cascade kept its answer ({_scored(gate, confidence, decision)}) ({decision.reason})"
        kept = decision.with_(target=route.student, side="student", rule="cascade", reason=why)
        return (answer if asked else _without_logprobs(answer)), kept
    scored = _scored(gate, confidence, decision) if confidence is not None else "no log-probabilities"
    why = f"frontier: cascade escalated the student's answer ({scored}) ({decision.reason})"
    escalated = decision.with_(rule="cascade", escalated=True, reason=why)
    return await run(decision.target, lambda b: b.complete(request)), escalated


def _scored(gate: CascadeGate, confidence: StudentConfidence, decision: Decision) -> str:
    score = gate.score(confidence, decision.estimated_loss)
    return f"{gate.signal} score {score:.3f}, threshold {gate.threshold:.3f}"


class _Route(Protocol):
    """What :func:`cascade_gate` reads of the engine's per-route runtime."""

    config: RouteConfig
    detection: EvidenceDetection | None

    def verdicts_for(self, guess: TaskGuess) -> Mapping[str, CategoryVerdict]: ...


def cascade_gate(runtime: _Route, profile: Profile | None) -> CascadeGate | None:
    """The route's calibrated gate, or ``None`` without ``cascade:`` or per-item confidence."""
    config: CascadeConfig | None = runtime.config.cascade
    evidence = (profile.evidence or []) if profile is not None else []
    if config is None or not any(item.confidence is not None for item in evidence):
        return None
    from sdk.cascade_fit import fit_gate  # numpy: loaded only for a route that cascades

    measured = runtime.detection.measured() if runtime.detection is not None else None
    guesses = measured.guesses if measured is not None else [TaskGuess(i.category, "hint") for i in evidence]
    fit = fit_gate(config, runtime.config, evidence, guesses, runtime.verdicts_for)
    return CascadeGate(config.signal, *fit)
