"""Turn per-item outcomes into a ``Profile``: the one path for ``build`` and ``import``."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from profiles.summary import summarize
from sdk.profile import (
    CategoryStats,
    EvidenceItem,
    ModelIdentity,
    Profile,
    StudentConfidence,
    SuiteInfo,
    Tolerance,
)

__all__ = ["ItemOutcome", "assemble_profile"]


@dataclass(slots=True)
class ItemOutcome:
    """One item scored for both models."""

    id: str
    """Item id, unique in the suite."""
    category: str
    """Task category."""
    prompt: str
    """Prompt text (kept as evidence)."""
    student: float
    """Student score in [0, 1]."""
    frontier: float
    """Frontier score in [0, 1]."""
    student_cost: float | None = None
    """Student cost of the call ($), if known."""
    frontier_cost: float | None = None
    """Frontier cost of the call ($), if known."""
    student_latency: float | None = None
    """Student latency (s), if known."""
    frontier_latency: float | None = None
    """Frontier latency (s), if known."""
    student_tokens: int | None = None
    """Student tokens used, if known."""
    frontier_tokens: int | None = None
    """Frontier tokens used, if known."""
    student_mean_logprob: float | None = None
    """Mean log-probability of the student's answer tokens, if recorded (its confidence)."""
    student_min_logprob: float | None = None
    """Log-probability of the student's least likely answer token, if recorded."""

    def confidence(self) -> StudentConfidence | None:
        """The student's recorded confidence, when both log-probability figures are known."""
        mean, low = self.student_mean_logprob, self.student_min_logprob
        if mean is None or low is None:
            return None
        return StudentConfidence(mean_logprob=mean, min_logprob=low)


_MEANS = (
    "student_cost",
    "frontier_cost",
    "student_latency",
    "frontier_latency",
    "student_tokens",
    "frontier_tokens",
)


def _mean_known(items: list[ItemOutcome], attr: str) -> float | None:
    """Mean of ``attr`` over the items where it is known; ``None`` when none are."""
    known = [getattr(item, attr) for item in items if getattr(item, attr) is not None]
    return math.fsum(known) / len(known) if known else None


def _category_stats(items: list[ItemOutcome], tolerance: Tolerance) -> CategoryStats:
    stats = summarize(
        [item.student for item in items],
        [item.frontier for item in items],
        max_loss=tolerance.max_loss,
        confidence=tolerance.confidence,
    )
    return stats.model_copy(update={attr: _mean_known(items, attr) for attr in _MEANS})


def assemble_profile(
    outcomes: Iterable[ItemOutcome],
    *,
    student: ModelIdentity,
    frontier: ModelIdentity,
    suite: SuiteInfo,
    tolerance: Tolerance,
    method: Literal["build", "import"],
    keep_evidence: bool = True,
    calls: dict[str, int] | None = None,
) -> Profile:
    """Summarise outcomes per category (sorted by name) into a profile.

    ``keep_evidence=False`` leaves the per-item scores and prompts out (for
    sharing). ``calls`` is the runner's call accounting, stored as given.
    """
    by_category: dict[str, list[ItemOutcome]] = defaultdict(list)
    outcomes = list(outcomes)
    for item in outcomes:
        by_category[item.category].append(item)
    if not by_category:
        raise ValueError("no outcomes to assemble")
    evidence = [
        EvidenceItem(
            id=o.id,
            category=o.category,
            prompt=o.prompt,
            student=o.student,
            frontier=o.frontier,
            confidence=o.confidence(),
        )
        for o in outcomes
    ]
    return Profile(
        created_at=datetime.now(UTC),
        method=method,
        student=student,
        frontier=frontier,
        suite=suite,
        tolerance=tolerance,
        categories={name: _category_stats(by_category[name], tolerance) for name in sorted(by_category)},
        evidence=evidence if keep_evidence else None,
        calls=dict(calls or {}),
    )
