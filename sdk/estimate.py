"""Per-prompt loss estimates from the profile's evidence, and their calibrated threshold.

For a prompt ``x`` of category ``c``, with evidence items ``i`` (prompt vector
``e_i``, loss ``d_i = f_i - s_i``):

- similarities ``sim_i = <x, e_i>``; the ``k`` nearest items get weights
  ``w_i = clip((sim_i - background) / (typical - background), 0, 1) ** power``, where
  ``typical`` is how close evidence items are to their nearest other item and
  ``background`` how close two random items are (both measured on the evidence),
  so a neighbour as close as a typical near-duplicate counts fully and an
  unrelated one not at all;
- ``n_eff = sum w_i``, the local loss ``sum w_i d_i / n_eff``;
- shrunk toward the category's loss ``L_c`` (empirical Bayes with prior strength
  ``k0``): ``loss = (n_eff * local + k0 * L_c) / (n_eff + k0)``, so few or far
  neighbours leave the category's figure.

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
A prompt whose estimate is at most ``t`` is ``safe``, and so is one of a category
the profile already calls ``safe`` whose estimate is within ``max_loss`` (per-prompt
routing only ever removes the hard prompts of a safe category); above ``max_loss``,
``unsafe``; in between, ``uncertain`` (the policy says where that goes).

``route_vector`` is a pure function of these precomputed arrays and the prompt's
vector; ``route`` embeds the prompt first, with the estimator's embedder (TF-IDF
hashed character n-grams fitted on the evidence by default, MiniLM on request).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sdk.decision import TaskGuess, Verdict
from sdk.detect.base import DetectContext, last_user_text
from sdk.detect.embedding import shared_minilm
from sdk.embed import Embedder, HashingEmbedder, VectorIndex
from sdk.protocol import ChatRequest
from sdk.stats import PairedCounts, design_effect_of, newcombe_paired_interval, paired_counts, z_two_sided

__all__ = [
    "Calibration",
    "PromptEstimate",
    "EstimatorSettings",
    "PromptEstimator",
    "calibrate",
    "crossfit_calibrate",
    "from_context",
    "make_embedder",
    "prompt_folds",
]


@dataclass(frozen=True, slots=True)
class EstimatorSettings:
    """Knobs of the per-prompt estimator (tune them on the profile's evidence only)."""

    k: int = 20
    """Neighbours considered."""
    k0: float = 4.0
    """Prior strength: how many fully similar neighbours weigh as much as the category's loss."""
    power: float = 1.0
    """Sharpens (> 1) or flattens (< 1) the similarity weights."""
    cap_at_tolerance: bool = False
    """Also cap the threshold at ``max_loss`` (never send a prompt whose own estimate exceeds
    the tolerance). Off by default: shrinkage keeps every estimate in a bad category above
    ``k0 / (k + k0)`` of its loss, so the cap would forbid exactly the easy prompts of a mixed
    category that per-prompt routing exists for; the cross-fitted check guards the promise."""
    embedder: Literal["lexical", "minilm"] = "lexical"
    """Vector space of the neighbours. ``lexical`` (TF-IDF over hashed character n-grams) is the
    default because on IFEval outcomes it ranked prompts far better than all-MiniLM-L6-v2 did
    (held-out APGR 0.71 vs 0.60 for Qwen2.5-7B vs gpt-4o, mean of 4 splits; see docs/routing.md):
    what makes a prompt hard there is the wording of its instructions, not its topic."""
    within_category: bool = True
    """Take neighbours only among evidence items of the prompt's category (when it is known and
    has evidence): a similar prompt asking for another kind of task says little about this one."""


@dataclass(frozen=True, slots=True)
class PromptEstimate:
    """This prompt's expected loss if the student answers, and how it was reached."""

    loss: float
    """Shrunk estimate of ``f - s`` for this prompt."""
    n_eff: float
    """Effective number of neighbours (sum of similarity weights)."""
    category_loss: float
    """The prior: the category's loss (the evidence's overall loss for an unknown category)."""
    verdict: Verdict = "unknown"
    """``safe`` (at or below the calibrated threshold), ``unsafe`` (above ``max_loss``) or ``uncertain``."""


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
    response, so they count for less than as many independent items."""
    n = len(student)
    diffs = frontier - student
    m = np.arange(1, n + 1)
    mean = np.cumsum(diffs) / m
    if paired_counts(student.tolist(), frontier.tolist()) is not None:
        cum = {
            key: np.cumsum((frontier == fv) & (student == sv))
            for key, fv, sv in (("both", 1, 1), ("breaks", 1, 0), ("fixes", 0, 1), ("neither", 0, 0))
        }
        tables = (PairedCounts(**{k: int(v[j]) for k, v in cum.items()}) for j in range(n))
        highs = np.array([newcombe_paired_interval(t, confidence)[1] for t in tables])
    else:
        var = np.maximum(np.cumsum(diffs * diffs) / m - mean * mean, 0.0) * m / np.maximum(m - 1, 1)
        sd = np.where(m > 1, np.sqrt(var), 1.0)
        highs = mean + z_two_sided(confidence) * sd / np.sqrt(m)
    if groups is None:
        return highs
    return np.minimum(1.0, mean + np.sqrt(_prefix_design_effects(diffs, groups)) * (highs - mean))


def _prefix_design_effects(diffs: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """:func:`sdk.stats.design_effect` of every prefix ``diffs[:m]`` (m = 1..n), in one pass:
    the cluster sums are updated item by item, so a prefix may hold part of a prompt's items."""
    n = len(diffs)
    out = np.empty(n)
    sums: dict[object, float] = {}
    sizes: dict[object, int] = {}
    s_dd = s_dn = s_nn = total = squares = 0.0
    for j, (d, g) in enumerate(zip(diffs.tolist(), groups.tolist(), strict=True)):
        old_d, old_n = sums.get(g, 0.0), sizes.get(g, 0)
        sums[g], sizes[g] = old_d + d, old_n + 1
        s_dd += (old_d + d) ** 2 - old_d**2
        s_dn += (old_d + d) * (old_n + 1) - old_d * old_n
        s_nn += 2 * old_n + 1
        total += d
        squares += d * d
        out[j] = _design_effect(j + 1, len(sums), total, squares, s_dd, s_dn, s_nn)
    return out


def _design_effect(
    n: int, clusters: int, total: float, squares: float, s_dd: float, s_dn: float, s_nn: float
) -> float:
    """:func:`sdk.stats.design_effect_of` from running sums (the rules are that function's)."""
    mean = total / n
    within = max(squares - n * mean * mean, 0.0)
    between = max(s_dd - 2 * mean * s_dn + mean * mean * s_nn, 0.0)
    return design_effect_of(n, clusters, within, between, s_nn / n)


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
    best = Calibration(-math.inf, 0.0, 0, 0.0, 0.0)
    for m in range(1, len(est) + 1):
        if m < len(est) and est[m] == est[m - 1]:
            continue  # cut only between distinct estimates
        if est[m - 1] > cap:
            break
        if highs[m - 1] <= max_loss:
            loss = float((f[:m] - s[:m]).mean())
            best = Calibration(float(est[m - 1]), m / len(est), m, loss, float(highs[m - 1]))
    return best


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


class PromptEstimator:
    """Per-prompt loss estimates over the profile's evidence (see the module docstring)."""

    def __init__(
        self,
        embedder: Embedder,
        index: VectorIndex,
        student: Sequence[float],
        frontier: Sequence[float],
        category_loss: dict[str, float],
        *,
        max_loss: float,
        confidence: float,
        settings: EstimatorSettings = EstimatorSettings(),
        safe_categories: Sequence[str] = (),
    ):
        self.embedder = embedder
        self.index = index
        self.safe_categories = frozenset(safe_categories)
        self.student = np.asarray(student, dtype=np.float64)
        self.frontier = np.asarray(frontier, dtype=np.float64)
        self.diffs = self.frontier - self.student
        self.category_loss = dict(category_loss)
        self.overall_loss = float(self.diffs.mean()) if len(self.diffs) else 0.0
        self.max_loss = max_loss
        self.confidence = confidence
        self.settings = settings
        self._labels = np.asarray(index.labels)
        self._outside = {c: np.flatnonzero(self._labels != c) for c in set(index.labels)}
        self.typical, self.background = index.scale()
        self.calibration = self._calibrate()

    @classmethod
    def from_profile(
        cls,
        profile: object,
        embedder: Embedder,
        *,
        max_loss: float,
        confidence: float,
        settings: EstimatorSettings = EstimatorSettings(),
    ) -> PromptEstimator:
        """Build from a :class:`sdk.profile.Profile` with evidence (embeds every evidence prompt once)."""
        items = list(getattr(profile, "evidence", None) or [])
        index = VectorIndex.build(embedder, [i.prompt for i in items], [i.category for i in items])
        stats = getattr(profile, "categories", {})
        safe = [name for name, st in stats.items() if st.verdict_at(max_loss, confidence) == "safe"]
        return cls(
            embedder,
            index,
            [i.student for i in items],
            [i.frontier for i in items],
            {name: st.loss for name, st in stats.items()},
            max_loss=max_loss,
            confidence=confidence,
            settings=settings,
            safe_categories=safe,
        )

    @property
    def threshold(self) -> float:
        """The calibrated threshold (``-inf`` when no share of the evidence met the tolerance)."""
        return self.calibration.threshold

    # -------------------------------------------------------------- estimating

    def estimate_vector(self, vector: np.ndarray, category: str | None) -> PromptEstimate:
        """The estimate for an embedded prompt of ``category`` (``None``/unknown: the overall loss)."""
        return self._estimate(self.index.similarities(vector), category)

    def _estimate(self, sims: np.ndarray, category: str | None) -> PromptEstimate:
        prior = self.category_loss.get(category or "", self.overall_loss)
        outside = self._outside.get(category or "")
        if self.settings.within_category and outside is not None:
            sims = sims.copy()
            sims[outside] = -np.inf
        loss, n_eff = self._shrunk(sims, prior)
        return PromptEstimate(loss, n_eff, prior, self._verdict(loss, category))

    def estimate_text(self, prompt: str, category: str | None) -> PromptEstimate:
        """The estimate for a prompt's text."""
        return self._estimate(self.index.similarities_to_text(self.embedder, prompt), category)

    def estimate(self, request: ChatRequest, guess: TaskGuess) -> PromptEstimate:
        """The engine's entry: the estimate for a request's last user message and detected task."""
        task = None if guess.task == "unknown" else guess.task
        return self.estimate_text(last_user_text(request), task)

    def route_vector(self, vector: np.ndarray, category: str | None) -> tuple[bool, PromptEstimate]:
        """``(send_to_student, estimate)`` for an embedded prompt."""
        est = self.estimate_vector(vector, category)
        return est.verdict == "safe", est

    def route(self, prompt: str, category: str | None) -> tuple[bool, PromptEstimate]:
        """``(send_to_student, estimate)`` for a prompt's text."""
        est = self.estimate_text(prompt, category)
        return est.verdict == "safe", est

    # -------------------------------------------------------------- internals

    def _verdict(self, loss: float, category: str | None) -> Verdict:
        if loss <= self.calibration.threshold:
            return "safe"
        if category in self.safe_categories and loss <= self.max_loss:
            return "safe"  # the profile already certifies the whole category
        return "unsafe" if loss > self.max_loss else "uncertain"

    def _weights(self, sims: np.ndarray) -> np.ndarray:
        span = max(self.typical - self.background, 1e-6)
        return np.clip((sims - self.background) / span, 0.0, 1.0) ** self.settings.power

    def _shrunk(self, sims: np.ndarray, prior: float) -> tuple[float, float]:
        if len(sims) == 0:
            return prior, 0.0
        top = self.index.nearest(sims, self.settings.k)
        w = self._weights(sims[top])
        n_eff = float(w.sum())
        local = float(w @ self.diffs[top]) / n_eff if n_eff > 0 else prior
        k0 = self.settings.k0
        return (n_eff * local + k0 * prior) / (n_eff + k0), n_eff

    def loo_estimates(self, pool: np.ndarray | None = None) -> np.ndarray:
        """Each evidence item's estimate with its prompt left out: no item with the same prompt
        (several items may share one, e.g. one per instruction) is a neighbour or part of the
        category prior. With ``pool`` (a mask over the evidence), only the pooled items are
        neighbours and prior, for every item, pooled or not. These out-of-sample estimates are
        what calibration uses."""
        n = len(self.index)
        labels = self._labels
        groups = self._prompt_groups()
        pool = np.ones(n, dtype=bool) if pool is None else pool
        out = np.empty(n)
        for j in range(n):
            keep = pool & (groups != groups[j])
            same = keep & (labels == labels[j])
            prior = float(self.diffs[same].mean()) if same.any() else self._mean_or_zero(keep)
            sims = self.index.similarities(self.index.matrix[j]).copy()
            sims[~(same if self.settings.within_category else keep)] = -np.inf
            out[j] = self._shrunk(sims, prior)[0]
        return out

    def _mean_or_zero(self, mask: np.ndarray) -> float:
        return float(self.diffs[mask].mean()) if mask.any() else 0.0

    def _prompt_groups(self) -> np.ndarray:
        """Group id per evidence item: items whose vectors coincide share a prompt."""
        keys = [row.tobytes() for row in self.index.matrix]
        ids: dict[bytes, int] = {}
        return np.array([ids.setdefault(key, len(ids)) for key in keys])

    def _calibrate(self) -> Calibration:
        if len(self.index) == 0:
            return Calibration(-math.inf, 0.0, 0, 0.0, 0.0)
        return crossfit_calibrate(
            self.loo_estimates(),
            self.student,
            self.frontier,
            self._prompt_groups(),
            max_loss=self.max_loss,
            confidence=self.confidence,
            cap=self.max_loss if self.settings.cap_at_tolerance else math.inf,
            refit=self.loo_estimates,
        )


def make_embedder(kind: str, evidence_prompts: Sequence[str]) -> Embedder:
    """The estimator's vector space: ``lexical`` (TF-IDF hashed character n-grams fitted on the
    evidence prompts) or ``minilm`` (the shared sentence embedder; ``DependencyMissing`` when
    ``bitrate[embeddings]`` is not installed)."""
    if kind == "minilm":
        return shared_minilm()
    return HashingEmbedder().fit(list(evidence_prompts))


def from_context(ctx: DetectContext, settings: EstimatorSettings = EstimatorSettings()) -> PromptEstimator:
    """The engine's factory: an estimator over the route's profile evidence at the route's tolerance."""
    tol = ctx.route.tolerance
    profile = ctx.profile
    assert profile is not None, "an estimator is built only for a route with a profile"
    prompts = [item.prompt for item in profile.evidence or []]
    return PromptEstimator.from_profile(
        profile,
        make_embedder(settings.embedder, prompts),
        max_loss=tol.max_loss,
        confidence=tol.confidence,
        settings=settings,
    )
