"""RouteLLM's metrics: the PGR sweep, APGR (random ~0.5, oracle near 1), CPT, and realised loss."""

from __future__ import annotations

import numpy as np
import pytest

from profiles.router_metrics import CurvePoint, apgr, cpt, realised_loss, sweep


def outcomes(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.random(n) < 0.45).astype(float), (rng.random(n) < 0.85).astype(float), rng


@pytest.mark.parametrize("bins", [10, None])
def test_random_routing_has_apgr_about_one_half(bins):
    student, frontier, rng = outcomes(4000)
    values = [apgr(sweep(rng.random(4000), student, frontier, bins=bins)) for _ in range(5)]
    assert abs(np.mean(values) - 0.5) < 0.03


def test_oracle_beats_random_and_reverse_oracle_loses():
    student, frontier, rng = outcomes(2000, seed=1)
    gain = frontier - student + rng.random(2000) * 1e-3  # breaks first, fixes last
    assert apgr(sweep(gain, student, frontier)) > 0.8
    assert apgr(sweep(-gain, student, frontier)) < 0.2


def test_sweep_runs_from_all_student_to_all_frontier_like_routellm():
    student = [0, 0, 1, 1, 0]
    frontier = [1, 1, 1, 0, 1]
    curve = sweep([0.9, 0.8, 0.5, 0.1, 0.3], student, frontier, bins=None)
    assert (curve[0].frontier_share, curve[0].quality, curve[0].pgr) == (0.0, 0.4, 0.0)
    assert (curve[-1].frontier_share, curve[-1].quality, curve[-1].pgr) == (1.0, 0.8, 1.0)
    shares = [p.frontier_share for p in curve]
    assert shares == sorted(shares) and len(curve) == 6
    # 10 quantile bins: 11 points, the last edge uses ">" so it is the all-student point
    assert len(sweep([0.9, 0.8, 0.5, 0.1, 0.3], student, frontier)) == 11


def test_apgr_and_cpt_on_a_hand_computed_curve():
    curve = [CurvePoint(0, 0.0, 0.0, 0.0), CurvePoint(0, 0.5, 0.0, 0.8), CurvePoint(0, 1.0, 0.0, 1.0)]
    assert apgr(curve) == pytest.approx((0.5 * 0.8 / 2) + 0.5 * (0.8 + 1.0) / 2)
    assert cpt(curve, 0.4) == pytest.approx(0.25)
    assert cpt(curve, 0.8) == pytest.approx(0.5)
    assert cpt(curve, 0.9) == pytest.approx(0.75)
    assert cpt(curve, 1.1) is None


def test_equal_models_have_no_pgr():
    curve = sweep([0.1, 0.2], [1, 0], [0, 1])
    assert all(p.pgr is None for p in curve)
    assert apgr(curve) is None and cpt(curve, 0.5) is None


def test_sweep_rejects_mismatched_input():
    with pytest.raises(ValueError):
        sweep([0.1], [1, 0], [1, 1])


def test_realised_loss_uses_newcombe_for_binary_and_bootstrap_otherwise():
    binary = realised_loss([1, 1, 0, 1], [1, 1, 1, 1], 0.9)
    assert (binary.n, binary.loss, binary.interval) == (4, 0.25, "newcombe")
    assert binary.low < 0.25 < binary.high and not binary.within(0.1) and binary.within(0.25)
    graded = realised_loss([0.5, 0.7, 0.9], [0.6, 0.7, 0.8], 0.9)
    assert graded.interval == "bootstrap" and graded.loss == pytest.approx(0.0)
    none = realised_loss([], [], 0.9)
    assert none.loss is None and none.within(0.0)


def test_realised_loss_interval_counts_a_prompts_items_once():
    rng = np.random.default_rng(1)
    s = (rng.random(50) > 0.2).astype(float).tolist()
    f = [1.0] * 50
    plain = realised_loss(s, f, 0.9)
    assert realised_loss(s, f, 0.9, groups=list(range(50))) == plain
    copied = realised_loss([x for x in s for _ in range(3)], [1.0] * 150, 0.9)
    grouped = realised_loss(
        [x for x in s for _ in range(3)], [1.0] * 150, 0.9, groups=[i // 3 for i in range(150)]
    )
    assert copied.high < plain.high and grouped.high == pytest.approx(plain.high, rel=0.1)
    assert grouped.loss == copied.loss and grouped.low < copied.low
    graded = [0.2, 0.9, 0.6, 0.4, 1.0, 0.7]
    boot = realised_loss(
        [x for x in graded for _ in range(2)], [1.0] * 12, 0.9, groups=[i // 2 for i in range(12)]
    )
    assert boot.interval == "bootstrap" and boot.high - boot.low > 0
