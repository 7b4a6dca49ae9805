"""Calibrated thresholds: the largest cut on out-of-sample estimates whose routed items keep
the promise, checked on items it was not chosen on (per-prompt estimates, ``sdk.estimate``;
cascades, ``sdk.cascade``). numpy.

**Calibration.** Each evidence item's estimate is recomputed leaving its prompt out
(its own loss is neither a neighbour nor part of its category prior). Sorting items
by that estimate, :func:`calibrate` finds the largest estimate ``t`` such that the
items at or below ``t`` -- the ones the router would send to the student -- have a
loss interval whose upper end (Newcombe's paired interval for 0/1 scores, a normal
interval otherwise, at the route's two-sided confidence) is within ``max_loss``;
(optionally capped at ``max_loss``: ``EstimatorSettings.cap_at_tolerance``).
The interval is cluster-aware: the items of one prompt (IFEval's instructions, graded
on one response) widen it by the square root of their design effect.
The estimator cross-fits it (:func:`crossfit_calibrate`): each fold's estimates and
threshold come from the other folds alone and are checked on the fold's own items,
because a threshold checked on the very items it was picked on over-promises; the
live threshold is the lowest of the folds'.

The prefix intervals are computed for all prefixes at once in numpy:
:func:`_newcombe_highs` is :func:`sdk.stats.newcombe_paired_interval` over arrays and
:func:`_prefix_design_effects` is :func:`sdk.stats.design_effect` of every prefix (tests pin
both to the scalar versions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sdk.stats import z_two_sided

__all__ = ["Calibration", "calibrate", "crossfit_calibrate", "prompt_folds"]


@dataclass(frozen=True, slots=True)
class Calibration:
    """The threshold chosen on the evidence and what it promised there."""

    threshold: float
    """Estimates at or below this go to the student (``-inf``: nothing qualified)."""
    student_share: float
    """Share of evidence items under the threshold (leave-one-out estimates)."""
    n_student: int
    """How many evidence items that is."""
    loss: float
    """Mean loss of those items (0 when none)."""
    loss_high: float
    """Upper end of its interval (0 when none); at most ``max_loss`` by construction."""


def _upper_bounds(
    student: np.ndarray, frontier: np.ndarray, confidence: float, groups: np.ndarray | None = None
) -> np.ndarray:
    """Upper end of the loss interval of every prefix ``[:m]`` (m = 1..n) of the paired scores.

    With ``groups`` (one prompt id per item), each prefix's interval is widened by the square
    root of its design effect (:func:`_prefix_design_effects`): the items of one prompt share a
    response, so they count for less than as many independent items. All prefixes at once, in
    numpy: :func:`_newcombe_highs` is :func:`sdk.stats.newcombe_paired_interval`'s upper end
    over arrays (a test pins the two together)."""
    n = len(student)
    diffs = frontier - student
    m = np.arange(1, n + 1)
    mean = np.cumsum(diffs) / m
    binary = bool(np.all((student == 0) | (student == 1)) and np.all((frontier == 0) | (frontier == 1)))
    if binary:
        cells = [np.cumsum((frontier == fv) & (student == sv)) for fv, sv in ((1, 1), (1, 0), (0, 1), (0, 0))]
        both, breaks, fixes, neither = (c.astype(np.float64) for c in cells)
        highs = _newcombe_highs(both, breaks, fixes, neither, confidence)
    else:
        var = np.maximum(np.cumsum(diffs * diffs) / m - mean * mean, 0.0) * m / np.maximum(m - 1, 1)
        sd = np.where(m > 1, np.sqrt(var), 1.0)
        highs = mean + z_two_sided(confidence) * sd / np.sqrt(m)
    if groups is None:
        return highs
    return np.minimum(1.0, mean + np.sqrt(_prefix_design_effects(diffs, groups)) * (highs - mean))


def _wilson(hits: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sdk.stats.wilson_interval` over arrays."""
    p = hits / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


def _newcombe_highs(
    both: np.ndarray, breaks: np.ndarray, fixes: np.ndarray, neither: np.ndarray, confidence: float
) -> np.ndarray:
    """Upper ends of :func:`sdk.stats.newcombe_paired_interval` for arrays of paired tables
    (floats, so the marginal products cannot overflow)."""
    z = z_two_sided(confidence)
    n = both + breaks + fixes + neither
    p_f, p_s = (both + breaks) / n, (both + fixes) / n
    l_s, _u_s = _wilson(both + fixes, n, z)
    _l_f, u_f = _wilson(both + breaks, n, z)
    product = (both + breaks) * (fixes + neither) * (both + fixes) * (breaks + neither)
    raw = both * neither - breaks * fixes
    adjusted = np.where(raw > n / 2, raw - n / 2, np.where(raw < 0, raw, 0.0))
    phi = np.where(product > 0, adjusted / np.sqrt(np.where(product > 0, product, 1.0)), 0.0)
    upper_sq = (p_s - l_s) ** 2 - 2 * phi * (p_s - l_s) * (u_f - p_f) + (u_f - p_f) ** 2
    return np.minimum(1.0, p_f - p_s + np.sqrt(np.maximum(0.0, upper_sq)))


def _prefix_design_effects(diffs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """:func:`sdk.stats.design_effect` of every prefix ``diffs[:m]`` (m = 1..n), all at once: the
    running cluster sums are exclusive cumulative sums within each group, so a prefix may hold
    part of a prompt's items (the rules are :func:`sdk.stats.design_effect_of`'s)."""
    n = len(diffs)
    if n == 0:
        return np.zeros(0)
    _keys, ids = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(ids, kind="stable")
    d_sorted, g_sorted = diffs[order], ids[order]
    first = np.r_[True, g_sorted[1:] != g_sorted[:-1]]
    segment = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    csum = np.cumsum(d_sorted)
    old_d, old_n = np.empty(n), np.empty(n)
    old_d[order] = csum - d_sorted - (csum[starts] - d_sorted[starts])[segment]
    old_n[order] = np.arange(n) - starts[segment]
    m = np.arange(1, n + 1, dtype=np.float64)
    total, squares = np.cumsum(diffs), np.cumsum(diffs * diffs)
    s_dd = np.cumsum(2 * old_d * diffs + diffs * diffs)
    s_dn = np.cumsum(old_d + diffs * old_n + diffs)
    s_nn = np.cumsum(2 * old_n + 1)
    clusters = np.cumsum(old_n == 0)
    mean = total / m
    within = np.maximum(squares - m * mean * mean, 0.0)
    between = np.maximum(s_dd - 2 * mean * s_dn + mean * mean * s_nn, 0.0)
    worst = s_nn / m
    estimable = (clusters >= 2) & (m >= 2) & (within > 1e-12 * m)
    safe_c, safe_w = np.maximum(clusters - 1, 1), np.where(estimable, within, 1.0)
    ratio = (clusters / safe_c * between / (m * m)) / (safe_w / np.maximum(m - 1, 1) / m)
    return np.where(estimable, np.maximum(1.0, ratio), worst)


def calibrate(
    estimates: np.ndarray,
    student: np.ndarray,
    frontier: np.ndarray,
    *,
    max_loss: float,
    confidence: float,
    cap: float = math.inf,
    groups: np.ndarray | None = None,
) -> Calibration:
    """The largest threshold on ``estimates`` (out-of-sample, one per evidence item), at most
    ``cap``, whose student-routed items' loss interval stays within ``max_loss``. With ``groups``
    (the prompt of each item), the interval accounts for the items of one prompt being
    correlated (see :func:`_upper_bounds`)."""
    order = np.argsort(estimates, kind="stable")
    est, s, f = estimates[order], student[order], frontier[order]
    highs = _upper_bounds(s, f, confidence, None if groups is None else groups[order])
    n = len(est)
    cuts = np.r_[est[1:] != est[:-1], True] if n else np.zeros(0, dtype=bool)  # cut between distinct
    ok = cuts & (est <= cap) & (highs <= max_loss)
    if not ok.any():
        return Calibration(-math.inf, 0.0, 0, 0.0, 0.0)
    m = int(np.flatnonzero(ok)[-1]) + 1
    loss = float((f[:m] - s[:m]).mean())
    return Calibration(float(est[m - 1]), m / n, m, loss, float(highs[m - 1]))


def _crossfit_once(
    per_fold: list[np.ndarray],
    student: np.ndarray,
    frontier: np.ndarray,
    fold: np.ndarray,
    groups: np.ndarray,
    target: float,
    confidence: float,
    cap: float,
) -> tuple[list[float], np.ndarray]:
    """Per fold ``k``: the threshold :func:`calibrate` picks on the other folds at ``target``
    (on ``per_fold[k]``, estimates that never saw fold ``k``), and which of the fold's own items
    it sends to the student."""
    thresholds, sent = [], np.zeros(len(student), dtype=bool)
    for k, estimates in enumerate(per_fold):
        rest, own = fold != k, fold == k
        t = calibrate(
            estimates[rest],
            student[rest],
            frontier[rest],
            max_loss=target,
            confidence=confidence,
            cap=cap,
            groups=groups[rest],
        ).threshold
        thresholds.append(t)
        sent |= own & (estimates <= t)
    return thresholds, sent


def prompt_folds(groups: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number per item: the distinct ``groups`` (prompts) dealt round-robin into ``folds``
    after a seeded shuffle, so a prompt's items share a fold."""
    shuffled = np.random.default_rng(seed).permutation(np.unique(groups)).tolist()
    fold_of = {key: i % folds for i, key in enumerate(shuffled)}
    return np.array([fold_of[g] for g in groups.tolist()])


def crossfit_calibrate(
    estimates: np.ndarray,
    student: np.ndarray,
    frontier: np.ndarray,
    groups: np.ndarray,
    *,
    max_loss: float,
    confidence: float,
    cap: float = math.inf,
    folds: int = 5,
    seed: int = 0,
    refit: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Calibration:
    """Cross-fitted calibration: the evidence's prompts (``groups``) are split into ``folds``;
    for each fold, :func:`calibrate` picks a threshold on the *other* folds, and the fold's own
    items under that threshold are the ones it would have sent to the student. Those items,
    pooled over the folds, were never used to choose their own threshold; their loss interval
    (cluster-aware over ``groups``) must be within ``max_loss``. The folds aim at ``max_loss``,
    then at 80%, 60%... of it until the pooled check passes (else nothing goes to the student).

    The threshold used live is the *lowest* of the passing folds' thresholds. The pooled check
    certifies the mix of the folds' rules (fold ``k`` sends its estimates up to ``t_k``); when
    the expected loss of "estimate <= t" grows with ``t`` (what a useful estimator does), the
    rule at ``min t_k`` loses no more than any of them, hence no more than their mix. A median
    is not covered: the folds with lower thresholds may be the ones that kept the mix within
    the bound.

    ``refit(rest)`` (optional) returns every item's estimate computed from the ``rest`` items
    alone (each item's own prompt left out too); with it, fold ``k``'s threshold is chosen, and
    its own items are picked, by estimates that never saw fold ``k``'s losses, so the pooled
    check tests what the procedure does on prompts it has not seen. Without it, ``estimates``
    serves every fold, which is right when they come from a model fitted elsewhere.

    Picking the largest threshold that passes on the same items it is checked on over-promises
    (the cut lands where the noise happens to be kind); checking each choice on items it never
    saw removes that winner's curse while keeping (almost) all the evidence for the interval.
    """
    nothing = Calibration(-math.inf, 0.0, 0, 0.0, 0.0)
    keys = np.unique(groups)
    if len(keys) < 2 * folds:
        return nothing
    fold = prompt_folds(groups, folds, seed)
    per_fold = [estimates if refit is None else refit(fold != k) for k in range(folds)]
    for share in (1.0, 0.8, 0.6, 0.4, 0.2, 0.0):
        thresholds, sent = _crossfit_once(
            per_fold, student, frontier, fold, groups, max_loss * share, confidence, cap
        )
        if not sent.any():
            continue
        high = float(_upper_bounds(student[sent], frontier[sent], confidence, groups[sent])[-1])
        if high <= max_loss:
            threshold = float(min(thresholds))
            chosen = estimates <= threshold
            loss = float((frontier[sent] - student[sent]).mean())
            return Calibration(threshold, float(chosen.mean()), int(chosen.sum()), loss, high)
    return nothing
