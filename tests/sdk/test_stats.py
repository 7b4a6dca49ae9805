"""sdk.stats against published values, verdict edges, and interval properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sdk.stats import (
    PairedCounts,
    bootstrap_mean_interval,
    cluster_widened,
    design_effect,
    newcombe_paired_interval,
    paired_counts,
    verdict,
    wilson_interval,
    z_two_sided,
)

# Newcombe RG (1998), "Improved confidence intervals for the difference between binomial
# proportions based on paired data", Statistics in Medicine 17:2635-2650, Table II, method 10
# (95%). Values as asserted by the R package propint (m-Py/propint,
# tests/testthat/test_Two_Dependent_Props_CI.R, "results reported in Newcombe1998").
# Table cells (e, f, g, h): e both positive, f first only, g second only, h neither; the
# difference is (f - g) / n. In bitrate's naming: e = both, f = breaks, g = fixes, h = neither.
NEWCOMBE_1998_TABLE_II = [
    ((36, 12, 2, 0), 0.0569, 0.3404),
    ((18, 12, 2, 18), 0.0562, 0.3290),
    ((53, 0, 0, 1), -0.0729, 0.0729),
    ((0, 30, 0, 0), 0.8395, 1.0),
]

# Newcombe RG (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Statistics in Medicine 17:857-872, Wilson score method (95%); the first two as
# asserted by propint (tests/testthat/test_Single_Proportion_CI.R); 0/20 has the closed form
# z^2 / (n + z^2) for its upper end.
WILSON_1998 = [((81, 263), 0.2553, 0.3662), ((15, 148), 0.0624, 0.1605), ((0, 20), 0.0, 0.1611)]


@pytest.mark.parametrize(("cells", "low", "high"), NEWCOMBE_1998_TABLE_II)
def test_newcombe_matches_published_table(cells, low, high):
    e, f, g, h = cells
    got_low, got_high = newcombe_paired_interval(PairedCounts(both=e, breaks=f, fixes=g, neither=h), 0.95)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize(("xn", "low", "high"), WILSON_1998)
def test_wilson_matches_published_values(xn, low, high):
    got_low, got_high = wilson_interval(*xn, 0.95)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


def test_z_two_sided_known_quantiles():
    assert z_two_sided(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_two_sided(0.90) == pytest.approx(1.644854, abs=1e-6)
    with pytest.raises(ValueError):
        z_two_sided(1.0)


def test_verdict_edges_at_exactly_max_loss():
    assert verdict(-0.01, 0.02, 0.02) == "safe"  # upper end exactly on the tolerance: safe
    assert verdict(0.02, 0.10, 0.02) == "uncertain"  # lower end exactly on it: not yet unsafe
    assert verdict(0.0201, 0.10, 0.02) == "unsafe"
    assert verdict(-0.01, 0.0201, 0.02) == "uncertain"
    assert verdict(0.0, 0.0, 0.0) == "safe"


def test_paired_counts_maps_cells_from_the_students_side():
    student = [1, 0, 1, 0, 1]
    frontier = [1, 1, 0, 0, 1]
    assert paired_counts(student, frontier) == PairedCounts(both=2, breaks=1, fixes=1, neither=1)
    assert paired_counts([0.5], [1]) is None
    with pytest.raises(ValueError):
        paired_counts([1], [1, 0])


def test_bootstrap_is_seeded_and_collapses_on_constant_differences():
    diffs = [random.Random(1).uniform(-0.2, 0.6) for _ in range(50)]
    assert bootstrap_mean_interval(diffs, 0.9, seed=3) == bootstrap_mean_interval(diffs, 0.9, seed=3)
    assert bootstrap_mean_interval([0.25] * 10, 0.9) == pytest.approx((0.25, 0.25))


def test_bootstrap_agrees_with_normal_theory_on_a_large_sample():
    rng = random.Random(7)
    diffs = [rng.gauss(0.1, 0.3) for _ in range(400)]
    mean = sum(diffs) / len(diffs)
    sd = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5
    half = z_two_sided(0.9) * sd / len(diffs) ** 0.5
    low, high = bootstrap_mean_interval(diffs, 0.9, n_boot=2000, seed=0)
    assert low == pytest.approx(mean - half, abs=0.25 * half)
    assert high == pytest.approx(mean + half, abs=0.25 * half)


def test_newcombe_coverage_is_near_nominal_in_simulation():
    """Seeded simulation: true loss 0.05 (breaks 0.10, fixes 0.05), n = 120, 90% intervals."""
    rng = random.Random(2024)
    covered, runs = 0, 400
    for _ in range(runs):
        cells = {"both": 0, "breaks": 0, "fixes": 0, "neither": 0}
        for _ in range(120):
            u = rng.random()
            cells["breaks" if u < 0.10 else "fixes" if u < 0.15 else "both" if u < 0.75 else "neither"] += 1
        low, high = newcombe_paired_interval(PairedCounts(**cells), 0.90)
        covered += low <= 0.05 <= high
    assert 0.85 <= covered / runs <= 0.96


cells = st.integers(min_value=0, max_value=60)


@settings(max_examples=200, deadline=None)
@given(cells, cells, cells, cells, st.sampled_from([0.8, 0.9, 0.95]))
def test_newcombe_interval_contains_estimate_and_nests_by_level(both, breaks, fixes, neither, conf):
    counts = PairedCounts(both, breaks, fixes, neither)
    assume(counts.n > 0)
    estimate = (breaks - fixes) / counts.n
    low, high = newcombe_paired_interval(counts, conf)
    wide_low, wide_high = newcombe_paired_interval(counts, 0.99)
    assert -1.0 <= wide_low <= low <= estimate + 1e-12
    assert estimate - 1e-12 <= high <= wide_high <= 1.0


def _clustered(n_groups: int, size: int, seed: int = 0) -> tuple[list[float], list[int]]:
    """Each group's items copy one 0/1 loss: perfectly correlated within a group."""
    rng = random.Random(seed)
    per_group = [float(rng.random() < 0.3) for _ in range(n_groups)]
    return [d for d in per_group for _ in range(size)], [g for g in range(n_groups) for _ in range(size)]


def test_design_effect_is_one_for_singletons_and_the_group_size_for_copies():
    diffs, _ = _clustered(60, 1)
    assert design_effect(diffs, list(range(60))) == pytest.approx(1.0)
    copies, groups = _clustered(60, 3)
    assert design_effect(copies, groups) == pytest.approx(3.0, rel=0.05)


def test_design_effect_assumes_the_worst_when_nothing_varies():
    assert design_effect([0.0] * 6, [0, 0, 0, 1, 1, 2]) == pytest.approx((9 + 4 + 1) / 6)
    assert design_effect([0.0, 1.0, 1.0], ["a", "a", "a"]) == pytest.approx(3.0)
    assert design_effect([0.0] * 5, list(range(5))) == pytest.approx(1.0)


def test_design_effect_never_narrows_and_rejects_mismatched_groups():
    # alternating within each group: negative intra-group correlation, floored at 1
    assert design_effect([0.0, 1.0] * 20, [i // 2 for i in range(40)]) == 1.0
    with pytest.raises(ValueError):
        design_effect([0.0, 1.0], [0])


def test_cluster_widened_stretches_each_side_and_clips():
    assert cluster_widened((0.1, 0.4), 0.2, 4.0) == pytest.approx((0.0, 0.6))
    assert cluster_widened((0.1, 0.4), 0.2, 1.0) == pytest.approx((0.1, 0.4))
    assert cluster_widened((0.1, 0.4), 0.2, 0.5) == pytest.approx((0.1, 0.4))  # never narrower
    assert cluster_widened((0.5, 0.9), 0.7, 100.0) == pytest.approx((-1.0, 1.0))


def test_widened_newcombe_on_copies_is_about_the_per_group_interval():
    per_group, _ = _clustered(80, 1, seed=3)
    copies, groups = _clustered(80, 3, seed=3)
    loss = sum(per_group) / len(per_group)

    def interval(diffs):
        return newcombe_paired_interval(paired_counts([1.0 - d for d in diffs], [1.0] * len(diffs)), 0.9)

    plain, narrow = interval(per_group), interval(copies)
    wide = cluster_widened(narrow, loss, design_effect(copies, groups))
    assert narrow[1] - narrow[0] < 0.7 * (plain[1] - plain[0])  # treating copies as items over-promises
    assert wide[1] - wide[0] == pytest.approx(plain[1] - plain[0], rel=0.1)


def test_cluster_bootstrap_resamples_whole_groups():
    rng = random.Random(5)
    diffs = [rng.choice([-1.0, 0.0, 0.0, 1.0]) for _ in range(50)]
    plain = bootstrap_mean_interval(diffs, 0.9, seed=2)
    assert bootstrap_mean_interval(diffs, 0.9, seed=2, groups=list(range(50))) == pytest.approx(plain)
    copies = [d for d in diffs for _ in range(4)]
    grouped = bootstrap_mean_interval(copies, 0.9, seed=2, groups=[i // 4 for i in range(200)])
    assert grouped == pytest.approx(plain)  # four copies of a prompt weigh as one
    assert bootstrap_mean_interval(copies, 0.9, seed=2)[1] < plain[1]
