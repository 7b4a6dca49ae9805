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

**Calibration** (``sdk.calibration``): each evidence item's estimate is recomputed leaving
its prompt out; the threshold is cross-fitted over folds of the evidence's prompts
(:func:`~sdk.calibration.crossfit_calibrate`) so it is checked on items it was not chosen on.
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sdk.calibration import Calibration, calibrate, crossfit_calibrate, prompt_folds
from sdk.decision import TaskGuess, Verdict
from sdk.detect.base import DetectContext, last_user_text
from sdk.detect.embedding import shared_minilm
from sdk.detect.offline import EvidenceDetection
from sdk.embed import BLOCK_ROWS, Embedder, HashingEmbedder, VectorIndex
from sdk.protocol import ChatRequest

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
        self._groups: np.ndarray | None = None
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
        labels: Sequence[str] | None = None,
        safe: Sequence[str] | None = None,
    ) -> PromptEstimator:
        """Build from a :class:`sdk.profile.Profile` with evidence (embeds every evidence prompt once).

        ``labels`` (one per evidence item) replaces the items' categories, e.g. with the tasks the
        route's detectors give them; items labelled ``unknown`` are left out, each label's prior is
        its items' mean loss, and ``safe`` lists the labels the profile's own safe set becomes."""
        items = list(getattr(profile, "evidence", None) or [])
        stats = getattr(profile, "categories", {})
        if labels is None:
            names = [i.category for i in items]
            prior = {name: st.loss for name, st in stats.items()}
            safe = [name for name, st in stats.items() if st.verdict_at(max_loss, confidence) == "safe"]
        else:
            kept = [j for j, label in enumerate(labels) if label != "unknown"]
            items, names = [items[j] for j in kept], [labels[j] for j in kept]
            prior = _mean_by(names, [i.frontier - i.student for i in items])
        index = VectorIndex.build(embedder, [i.prompt for i in items], names)
        return cls(
            embedder,
            index,
            [i.student for i in items],
            [i.frontier for i in items],
            prior,
            max_loss=max_loss,
            confidence=confidence,
            settings=settings,
            safe_categories=safe or (),
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
        return self.loo_estimates_many([pool])[0]

    def loo_estimates_many(self, pools: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        """:meth:`loo_estimates` for several pools from one pass over the similarities: each
        category's items are compared with their candidate neighbours (the category's items, or
        all items without ``within_category``) one block of rows at a time."""
        n = len(self.index)
        groups = self._prompt_groups()
        masks = [np.ones(n, dtype=bool) if pool is None else pool for pool in pools]
        priors = [self._loo_priors(mask, groups) for mask in masks]
        outs = [np.empty(n) for _ in masks]
        for rows, cols in self._candidate_sets():
            matrix = self.index.matrix[cols]
            for start in range(0, len(rows), BLOCK_ROWS):
                block = rows[start : start + BLOCK_ROWS]
                sims = self.index.matrix[block] @ matrix.T
                same = groups[block][:, None] == groups[cols][None, :]
                for out, mask, prior in zip(outs, masks, priors, strict=True):
                    masked = np.where(same | ~mask[cols][None, :], -np.inf, sims)
                    out[block] = self._shrunk_rows(masked, cols, prior[block])[0]
        return outs

    def _candidate_sets(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(rows, candidate columns)``: per category when neighbours stay within it."""
        everyone = np.arange(len(self.index))
        if not self.settings.within_category:
            return [(everyone, everyone)]
        return [(idx, idx) for idx in (np.flatnonzero(self._labels == c) for c in np.unique(self._labels))]

    def _loo_priors(self, pool: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Per item: the mean loss of the pooled items of its category outside its prompt, else
        of all pooled items outside its prompt, else 0 (the prior :meth:`loo_estimates` uses)."""
        _names, labels = np.unique(self._labels, return_inverse=True)
        weights = pool.astype(np.float64)
        loss = self.diffs * weights
        cell = labels * (int(groups.max()) + 1 if len(groups) else 1) + groups
        _cells, cell_ids = np.unique(cell, return_inverse=True)

        def sums(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return np.bincount(ids, loss)[ids], np.bincount(ids, weights)[ids]

        (lab_s, lab_n), (cell_s, cell_n), (grp_s, grp_n) = sums(labels), sums(cell_ids), sums(groups)
        num, den = lab_s - cell_s, lab_n - cell_n
        all_num, all_den = loss.sum() - grp_s, weights.sum() - grp_n
        fallback = np.where(all_den > 0, all_num / np.where(all_den > 0, all_den, 1.0), 0.0)
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), fallback)

    def _shrunk_rows(
        self, sims: np.ndarray, cols: np.ndarray, priors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_shrunk` for a block of rows (``sims`` over the evidence items ``cols``):
        ``(estimates, n_eff)``."""
        if sims.shape[1] == 0:
            return priors.astype(np.float64), np.zeros(len(priors))
        top = self.index.nearest_rows(sims, self.settings.k)
        w = self._weights(np.take_along_axis(sims, top, axis=1))
        n_eff = w.sum(axis=1)
        k0 = self.settings.k0
        return ((w * self.diffs[cols][top]).sum(axis=1) + k0 * priors) / (n_eff + k0), n_eff

    def estimate_many(self, vectors: np.ndarray, categories: Sequence[str | None]) -> list[PromptEstimate]:
        """:meth:`estimate_vector` for many embedded prompts, one matrix product per block and
        category (the same estimates up to float rounding)."""
        out: dict[int, PromptEstimate] = {}
        within = self.settings.within_category
        keys = [c if within and c in self._outside else None for c in categories]
        for key in dict.fromkeys(keys):
            rows = np.array([i for i, k in enumerate(keys) if k == key], dtype=np.int64)
            cols = np.arange(len(self.index)) if key is None else np.flatnonzero(self._labels == key)
            for start in range(0, len(rows), BLOCK_ROWS):
                block = rows[start : start + BLOCK_ROWS]
                cats = [categories[i] for i in block]
                prior = np.array([self.category_loss.get(c or "", self.overall_loss) for c in cats])
                losses, n_eff = self._shrunk_rows(vectors[block] @ self.index.matrix[cols].T, cols, prior)
                for i, cat, loss, ne, pr in zip(block, cats, losses, n_eff, prior, strict=True):
                    out[int(i)] = PromptEstimate(float(loss), float(ne), float(pr), self._verdict(loss, cat))
        return [out[i] for i in range(len(vectors))]

    def _mean_or_zero(self, mask: np.ndarray) -> float:
        return float(self.diffs[mask].mean()) if mask.any() else 0.0

    def _prompt_groups(self) -> np.ndarray:
        """Group id per evidence item: items whose vectors coincide share a prompt."""
        if self._groups is None:
            keys = [row.tobytes() for row in self.index.matrix]
            ids: dict[bytes, int] = {}
            self._groups = np.array([ids.setdefault(key, len(ids)) for key in keys], dtype=np.int64)
        return self._groups

    def _calibrate(self) -> Calibration:
        if len(self.index) == 0:
            return Calibration(-math.inf, 0.0, 0, 0.0, 0.0)
        groups = self._prompt_groups()
        folds = 5
        fold = prompt_folds(groups, folds)
        rests = [fold != k for k in range(folds)]
        loo, *refits = self.loo_estimates_many([None, *rests])
        by_rest = {rest.tobytes(): est for rest, est in zip(rests, refits, strict=True)}
        return crossfit_calibrate(
            loo,
            self.student,
            self.frontier,
            groups,
            max_loss=self.max_loss,
            confidence=self.confidence,
            cap=self.max_loss if self.settings.cap_at_tolerance else math.inf,
            folds=folds,
            refit=lambda rest: by_rest[rest.tobytes()],
        )


def _mean_by(keys: Sequence[str], values: Sequence[float]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for key, value in zip(keys, values, strict=True):
        sums.setdefault(key, []).append(value)
    return {key: math.fsum(v) / len(v) for key, v in sums.items()}


def make_embedder(kind: str, evidence_prompts: Sequence[str]) -> Embedder:
    """The estimator's vector space: ``lexical`` (TF-IDF hashed character n-grams fitted on the
    evidence prompts) or ``minilm`` (the shared sentence embedder; ``DependencyMissing`` when
    ``bitrate[embeddings]`` is not installed)."""
    if kind == "minilm":
        return shared_minilm()
    return HashingEmbedder().fit(list(evidence_prompts))


def from_context(
    ctx: DetectContext,
    settings: EstimatorSettings = EstimatorSettings(),
    *,
    detection: EvidenceDetection | None = None,
) -> PromptEstimator:
    """The engine's factory: an estimator over the route's profile evidence at the route's tolerance.

    With ``detection`` measuring a learnt detector (``sdk.detect.offline``), each evidence item
    counts under the task the route's detectors give it, as a live prompt would: its category's
    neighbours, prior and safe set are the detected ones, and items left ``unknown`` (which never
    get an estimate live) are left out; the threshold is then calibrated on what detection does."""
    tol = ctx.route.tolerance
    profile = ctx.profile
    assert profile is not None, "an estimator is built only for a route with a profile"
    measured = detection.measured() if detection is not None else None
    labels = [g.task for g in measured.guesses] if measured is not None else None
    prompts = [item.prompt for item in profile.evidence or []]
    safe = None
    if measured is not None:
        labelled = {c: st.verdict_at(tol.max_loss, tol.confidence) for c, st in profile.categories.items()}
        detected = {c: v.verdict for c, v in measured.verdicts.items()}
        safe = [c for c in {*labelled, *detected} if detected.get(c) == labelled.get(c) == "safe"]
    return PromptEstimator.from_profile(
        profile,
        make_embedder(settings.embedder, prompts),
        max_loss=tol.max_loss,
        confidence=tol.confidence,
        settings=settings,
        labels=labels,
        safe=safe,
    )
