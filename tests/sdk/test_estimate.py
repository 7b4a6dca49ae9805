"""Per-prompt loss estimates: neighbours, shrinkage toward the category, leave-prompt-out
calibration against the tolerance, and the engine's use of them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdk.calibration import _prefix_design_effects, _upper_bounds
from sdk.decision import TaskGuess
from sdk.embed import HashingEmbedder, VectorIndex
from sdk.estimate import (
    EstimatorSettings,
    PromptEstimator,
    calibrate,
    crossfit_calibrate,
    prompt_folds,
)
from sdk.profile import EvidenceItem, ModelIdentity, Profile, SuiteInfo, Tolerance
from sdk.protocol import ChatRequest
from sdk.stats import design_effect

LANGS = ["French", "German", "Spanish", "Italian", "Dutch", "Polish", "Swedish", "Greek", "Turkish", "Czech"]
THINGS = ["the weather", "my cat", "the train", "a recipe", "the museum", "our garden"]
TOPICS = ["prime numbers", "graph colouring", "compact sets", "group orders", "series", "integrals"]


def easy(i: int) -> str:
    return f"Translate the sentence about {THINGS[i % 6]} into {LANGS[i % 10]}."


def hard(i: int) -> str:
    return f"Prove rigorously the theorem on {TOPICS[i % 6]} number {i} with every lemma."


def evidence(n_easy: int = 200, n_hard: int = 30) -> list[EvidenceItem]:
    """One mixed category: easy prompts the student gets right, hard ones it gets wrong."""
    items = [
        EvidenceItem(id=f"e{i}", category="mixed", prompt=easy(i), student=1, frontier=1)
        for i in range(n_easy)
    ]
    items += [
        EvidenceItem(id=f"h{i}", category="mixed", prompt=hard(i), student=0, frontier=1)
        for i in range(n_hard)
    ]
    return items


def profile(items: list[EvidenceItem], max_loss: float = 0.05) -> Profile:
    from profiles.assemble import ItemOutcome, assemble_profile

    outcomes = [ItemOutcome(i.id, i.category, i.prompt, i.student, i.frontier) for i in items]
    return assemble_profile(
        outcomes,
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["t"], sha256="0" * 64, n_items=len(items)),
        tolerance=Tolerance(max_loss=max_loss, confidence=0.9),
        method="import",
    )


def estimator(items=None, settings=EstimatorSettings(), max_loss=0.05) -> PromptEstimator:
    items = items or evidence()
    embedder = HashingEmbedder().fit([i.prompt for i in items])
    return PromptEstimator.from_profile(
        profile(items, max_loss), embedder, max_loss=max_loss, confidence=0.9, settings=settings
    )


def test_similar_prompts_inherit_their_neighbours_loss():
    est = estimator()
    e, h = est.estimate_text(easy(101), "mixed"), est.estimate_text(hard(101), "mixed")
    assert e.category_loss == pytest.approx(30 / 230)
    assert e.loss < e.category_loss < h.loss
    assert e.n_eff > 1 and h.n_eff > 1


def test_far_prompts_fall_back_to_the_category_loss():
    est = estimator()
    far = est.estimate_text("zq vkx wq", "mixed")
    assert far.n_eff < 0.5
    assert far.loss == pytest.approx(far.category_loss, abs=0.05)


def test_unknown_category_uses_the_overall_loss_and_all_neighbours():
    est = estimator()
    guess = est.estimate(
        ChatRequest(model="r", messages=[{"role": "user", "content": easy(7)}]),
        TaskGuess("unknown", "none", 0),
    )
    assert guess.category_loss == pytest.approx(est.overall_loss)
    assert guess.loss < est.overall_loss


def test_stronger_prior_shrinks_harder():
    weak, strong = estimator(settings=EstimatorSettings(k0=1)), estimator(settings=EstimatorSettings(k0=50))
    prior = 30 / 230
    assert abs(strong.estimate_text(hard(3), "mixed").loss - prior) < abs(
        weak.estimate_text(hard(3), "mixed").loss - prior
    )


def test_leave_out_drops_every_item_of_the_same_prompt():
    # one prompt scored on three instructions, all broken; every other item of the category is fine
    items = evidence(n_easy=40, n_hard=0)
    twice = easy(0) + " Twice."
    items += [
        EvidenceItem(id=f"x{k}", category="mixed", prompt=twice, student=0, frontier=1) for k in range(3)
    ]
    est = estimator(items, EstimatorSettings(k0=1))
    loo = est.loo_estimates()
    assert loo[-3:].max() < 0.05  # its own copies are not its neighbours, nor in its prior
    assert est.estimate_text(twice, "mixed").loss > 0.3  # live, they are


def test_calibration_meets_the_tolerance_on_the_evidence():
    est = estimator()
    cal = est.calibration
    assert cal.student_share > 0.6 and cal.loss_high <= 0.05
    sent, e = est.route(easy(55), "mixed")
    assert sent and e.verdict == "safe"
    assert est.estimate_text(hard(55), "mixed").loss > e.loss
    # the budget is the average: at most the least-bad hard prompts share the easy ones' margin
    hard_sent = sum(est.route(hard(i), "mixed")[0] for i in range(100, 130))
    assert hard_sent < 10


def test_uncertain_between_threshold_and_tolerance():
    est = estimator()
    vec = est.embedder.embed([easy(1)])[0]
    loss = est.estimate_vector(vec, "mixed").loss
    est.calibration = type(est.calibration)(loss - 0.01, 0, 0, 0, 0)
    est.max_loss = loss + 0.01
    assert est.estimate_vector(vec, "mixed").verdict == "uncertain"


def test_calibrate_takes_the_largest_cut_within_the_bound_and_never_splits_ties():
    n_good = 80
    est = np.concatenate([np.linspace(0, 0.1, n_good), [0.2, 0.2, 0.2, 0.3]])
    s = np.array([1.0] * n_good + [1, 0, 0, 0])  # the tie at 0.2: one good item, two breaks
    f = np.ones(len(est))
    cal = calibrate(est, s, f, max_loss=0.06, confidence=0.9)
    # cutting inside the tie after its good item would pass (upper 0.032), the whole tie does not (0.070)
    assert cal.threshold == pytest.approx(0.1) and cal.n_student == n_good
    assert cal.loss_high <= 0.06 and cal.loss == 0.0
    assert calibrate(est, s, f, max_loss=0.99, confidence=0.9).n_student == len(est)


def test_calibrate_with_nothing_safe_sends_nothing():
    est = np.linspace(0, 1, 20)
    cal = calibrate(est, np.zeros(20), np.ones(20), max_loss=0.02, confidence=0.9)
    assert cal.threshold == -math.inf and cal.n_student == 0 and cal.student_share == 0


def test_continuous_scores_use_a_normal_bound():
    est = np.linspace(0, 1, 200)
    s = np.full(200, 0.9)
    f = np.concatenate([np.full(100, 0.9), np.full(100, 0.5)])
    cal = calibrate(est, s, f, max_loss=0.01, confidence=0.9)
    assert cal.n_student >= 100 and cal.loss_high <= 0.01


def test_empty_index_estimates_the_prior():
    empty = PromptEstimator(
        HashingEmbedder(),
        VectorIndex(np.zeros((0, 4096), np.float32), []),
        [],
        [],
        {"a": 0.3},
        max_loss=0.05,
        confidence=0.9,
    )
    e = empty.estimate_text("hello", "a")
    assert (e.loss, e.n_eff, e.verdict) == (0.3, 0.0, "unsafe")


def test_engine_routes_per_prompt_with_the_estimator(tmp_path):
    from sdk.engine import Engine
    from sdk.policy import load_policy

    profile(evidence()).save(tmp_path / "profile.json")
    (tmp_path / "policy.yaml").write_text(
        "version: 1\n"
        "models:\n"
        "  big: {backend: openai, base_url: 'http://127.0.0.1:9/v1', model: big}\n"
        "  small: {backend: openai, base_url: 'http://127.0.0.1:9/v1', model: small}\n"
        "routes:\n"
        "  auto:\n"
        "    student: small\n"
        "    frontier: big\n"
        "    profile: profile.json\n"
        "    per_prompt: true\n"
        "    tolerance: {max_loss: 0.05, confidence: 0.9}\n"
        "    tasks: {detect: [hint]}\n"
    )
    engine = Engine(load_policy(tmp_path / "policy.yaml"))

    def explain(text):
        return engine.explain(
            ChatRequest(model="auto", messages=[{"role": "user", "content": text}]), "mixed"
        )

    e, h = explain(easy(77)), explain(hard(77))
    assert (e.rule, e.side, e.target, e.verdict) == ("per_prompt", "student", "small", "safe")
    assert (h.rule, h.side, h.verdict) == ("per_prompt", "frontier", "unsafe")
    assert e.estimated_loss < h.estimated_loss


def test_threshold_is_capped_at_the_tolerance():
    est = np.concatenate([np.full(100, 0.01), np.full(5, 0.3)])
    s = np.concatenate([np.ones(100), [1, 1, 1, 0, 1]])
    f = np.ones(105)
    # uncapped, the average absorbs the one break among the 0.3s
    assert calibrate(est, s, f, max_loss=0.05, confidence=0.9).n_student == 105
    capped = calibrate(est, s, f, max_loss=0.05, confidence=0.9, cap=0.05)
    assert capped.n_student == 100 and capped.threshold == pytest.approx(0.01)


def test_crossfit_certifies_on_the_fold_that_did_not_choose():
    # estimates rank well; every group is one prompt; the certifying fold must agree
    rng = np.random.default_rng(0)
    n = 400
    est = np.sort(rng.random(n))
    s = np.where(est < 0.5, 1.0, (rng.random(n) < 0.5).astype(float))  # breaks only above 0.5
    f = np.ones(n)
    groups = np.arange(n)
    cal = crossfit_calibrate(est, s, f, groups, max_loss=0.05, confidence=0.9)
    assert cal.threshold > -math.inf and cal.loss_high <= 0.05
    chosen = est <= cal.threshold
    assert cal.n_student == chosen.sum() and cal.loss <= cal.loss_high  # loss: of the held-out picks
    # too few prompts to split: nothing certified
    few = crossfit_calibrate(est[:3], s[:3], f[:3], groups[:3], max_loss=0.5, confidence=0.9)
    assert few.threshold == -math.inf


def test_a_safe_category_stays_safe_for_prompts_within_tolerance():
    items = [
        EvidenceItem(id=f"e{i}", category="easy", prompt=easy(i), student=1, frontier=1) for i in range(99)
    ]
    est = estimator(items)
    assert est.safe_categories == {"easy"}  # but the profile's category interval is within tolerance
    sent, e = est.route(easy(3), "easy")
    assert sent and e.verdict == "safe" and e.loss <= 0.05


def test_prefix_design_effects_match_the_one_shot_formula():
    rng = np.random.default_rng(4)
    diffs = (rng.random(80) < 0.2).astype(float) - (rng.random(80) < 0.05)
    groups = rng.integers(0, 25, 80)  # a prefix may hold part of a prompt's items
    fast = _prefix_design_effects(diffs, groups)
    slow = [design_effect(diffs[:m].tolist(), groups[:m].tolist()) for m in range(1, 81)]
    assert fast == pytest.approx(slow)


def _copies(n_prompts: int, size: int, seed: int = 0):
    """Paired 0/1 scores, every prompt's row repeated ``size`` times (one response per prompt)."""
    rng = np.random.default_rng(seed)
    s = (rng.random(n_prompts) > 0.04).astype(float)
    f = np.ones(n_prompts)
    return np.repeat(s, size), np.repeat(f, size), np.repeat(np.arange(n_prompts), size)


def test_prompt_aware_bounds_equal_plain_ones_for_one_row_per_prompt():
    s, f, groups = _copies(120, 1)
    assert _upper_bounds(s, f, 0.9, groups) == pytest.approx(_upper_bounds(s, f, 0.9))


def test_prompt_aware_bounds_on_copied_rows_are_the_per_prompt_bounds():
    s1, f1, _ = _copies(120, 1, seed=2)
    s3, f3, groups = _copies(120, 3, seed=2)
    per_prompt = _upper_bounds(s1, f1, 0.9)[-1]
    assert _upper_bounds(s3, f3, 0.9)[-1] < per_prompt - 0.005  # copies counted as evidence
    assert _upper_bounds(s3, f3, 0.9, groups)[-1] == pytest.approx(per_prompt, rel=0.1)


def test_calibrate_certifies_less_when_rows_are_copies_of_few_prompts():
    s, f, groups = _copies(60, 4, seed=1)
    est = np.repeat(np.linspace(0, 1, 60), 4)
    naive = calibrate(est, s, f, max_loss=0.08, confidence=0.9)
    aware = calibrate(est, s, f, max_loss=0.08, confidence=0.9, groups=groups)
    assert naive.n_student > aware.n_student
    single = calibrate(est, s, f, max_loss=0.08, confidence=0.9, groups=np.arange(len(s)))
    assert single == naive


def test_prompt_folds_keep_a_prompts_items_together():
    groups = np.repeat(np.arange(30), 3)
    fold = prompt_folds(groups, 5, seed=1)
    assert set(fold.tolist()) == set(range(5))
    assert all(len(set(fold[groups == g].tolist())) == 1 for g in range(30))
    assert np.bincount(fold).tolist() == [18] * 5


def _ranked(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    est = rng.random(n)
    s = np.where(est < 0.5, 1.0, (rng.random(n) < 0.5).astype(float))  # breaks only above 0.5
    return est, s, np.ones(n), np.arange(n)


def test_crossfit_live_threshold_is_the_lowest_folds():
    est, s, f, groups = _ranked()
    cal = crossfit_calibrate(est, s, f, groups, max_loss=0.05, confidence=0.9)
    fold = prompt_folds(groups, 5)
    folds = [
        calibrate(est[fold != k], s[fold != k], f[fold != k], max_loss=0.05, confidence=0.9).threshold
        for k in range(5)
    ]
    assert cal.threshold == min(folds) and cal.threshold > -math.inf


def test_crossfit_picks_each_folds_items_by_estimates_fitted_without_that_fold():
    est, s, f, groups = _ranked()
    seen = []

    def refit(rest: np.ndarray) -> np.ndarray:
        seen.append(rest.copy())
        return est  # an estimator fitted elsewhere: the same for every fold

    same = crossfit_calibrate(est, s, f, groups, max_loss=0.05, confidence=0.9, refit=refit)
    assert same == crossfit_calibrate(est, s, f, groups, max_loss=0.05, confidence=0.9)
    assert len(seen) == 5 and not np.any(np.sum(seen, axis=0) != 4)  # each item held out once

    def blind(rest: np.ndarray) -> np.ndarray:
        return np.where(rest, est, 1.0)  # says nothing about the prompts it did not see

    assert crossfit_calibrate(est, s, f, groups, max_loss=0.05, confidence=0.9, refit=blind).n_student == 0


def test_loo_estimates_over_a_pool_use_only_the_pooled_items():
    est = estimator()
    everything = est.loo_estimates(np.ones(len(est.index), dtype=bool))
    assert everything == pytest.approx(est.loo_estimates())
    easy_only = np.array([i < 200 for i in range(230)])  # the hard items' losses are not pooled
    assert est.loo_estimates(easy_only) == pytest.approx(np.zeros(230), abs=1e-12)
