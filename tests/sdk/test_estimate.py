"""Per-prompt loss estimates: neighbours, shrinkage toward the category, leave-prompt-out
calibration against the tolerance, and the engine's use of them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdk.decision import TaskGuess
from sdk.embed import HashingEmbedder, VectorIndex
from sdk.estimate import EstimatorSettings, PromptEstimator, calibrate, crossfit_calibrate
from sdk.profile import EvidenceItem, ModelIdentity, Profile, SuiteInfo, Tolerance
from sdk.protocol import ChatRequest

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
