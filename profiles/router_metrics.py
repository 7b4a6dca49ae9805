"""Router quality on recorded outcomes: RouteLLM's PGR curve, APGR and CPT, and the promise check.

Definitions follow the RouteLLM paper (Ong et al., arXiv 2406.18665) and its
evaluation code (``routellm/evals/evaluate.py`` and ``benchmarks.py``):

- A router gives each item a **score**: the higher, the more the item needs the
  frontier (ours: the estimated loss). Sweeping a threshold ``t`` and sending
  items with ``score >= t`` to the frontier traces quality against ``x``, the
  share of calls sent to the frontier.
- **PGR(x)** (performance gap recovered) ``= (quality(x) - q_student) /
  (q_frontier - q_student)``.
- **APGR** is the area under PGR over ``x`` in [0, 1]. RouteLLM discretises it
  with thresholds at the ``bins + 1`` quantile edges of the scores (``pd.qcut``
  with 10 bins, so 11 points: ``>= edge`` for each edge, ``> max`` for the last,
  which is the all-student point) and integrates with the trapezoidal rule;
  :func:`sweep` does the same (``bins=None`` uses every distinct score instead).
  A random router has APGR about 0.5; the oracle close to 1.
- **CPT(p)** (call-performance threshold) is the smallest share of frontier calls
  at which PGR reaches ``p``, read off the piecewise-linear curve (RouteLLM
  interpolates with ``np.interp``, which is the same on a monotone curve).

Shares here are fractions in [0, 1] (0.37 means 37% of calls), not percentages.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from sdk.stats import (
    bootstrap_mean_interval,
    cluster_widened,
    design_effect,
    newcombe_paired_interval,
    paired_counts,
)

__all__ = ["CurvePoint", "LossCheck", "apgr", "cpt", "realised_loss", "sweep"]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One threshold of the sweep."""

    threshold: float
    """Items with a score at or above this went to the frontier (``> threshold`` for the last point)."""
    frontier_share: float
    """x: the share of items sent to the frontier."""
    quality: float
    """Mean score of the answers the routed mix gave."""
    pgr: float | None
    """Performance gap recovered; ``None`` when both models score the same on average."""


def _pgr(quality: float, student_q: float, frontier_q: float) -> float | None:
    gap = frontier_q - student_q
    return None if abs(gap) < 1e-12 else (quality - student_q) / gap


def _thresholds(scores: np.ndarray, bins: int | None) -> np.ndarray:
    if bins is None:
        return np.unique(scores)
    return np.quantile(scores, np.linspace(0.0, 1.0, bins + 1))


def sweep(
    scores: Sequence[float], student: Sequence[float], frontier: Sequence[float], *, bins: int | None = 10
) -> list[CurvePoint]:
    """The PGR curve of a router over recorded outcomes, sorted by frontier share.

    ``scores`` must be finite; higher means "send to the frontier". The last point is
    always the all-student one (``score > max``)."""
    s, f, sc = (np.asarray(a, dtype=np.float64) for a in (student, frontier, scores))
    if not (len(s) == len(f) == len(sc)) or len(s) == 0:
        raise ValueError("need one score per item and at least one item")
    q_s, q_f = float(s.mean()), float(f.mean())
    edges = _thresholds(sc, bins)
    points = []
    for i, edge in enumerate(edges):
        # RouteLLM: ">= edge", and "> edge" at the last quantile edge (the all-student point)
        last = bins is not None and i == len(edges) - 1
        to_frontier = sc > edge if last else sc >= edge
        quality = float(np.where(to_frontier, f, s).mean())
        points.append(CurvePoint(float(edge), float(to_frontier.mean()), quality, _pgr(quality, q_s, q_f)))
    if bins is None:  # every distinct score was a ">=" threshold; add the all-student end
        points.append(CurvePoint(float(edges[-1]), 0.0, q_s, _pgr(q_s, q_s, q_f)))
    return sorted(points, key=lambda p: (p.frontier_share, p.quality))


def apgr(curve: Sequence[CurvePoint]) -> float | None:
    """Average PGR: trapezoidal area under PGR(x), divided by the x-range swept (RouteLLM's
    ``(AUC - weak_auc) / (strong_auc - weak_auc)``). ``None`` when PGR is undefined."""
    if not curve or curve[0].pgr is None:
        return None
    x = np.array([p.frontier_share for p in curve])
    y = np.array([p.pgr for p in curve], dtype=np.float64)
    span = float(x[-1] - x[0])
    if span <= 0:
        return None
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    return area / span


def cpt(curve: Sequence[CurvePoint], target: float) -> float | None:
    """The smallest frontier share at which PGR reaches ``target`` (e.g. 0.5), linearly
    interpolated between swept points; ``None`` when never reached or PGR is undefined."""
    if not curve or curve[0].pgr is None:
        return None
    prev = curve[0]
    if prev.pgr >= target:  # type: ignore[operator]
        return prev.frontier_share
    for point in curve[1:]:
        if point.pgr >= target:  # type: ignore[operator]
            rise = point.pgr - prev.pgr  # type: ignore[operator]
            frac = (target - prev.pgr) / rise if rise > 0 else 1.0  # type: ignore[operator]
            return prev.frontier_share + frac * (point.frontier_share - prev.frontier_share)
        prev = point
    return None


@dataclass(frozen=True, slots=True)
class LossCheck:
    """Realised loss on the student-routed items against the promise."""

    n: int
    """Student-routed items."""
    loss: float | None
    """Mean ``f - s`` over them (``None`` when none went to the student)."""
    low: float | None
    """Lower end of its interval."""
    high: float | None
    """Upper end of its interval."""
    interval: str
    """``newcombe`` (0/1 scores), ``bootstrap``, or ``none``."""

    def within(self, max_loss: float) -> bool:
        """True when the point estimate is within the tolerance (vacuously with no items)."""
        return self.loss is None or self.loss <= max_loss + 1e-12


def realised_loss(
    student: Sequence[float],
    frontier: Sequence[float],
    confidence: float,
    *,
    groups: Sequence[Hashable] | None = None,
) -> LossCheck:
    """Mean loss of student-routed items with a paired interval at ``confidence`` (two-sided).

    With ``groups`` (the prompt each item was scored on), the interval allows for the items of
    one prompt being correlated: Newcombe's interval is widened by the square root of the
    design effect (:func:`sdk.stats.design_effect`), the bootstrap resamples whole prompts.
    With one item per group both equal the plain intervals."""
    if not student:
        return LossCheck(0, None, None, None, "none")
    diffs = [f - s for s, f in zip(student, frontier, strict=True)]
    loss = math.fsum(diffs) / len(student)
    counts = paired_counts(list(student), list(frontier))
    if counts is not None:
        low, high = newcombe_paired_interval(counts, confidence)
        if groups is not None:
            low, high = cluster_widened((low, high), loss, design_effect(diffs, list(groups)))
        return LossCheck(len(student), loss, low, high, "newcombe")
    low, high = bootstrap_mean_interval(diffs, confidence, groups=None if groups is None else list(groups))
    return LossCheck(len(student), loss, low, high, "bootstrap")
