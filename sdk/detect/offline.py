"""Detection over many prompts at once, and the verdicts that hold when the detectors name the task.

**Many prompts.** :func:`detect_many` is the pipeline's rule (detectors in order, the first
guess at or above ``min_confidence`` wins, else ``unknown``) over a list of requests: the
nearest-neighbour detectors (``embeddings``, ``lexical``) embed every request still
undecided when their turn comes in batches and vote from one matrix product per block,
instead of one embedding per request. Same guesses as ``pipeline.detect`` one by one, up
to float rounding. ``bitrate route eval`` uses it.

**Detected verdicts.** A profile's category verdicts are certified on items whose category
was *given*. Live, a detector names it, and a detector's mistakes move prompts between
categories (a prompt of a category where the student loses, detected into a safe one, goes
to the student). :func:`held_out_guesses` runs the route's own detectors over the profile's
evidence, each item's wording left out of the nearest-neighbour detectors' examples (as a
new prompt of that wording would meet them: cross-fitting with one prompt per fold), and
:func:`detected_verdicts` certifies each category on the items the *detectors* put there:

============================  ===========================================================
guess came from               verdicts read from
============================  ===========================================================
``hint``, ``rule``            the profile's categories (the caller or the policy's author
                              named the task)
``embeddings``, ``lexical``   the evidence items the pipeline assigned to that task through
                              those detectors, with their own recorded losses: the interval
                              of what detection actually sends there (a category no item was
                              detected into has no verdict: it goes where ``uncertain`` goes)
============================  ===========================================================

Items the pipeline leaves ``unknown`` belong to no category: low-confidence detections go
where ``unknown`` goes, in calibration as live. The interval is the profile's (Newcombe's
paired interval for 0/1 scores, else a paired bootstrap), widened by the design effect over
items that share a prompt.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sdk.decide import CategoryVerdict
from sdk.decision import TaskGuess, Verdict
from sdk.detect.base import Detector, last_user_text
from sdk.detect.pipeline import UNKNOWN, DetectionPipeline, LazyDetector
from sdk.profile import Profile
from sdk.protocol import ChatMessage, ChatRequest
from sdk.stats import (
    bootstrap_mean_interval,
    cluster_widened,
    design_effect,
    newcombe_paired_interval,
    paired_counts,
)

__all__ = [
    "NEAREST_SOURCES",
    "DetectedCalibration",
    "EvidenceDetection",
    "crossfit_verdicts",
    "detect_many",
    "detected_verdicts",
    "held_out_guesses",
]

NEAREST_SOURCES = frozenset({"embeddings", "lexical"})
"""Guess sources whose verdicts come from the detected evidence (the learnt detectors)."""


@runtime_checkable
class _Batched(Protocol):
    """A detector that can guess many texts at once (``sdk.detect.embedding.NearestVote``)."""

    name: str
    texts: list[str]

    def guess_many(self, texts: Sequence[str]) -> list[TaskGuess | None]: ...

    def held_out_guesses(self) -> list[TaskGuess | None]: ...


def _built(detector: Detector) -> Detector | None:
    return detector.get() if isinstance(detector, LazyDetector) else detector


def _batched(detector: Detector) -> _Batched | None:
    return detector if isinstance(detector, _Batched) else None


def _run(
    pipeline: DetectionPipeline,
    n: int,
    one: Callable[[Detector, int], TaskGuess | None],
    many: Callable[[_Batched, list[int]], list[TaskGuess | None]],
) -> list[TaskGuess]:
    """The pipeline's rule over ``n`` items: ``one(detector, i)`` asks a detector about item
    ``i``; ``many(detector, items)`` asks a batched detector about all the items at once."""
    out = [UNKNOWN] * n
    pending = list(range(n))
    for detector in pipeline.detectors:
        built = _built(detector)
        if built is None or not pending:
            continue
        batched = _batched(built)
        guesses = many(batched, pending) if batched is not None else [one(built, i) for i in pending]
        still = []
        for i, guess in zip(pending, guesses, strict=True):
            if guess is not None and guess.task != "unknown" and guess.confidence >= pipeline.min_confidence:
                out[i] = guess
            else:
                still.append(i)
        pending = still
    return out


def detect_many(
    pipeline: DetectionPipeline, requests: Sequence[ChatRequest], hints: Sequence[str | None] | None = None
) -> list[TaskGuess]:
    """``[pipeline.detect(r, h) for r, h in zip(requests, hints)]``, the learnt detectors batched."""
    hints = hints if hints is not None else [None] * len(requests)
    texts = [last_user_text(r) for r in requests]
    return _run(
        pipeline,
        len(requests),
        lambda d, i: d.detect(requests[i], hints[i]),
        lambda d, items: d.guess_many([texts[i] for i in items]),
    )


def held_out_guesses(pipeline: DetectionPipeline, prompts: Sequence[str]) -> list[TaskGuess]:
    """What the route's pipeline assigns to each evidence prompt when that prompt's own wording
    is not among the learnt detectors' examples. ``prompts`` must be the evidence the detectors
    were built from (their examples); a detector built from other examples is asked plainly."""
    requests = [ChatRequest(model="-", messages=[ChatMessage(role="user", content=p)]) for p in prompts]
    held: dict[int, list[TaskGuess | None]] = {}

    def many(detector: _Batched, items: list[int]) -> list[TaskGuess | None]:
        if id(detector) not in held:
            held[id(detector)] = _held_out(detector, prompts)
        return [held[id(detector)][i] for i in items]

    return _run(pipeline, len(prompts), lambda d, i: d.detect(requests[i], None), many)


def _held_out(detector: _Batched, prompts: Sequence[str]) -> list[TaskGuess | None]:
    if detector.texts != [p for p in prompts if p.strip()]:
        return detector.guess_many(list(prompts))
    own = iter(detector.held_out_guesses())
    return [next(own) if p.strip() else None for p in prompts]


def _interval(
    student: list[float], frontier: list[float], groups: list[Hashable], confidence: float
) -> tuple[float, float, float]:
    diffs = [f - s for s, f in zip(student, frontier, strict=True)]
    loss = math.fsum(diffs) / len(diffs)
    counts = paired_counts(student, frontier)
    if counts is None:
        low, high = bootstrap_mean_interval(diffs, confidence, groups=groups)
        return loss, low, high
    low, high = newcombe_paired_interval(counts, confidence)
    low, high = cluster_widened((low, high), loss, design_effect(diffs, groups))
    return loss, low, high


def detected_verdicts(
    guesses: Sequence[TaskGuess],
    student: Sequence[float],
    frontier: Sequence[float],
    prompts: Sequence[str],
    *,
    max_loss: float,
    confidence: float,
    sources: frozenset[str] = NEAREST_SOURCES,
    safe_at: float | None = None,
    among: Sequence[bool] | None = None,
) -> dict[str, CategoryVerdict]:
    """Per task, the verdict on the evidence items whose guess came from ``sources`` and named
    that task (their recorded losses; items sharing a prompt count as correlated): ``safe`` when
    the interval's upper end is within ``safe_at`` (default ``max_loss``), ``unsafe`` when its
    lower end is above ``max_loss``. ``among`` restricts the items (a mask)."""
    cells: dict[str, list[int]] = {}
    for i, guess in enumerate(guesses):
        if guess.source in sources and guess.task != "unknown" and (among is None or among[i]):
            cells.setdefault(guess.task, []).append(i)
    out = {}
    bar = max_loss if safe_at is None else safe_at
    for task, items in sorted(cells.items()):
        s, f = [student[i] for i in items], [frontier[i] for i in items]
        loss, low, high = _interval(s, f, [prompts[i] for i in items], confidence)
        name: Verdict = "safe" if high <= bar else "unsafe" if low > max_loss else "uncertain"
        out[task] = CategoryVerdict(name, loss, low, high)
    return out


def crossfit_verdicts(
    guesses: Sequence[TaskGuess],
    student: Sequence[float],
    frontier: Sequence[float],
    prompts: Sequence[str],
    *,
    max_loss: float,
    confidence: float,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, CategoryVerdict]:
    """:func:`detected_verdicts`, cross-fitted as per-prompt thresholds are
    (``sdk.estimate.crossfit_calibrate``): the evidence's prompts are dealt into ``folds``; each
    fold's items go to the student when the *other* folds certify their detected task safe;
    those picks, pooled, must have a loss interval within ``max_loss``. A task is certified
    ``safe`` at ``max_loss``, else at 80%, 60%... of it, the first bar the pooled check passes
    at (none: no detected task is safe). A verdict chosen and checked on the same items
    over-promises: with a few tasks, one looks safe by luck."""
    keys = sorted(set(prompts))
    random.Random(seed).shuffle(keys)
    fold_of = {key: i % folds for i, key in enumerate(keys)}
    fold = [fold_of[p] for p in prompts]

    def at(bar: float, among: Sequence[bool] | None = None) -> dict[str, CategoryVerdict]:
        return detected_verdicts(
            guesses, student, frontier, prompts, max_loss=max_loss, confidence=confidence, safe_at=bar,
            among=among,
        )  # fmt: skip

    for share in (1.0, 0.8, 0.6, 0.4, 0.2):
        sent: list[int] = []
        for k in range(folds):
            rest = at(max_loss * share, [f != k for f in fold])
            sent += [i for i, g in enumerate(guesses) if fold[i] == k and _safe_in(rest, g)]
        if not sent:
            continue
        _loss, _low, high = _interval(
            [student[i] for i in sent], [frontier[i] for i in sent], [prompts[i] for i in sent], confidence
        )
        if high <= max_loss:
            return at(max_loss * share)
    return at(-math.inf)


def _safe_in(verdicts: Mapping[str, CategoryVerdict], guess: TaskGuess) -> bool:
    found = verdicts.get(guess.task) if guess.source in NEAREST_SOURCES else None
    return found is not None and found.verdict == "safe"


@dataclass
class DetectedCalibration:
    """A route's detection measured on its own evidence (see the module docstring)."""

    guesses: list[TaskGuess]
    """The held-out guess per evidence item, in evidence order."""
    verdicts: dict[str, CategoryVerdict]
    """Verdicts for tasks named by the learnt detectors (:data:`NEAREST_SOURCES`)."""
    accuracy: float
    """Share of evidence items whose guess is their labelled category."""
    undetected: float
    """Share of evidence items left ``unknown``."""
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    """``confusion[label][guess]``: how many items of each labelled category went where."""
    _joined: tuple[Mapping[str, CategoryVerdict], dict[str, CategoryVerdict]] | None = field(
        default=None, repr=False
    )

    @classmethod
    def measure(
        cls,
        pipeline: DetectionPipeline,
        labels: Sequence[str],
        prompts: Sequence[str],
        student: Sequence[float],
        frontier: Sequence[float],
        *,
        max_loss: float,
        confidence: float,
    ) -> DetectedCalibration:
        """Run :func:`held_out_guesses` over the evidence and certify what it detected."""
        guesses = held_out_guesses(pipeline, prompts)
        verdicts = crossfit_verdicts(
            guesses, student, frontier, prompts, max_loss=max_loss, confidence=confidence
        )
        confusion: dict[str, dict[str, int]] = {}
        for label, guess in zip(labels, guesses, strict=True):
            row = confusion.setdefault(label, {})
            row[guess.task] = row.get(guess.task, 0) + 1
        n = max(len(labels), 1)
        hits = sum(g.task == label for g, label in zip(guesses, labels, strict=True))
        undetected = sum(g.task == "unknown" for g in guesses)
        return cls(guesses, verdicts, hits / n, undetected / n, confusion)

    def verdicts_for(
        self, guess: TaskGuess, labelled: Mapping[str, CategoryVerdict]
    ) -> Mapping[str, CategoryVerdict]:
        """The verdicts a guess is read against: for a learnt detector's guess, the detected ones
        (:meth:`joined` with ``labelled``); the profile's own (``labelled``) for a hint or a rule."""
        if guess.source not in NEAREST_SOURCES:
            return labelled
        if self._joined is None or self._joined[0] is not labelled:
            self._joined = (labelled, self.joined(labelled))
        return self._joined[1]

    def joined(self, labelled: Mapping[str, CategoryVerdict]) -> dict[str, CategoryVerdict]:
        """The detected verdicts, a detected ``safe`` kept only where the task's own (labelled)
        verdict is ``safe`` too (else ``uncertain``): the detected set's check covers what
        detection mixes in, the labelled one what a small detected set certifies by luck."""
        out = {}
        for task, found in self.verdicts.items():
            own = labelled.get(task)
            demoted = found.verdict == "safe" and (own is None or own.verdict != "safe")
            out[task] = CategoryVerdict("uncertain", found.loss, found.low, found.high) if demoted else found
        return out


class EvidenceDetection:
    """A route's detection measured on its own evidence, on first need (then kept; thread-safe).

    Nothing is measured for a route without evidence or without a learnt detector in its
    ``tasks.detect``: then every guess is read against the profile's own verdicts."""

    def __init__(
        self, pipeline: DetectionPipeline, profile: Profile | None, max_loss: float, confidence: float
    ):
        self.pipeline = pipeline
        self.evidence = list(profile.evidence or []) if profile is not None else []
        self.max_loss = max_loss
        self.confidence = confidence
        self._learnt = any(getattr(d, "name", "") in NEAREST_SOURCES for d in pipeline.detectors)
        self._lock = threading.Lock()
        self._measured: DetectedCalibration | None = None

    @property
    def active(self) -> bool:
        """Whether there is anything to measure (evidence, and a learnt detector)."""
        return bool(self.evidence) and self._learnt

    def measured(self) -> DetectedCalibration | None:
        """The measurement (made now if needed), or ``None`` when not :attr:`active`."""
        if not self.active:
            return None
        with self._lock:
            if self._measured is None:
                items = self.evidence
                self._measured = DetectedCalibration.measure(
                    self.pipeline,
                    [i.category for i in items],
                    [i.prompt for i in items],
                    [i.student for i in items],
                    [i.frontier for i in items],
                    max_loss=self.max_loss,
                    confidence=self.confidence,
                )
            return self._measured

    def warm(self) -> None:
        """Measure now (the engine does this at start, off the event loop)."""
        self.measured()

    def verdicts_for(
        self, guess: TaskGuess, labelled: Mapping[str, CategoryVerdict]
    ) -> Mapping[str, CategoryVerdict]:
        """The verdicts ``guess`` is read against (see :meth:`DetectedCalibration.verdicts_for`)."""
        if guess.source not in NEAREST_SOURCES:
            return labelled
        measured = self.measured()
        return measured.verdicts_for(guess, labelled) if measured is not None else labelled

    def labels(self) -> list[str] | None:
        """The task the pipeline gives each evidence item (``unknown`` when none), or ``None``
        when nothing is measured (then the evidence's own categories stand)."""
        measured = self.measured()
        return [g.task for g in measured.guesses] if measured is not None else None
