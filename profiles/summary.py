"""Per-category statistics: ``summarize`` and the sequential stopping rule.

``summarize`` turns paired scores into a ``CategoryStats`` (interval maths in
``sdk.stats``). ``SequentialMonitor`` lets a runner stop sampling a category
once its verdict is settled.

Sequential design (documented choice): **Bonferroni over planned looks.** The
runner checks a category only at the planned sample sizes ``looks`` (e.g. 20,
40, 80, 160, 320). With ``K`` looks, each look's interval is computed at the
two-sided level ``1 - (1 - confidence) / K``; by the union bound, the chance
that *any* look's interval misses the true loss is at most ``1 - confidence``,
so a verdict settled at whatever look is as trustworthy as a fixed-n verdict at
``confidence``. It is conservative (wider intervals than a fixed-n design), but
simple, valid for both interval kinds, and needs no tuning. A look's interval
is wider than the nominal one on the same items, so summarising those items at
``confidence`` afterwards gives the same settled verdict (exactly so for
Newcombe intervals, which are nested in the level).

Known limit: a category that never settles is sampled to the end and then
summarised at the nominal ``confidence`` like a fixed-n design; the earlier
looks add at most ``(K - 1) / K * (1 - confidence)`` to that final verdict's
error (union bound). Give a category's own size as its last look when sizes are
known (``looks=[..., n_items]``) so that its final look is also a Bonferroni one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from sdk.profile import CategoryStats, Counts
from sdk.stats import (
    PairedCounts,
    VerdictName,
    bootstrap_mean_interval,
    newcombe_paired_interval,
    paired_counts,
    verdict,
)

__all__ = ["Look", "SequentialMonitor", "doubling_looks", "summarize"]


def summarize(
    student_scores: Sequence[float],
    frontier_scores: Sequence[float],
    *,
    max_loss: float,
    confidence: float,
    n_boot: int = 2000,
    seed: int = 0,
) -> CategoryStats:
    """Figures and verdict for one category from paired scores in [0, 1].

    Newcombe's paired interval when every score is 0 or 1, a seeded paired
    bootstrap otherwise. ``breaks`` is the share of items with f > s, ``fixes``
    the share with s > f.
    """
    student, frontier = [float(s) for s in student_scores], [float(f) for f in frontier_scores]
    low, high, counts = _interval(student, frontier, confidence, n_boot=n_boot, seed=seed)
    n = len(student)
    s_acc, f_acc = math.fsum(student) / n, math.fsum(frontier) / n
    loss = math.fsum(f - s for s, f in zip(student, frontier, strict=True)) / n
    return CategoryStats(
        n=n,
        student_accuracy=s_acc,
        frontier_accuracy=f_acc,
        retention=s_acc / f_acc if f_acc > 0 else None,
        loss=loss,
        loss_low=low,
        loss_high=high,
        confidence=confidence,
        interval="newcombe" if counts is not None else "bootstrap",
        breaks=sum(f > s for s, f in zip(student, frontier, strict=True)) / n,
        fixes=sum(s > f for s, f in zip(student, frontier, strict=True)) / n,
        verdict=verdict(low, high, max_loss),
        counts=Counts(**_counts_dict(counts)) if counts is not None else None,
    )


def _interval(
    student: list[float], frontier: list[float], confidence: float, *, n_boot: int, seed: int
) -> tuple[float, float, PairedCounts | None]:
    """Newcombe's interval (with the table) for 0/1 scores, else the paired bootstrap."""
    counts = paired_counts(student, frontier)
    if counts is not None:
        low, high = newcombe_paired_interval(counts, confidence)
    else:
        diffs = [f - s for s, f in zip(student, frontier, strict=True)]
        low, high = bootstrap_mean_interval(diffs, confidence, n_boot=n_boot, seed=seed)
    return low, high, counts


def _counts_dict(counts: PairedCounts) -> dict[str, int]:
    return {"both": counts.both, "breaks": counts.breaks, "fixes": counts.fixes, "neither": counts.neither}


def doubling_looks(min_n: int, max_n: int) -> tuple[int, ...]:
    """Planned looks ``min_n, 2*min_n, 4*min_n, ...`` up to and including ``max_n``."""
    if min_n < 1 or max_n < min_n:
        raise ValueError(f"need 1 <= min_n <= max_n, got {min_n}, {max_n}")
    looks, n = [], min_n
    while n < max_n:
        looks.append(n)
        n *= 2
    looks.append(max_n)
    return tuple(looks)


@dataclass(frozen=True, slots=True)
class Look:
    """The outcome of one planned look at a category."""

    n: int
    """Items seen at this look."""
    loss_low: float
    """Lower end of the look's (Bonferroni-widened) interval."""
    loss_high: float
    """Upper end of the look's interval."""
    verdict: VerdictName
    """Verdict at this look."""

    @property
    def settled(self) -> bool:
        """True when the verdict is ``safe`` or ``unsafe``: sampling can stop."""
        return self.verdict != "uncertain"


@dataclass
class _Stream:
    student: list[float] = field(default_factory=list)
    frontier: list[float] = field(default_factory=list)
    looks: list[Look] = field(default_factory=list)


class SequentialMonitor:
    """Says when a category's verdict is settled, so a runner can stop sampling it.

    Feed paired scores item by item with ``observe``; at each planned look it
    computes the interval at the per-look level ``1 - (1 - confidence) / K``
    (Bonferroni over the ``K`` planned looks, see the module docstring) and
    settles the category once the verdict is ``safe`` or ``unsafe``.
    ``looks`` defaults to ``doubling_looks(min_n, max_n)``; looks below
    ``min_n`` are dropped. A category that reaches the last look unsettled stays
    ``uncertain``: sample it to the end.
    """

    def __init__(
        self,
        max_loss: float,
        confidence: float,
        min_n: int = 20,
        looks: Sequence[int] | None = None,
        *,
        max_n: int = 640,
        n_boot: int = 1000,
        seed: int = 0,
    ):
        planned = doubling_looks(min_n, max_n) if looks is None else tuple(sorted(set(looks)))
        self.looks = tuple(n for n in planned if n >= min_n)
        if not self.looks:
            raise ValueError(f"no planned look at or above min_n={min_n}")
        self.max_loss = max_loss
        self.confidence = confidence
        self.look_confidence = 1.0 - (1.0 - confidence) / len(self.looks)
        self._n_boot, self._seed = n_boot, seed
        self._streams: dict[str, _Stream] = {}

    def observe(self, category: str, student: float, frontier: float) -> Look | None:
        """Record one item; return the ``Look`` when this item completes a planned look.

        Items observed after a category is settled are still recorded (a runner
        may have had calls in flight) but trigger no further look.
        """
        stream = self._streams.setdefault(category, _Stream())
        stream.student.append(float(student))
        stream.frontier.append(float(frontier))
        if self.is_settled(category) or len(stream.student) not in self.looks:
            return None
        low, high, _ = _interval(
            stream.student, stream.frontier, self.look_confidence, n_boot=self._n_boot, seed=self._seed
        )
        settled = verdict(low, high, self.max_loss)
        look = Look(n=len(stream.student), loss_low=low, loss_high=high, verdict=settled)
        stream.looks.append(look)
        return look

    def is_settled(self, category: str) -> bool:
        """True once a look has settled the category's verdict: stop sampling it."""
        stream = self._streams.get(category)
        return bool(stream and stream.looks and stream.looks[-1].settled)

    def settled_at(self, category: str) -> int | None:
        """Items seen when the verdict settled, or ``None`` while unsettled."""
        return self._streams[category].looks[-1].n if self.is_settled(category) else None

    def verdict(self, category: str) -> VerdictName:
        """The settled verdict, or ``uncertain`` while none is settled."""
        return self._streams[category].looks[-1].verdict if self.is_settled(category) else "uncertain"

    def items_saved(self, planned: int, category: str) -> int:
        """Items not sampled in ``category`` out of ``planned``, because it settled early."""
        stream = self._streams.get(category)
        seen = len(stream.student) if stream else 0
        return max(0, planned - seen) if self.is_settled(category) else 0

    def calls_saved(self, planned: dict[str, int], calls_per_item: int = 2) -> int:
        """Model calls saved over all categories (one student + one frontier call per item by default)."""
        return sum(self.items_saved(n, cat) for cat, n in planned.items()) * calls_per_item
