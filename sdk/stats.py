"""Interval and verdict maths shared by profiling (``profiles``) and routing (``sdk``).

Pure Python and ``math`` only, so ``sdk`` can recompute a verdict at another
tolerance without importing ``profiles`` or numpy.

Conventions used everywhere in bitrate:

- The **quality loss** of an item is ``d = f - s`` (frontier score minus student
  score); a category's loss is the mean of ``d``. Positive means the student is
  worse.
- ``confidence`` is the **two-sided** level of the interval ``[low, high]``
  around the loss. The verdict only ever uses one side of it at a time
  (``high`` to call ``safe``, ``low`` to call ``unsafe``), so a two-sided 0.90
  interval gives each verdict a one-sided guarantee of 95%: a category called
  ``safe`` has true loss <= ``max_loss`` with about 95% confidence.
- For 0/1 scores the interval is Newcombe's paired score interval (method 10);
  for continuous scores a seeded paired percentile bootstrap of the mean of ``d``.
- Items that come in clusters (the several instructions graded on one IFEval
  response) are not independent. :func:`design_effect` measures how much the
  clustering inflates the variance of the mean loss, and :func:`cluster_widened`
  widens an interval by its square root (Kish's effective sample size); the
  bootstrap resamples whole clusters when given them.

Contract violations by the caller (mismatched lengths, an empty sample,
confidence outside (0, 1)) raise ``ValueError``: they are bugs, not user input.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

__all__ = [
    "PairedCounts",
    "VerdictName",
    "bootstrap_mean_interval",
    "cluster_widened",
    "design_effect",
    "design_effect_of",
    "newcombe_paired_interval",
    "paired_counts",
    "verdict",
    "wilson_interval",
    "z_two_sided",
]

VerdictName = Literal["safe", "uncertain", "unsafe"]


@dataclass(frozen=True, slots=True)
class PairedCounts:
    """The paired 2x2 table of 0/1 outcomes, named from the student's point of view."""

    both: int
    """Items both models got right (f = 1, s = 1)."""
    breaks: int
    """Items the frontier got right and the student got wrong (f = 1, s = 0)."""
    fixes: int
    """Items the student got right and the frontier got wrong (f = 0, s = 1)."""
    neither: int
    """Items both got wrong (f = 0, s = 0)."""

    @property
    def n(self) -> int:
        """Number of items."""
        return self.both + self.breaks + self.fixes + self.neither


def z_two_sided(confidence: float) -> float:
    """The standard normal quantile for a two-sided interval at ``confidence``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's score interval for a single proportion (no continuity correction)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    z = z_two_sided(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _phi(c: PairedCounts) -> float:
    """Newcombe's corrected correlation estimate for the paired table.

    Zero-cell corrections from the paper: phi is 0 when any marginal total is 0
    (the product under the root vanishes); the numerator ``ad - bc`` is shrunk
    by ``n / 2`` when positive and used as is when negative.
    """
    a, b, cc, d = c.both, c.breaks, c.fixes, c.neither
    product = (a + b) * (cc + d) * (a + cc) * (b + d)
    if product == 0:
        return 0.0
    raw = a * d - b * cc
    if raw > c.n / 2:
        adjusted = raw - c.n / 2
    elif raw < 0:
        adjusted = raw
    else:
        adjusted = 0.0
    return adjusted / math.sqrt(product)


def newcombe_paired_interval(counts: PairedCounts, confidence: float) -> tuple[float, float]:
    """Newcombe's (1998) method 10 interval for the paired difference ``p_f - p_s``.

    ``p_f = (both + breaks) / n`` is the frontier's accuracy and ``p_s = (both +
    fixes) / n`` the student's, so the difference is the mean loss. Built from
    the two marginal Wilson intervals and the corrected correlation phi.
    Reference: Newcombe RG, "Improved confidence intervals for the difference
    between binomial proportions based on paired data", Statistics in Medicine
    17:2635-2650 (1998).
    """
    n = counts.n
    if n <= 0:
        raise ValueError("the paired table is empty")
    hits_f, hits_s = counts.both + counts.breaks, counts.both + counts.fixes
    p_f, p_s = hits_f / n, hits_s / n
    l_f, u_f = wilson_interval(hits_f, n, confidence)
    l_s, u_s = wilson_interval(hits_s, n, confidence)
    phi = _phi(counts)
    diff = p_f - p_s
    lower_sq = (p_f - l_f) ** 2 - 2 * phi * (p_f - l_f) * (u_s - p_s) + (u_s - p_s) ** 2
    upper_sq = (p_s - l_s) ** 2 - 2 * phi * (p_s - l_s) * (u_f - p_f) + (u_f - p_f) ** 2
    low = diff - math.sqrt(max(0.0, lower_sq))
    high = diff + math.sqrt(max(0.0, upper_sq))
    return max(-1.0, low), min(1.0, high)


def paired_counts(student: Sequence[float], frontier: Sequence[float]) -> PairedCounts | None:
    """The paired table when every score is exactly 0 or 1, else ``None``."""
    _check_pairs(student, frontier)
    if any(x not in (0, 1) for x in (*student, *frontier)):
        return None
    table = {(1, 1): 0, (1, 0): 0, (0, 1): 0, (0, 0): 0}
    for s, f in zip(student, frontier, strict=True):
        table[(int(f), int(s))] += 1
    return PairedCounts(both=table[(1, 1)], breaks=table[(1, 0)], fixes=table[(0, 1)], neither=table[(0, 0)])


def design_effect(diffs: Sequence[float], groups: Sequence[Hashable]) -> float:
    """How many times the clustering of items into ``groups`` inflates the variance of the
    mean of ``diffs``: the cluster-robust (CR1) variance of the mean over the usual
    independent-items variance, at least 1.

    With one item per group it is exactly 1; with every group's items identical it is
    about the group size, so a widened interval is the one the groups alone would give.
    When the differences do not vary (or there is a single group) the intra-group
    correlation cannot be estimated and the worst case is assumed (correlation 1:
    ``sum(n_g**2) / n``, Kish's design effect at rho = 1).
    """
    n = len(diffs)
    if n != len(groups) or n == 0:
        raise ValueError(f"need one group per difference, got {n} and {len(groups)}")
    sums: dict[Hashable, float] = {}
    sizes: dict[Hashable, int] = {}
    for d, g in zip(diffs, groups, strict=True):
        sums[g] = sums.get(g, 0.0) + d
        sizes[g] = sizes.get(g, 0) + 1
    mean = math.fsum(diffs) / n
    within = math.fsum((d - mean) ** 2 for d in diffs)
    worst = math.fsum(m * m for m in sizes.values()) / n
    between = math.fsum((sums[g] - sizes[g] * mean) ** 2 for g in sums)
    return design_effect_of(n, len(sums), within, between, worst)


def design_effect_of(n: int, clusters: int, within: float, between: float, worst: float) -> float:
    """:func:`design_effect` from its sums: ``within`` = sum of (d - mean)^2 over items,
    ``between`` = sum over groups of (group sum - group size * mean)^2, ``worst`` = sum of
    squared group sizes / n (the answer when the correlation cannot be estimated)."""
    if clusters < 2 or n < 2 or within <= 1e-12 * n:
        return worst
    cluster_var = clusters / (clusters - 1) * between / (n * n)
    iid_var = within / (n - 1) / n
    return max(1.0, cluster_var / iid_var)


def cluster_widened(
    interval: tuple[float, float], centre: float, deff: float, *, bounds: tuple[float, float] = (-1.0, 1.0)
) -> tuple[float, float]:
    """``interval`` around ``centre`` with each side stretched by ``sqrt(deff)`` (clipped to
    ``bounds``): the interval of a sample ``deff`` times smaller, the same estimate."""
    scale = math.sqrt(max(deff, 1.0))
    low, high = interval
    return max(bounds[0], centre - scale * (centre - low)), min(bounds[1], centre + scale * (high - centre))


def bootstrap_mean_interval(
    diffs: Sequence[float],
    confidence: float,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of paired differences.

    Resamples items (pairs), so the pairing is kept; with ``groups``, resamples whole
    groups (a cluster bootstrap: correlated items stay together) and takes the mean over
    the resampled items. Seeded, so the same data gives the same interval. With one item,
    or all differences equal, the interval collapses to the mean.
    """
    n = len(diffs)
    if n == 0:
        raise ValueError("no differences to resample")
    z_two_sided(confidence)  # validates confidence
    rng = random.Random(seed)
    if groups is not None:
        means = sorted(_cluster_means(diffs, groups, rng, n_boot))
    else:
        means = sorted(math.fsum(rng.choices(diffs, k=n)) / n for _ in range(n_boot))
    tail = (1.0 - confidence) / 2.0
    return _quantile(means, tail), _quantile(means, 1.0 - tail)


def _cluster_means(
    diffs: Sequence[float], groups: Sequence[Hashable], rng: random.Random, n_boot: int
) -> list[float]:
    if len(groups) != len(diffs):
        raise ValueError(f"need one group per difference, got {len(diffs)} and {len(groups)}")
    totals: dict[Hashable, list[float]] = {}
    for d, g in zip(diffs, groups, strict=True):
        cell = totals.setdefault(g, [0.0, 0.0])
        cell[0] += d
        cell[1] += 1
    cells = list(totals.values())
    out = []
    for _ in range(n_boot):
        picked = rng.choices(cells, k=len(cells))
        out.append(math.fsum(c[0] for c in picked) / math.fsum(c[1] for c in picked))
    return out


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of sorted values."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


def verdict(low: float, high: float, max_loss: float) -> VerdictName:
    """``safe`` when ``high <= max_loss``, ``unsafe`` when ``low > max_loss``, else ``uncertain``.

    A loss interval whose upper end sits exactly on the tolerance is ``safe``; one
    whose lower end sits exactly on it is not yet ``unsafe``.
    """
    if high <= max_loss:
        return "safe"
    if low > max_loss:
        return "unsafe"
    return "uncertain"


def _check_pairs(student: Sequence[float], frontier: Sequence[float]) -> None:
    if len(student) != len(frontier):
        raise ValueError(f"{len(student)} student scores but {len(frontier)} frontier scores")
    if not student:
        raise ValueError("no scores")
