"""profiles.summary: summarize per category, and the sequential stopping rule."""

from __future__ import annotations

import random

import pytest

from profiles.summary import SequentialMonitor, doubling_looks, summarize
from sdk.stats import PairedCounts, newcombe_paired_interval


def test_summarize_binary_scores_uses_newcombe_and_counts():
    # 36 both right, 12 breaks, 2 fixes, 0 neither: Newcombe 1998 Table II example (a).
    student = [1] * 36 + [0] * 12 + [1] * 2
    frontier = [1] * 36 + [1] * 12 + [0] * 2
    stats = summarize(student, frontier, max_loss=0.02, confidence=0.95)
    assert stats.interval == "newcombe"
    assert stats.n == 50
    assert stats.counts.model_dump() == {"both": 36, "breaks": 12, "fixes": 2, "neither": 0}
    assert stats.student_accuracy == pytest.approx(38 / 50)
    assert stats.frontier_accuracy == pytest.approx(48 / 50)
    assert stats.retention == pytest.approx(38 / 48)
    assert stats.loss == pytest.approx(0.2)
    assert (stats.breaks, stats.fixes) == (pytest.approx(12 / 50), pytest.approx(2 / 50))
    assert stats.loss_low == pytest.approx(0.0569, abs=1e-4)
    assert stats.loss_high == pytest.approx(0.3404, abs=1e-4)
    assert stats.verdict == "unsafe"


def test_summarize_continuous_scores_uses_the_bootstrap():
    rng = random.Random(0)
    frontier = [rng.uniform(0.5, 1.0) for _ in range(80)]
    student = [max(0.0, f - rng.uniform(-0.05, 0.15)) for f in frontier]
    stats = summarize(student, frontier, max_loss=0.02, confidence=0.9)
    assert stats.interval == "bootstrap"
    assert stats.counts is None
    assert stats.loss_low < stats.loss < stats.loss_high
    assert stats.loss == pytest.approx(sum(f - s for s, f in zip(student, frontier, strict=True)) / 80)
    assert stats.breaks == pytest.approx(sum(f > s for s, f in zip(student, frontier, strict=True)) / 80)
    assert stats == summarize(student, frontier, max_loss=0.02, confidence=0.9)  # seeded


def test_retention_is_none_when_the_frontier_scores_zero():
    stats = summarize([1, 0, 0], [0, 0, 0], max_loss=0.02, confidence=0.9)
    assert stats.retention is None
    assert stats.fixes == pytest.approx(1 / 3)
    assert stats.loss == pytest.approx(-1 / 3)


def test_summarize_verdict_at_the_edge():
    # Identical scores: loss 0; the interval's upper end becomes the tolerance exactly.
    student = frontier = [1] * 30 + [0] * 10
    _, high = newcombe_paired_interval(PairedCounts(30, 0, 0, 10), 0.9)
    assert summarize(student, frontier, max_loss=high, confidence=0.9).verdict == "safe"
    assert summarize(student, frontier, max_loss=high - 1e-9, confidence=0.9).verdict == "uncertain"


def test_summarize_rejects_mismatched_or_empty_input():
    with pytest.raises(ValueError):
        summarize([1, 0], [1], max_loss=0.02, confidence=0.9)
    with pytest.raises(ValueError):
        summarize([], [], max_loss=0.02, confidence=0.9)


def _stream(p_break: float, p_fix: float, p_both: float, seed: int, n: int = 640):
    """Paired 0/1 scores (student, frontier) with the given cell probabilities."""
    rng = random.Random(seed)
    for _ in range(n):
        u = rng.random()
        if u < p_break:
            yield 0, 1
        elif u < p_break + p_fix:
            yield 1, 0
        elif u < p_break + p_fix + p_both:
            yield 1, 1
        else:
            yield 0, 0


def _run(monitor: SequentialMonitor, stream, category: str = "c") -> SequentialMonitor:
    for student, frontier in stream:
        monitor.observe(category, student, frontier)
        if monitor.is_settled(category):
            break
    return monitor


def test_doubling_looks_and_bonferroni_level():
    assert doubling_looks(20, 640) == (20, 40, 80, 160, 320, 640)
    assert doubling_looks(20, 100) == (20, 40, 80, 100)
    monitor = SequentialMonitor(0.05, 0.9, min_n=20)
    assert monitor.look_confidence == pytest.approx(1 - 0.1 / 6)
    assert SequentialMonitor(0.05, 0.9, min_n=30, looks=[10, 30, 60]).looks == (30, 60)


@pytest.mark.parametrize("seed", range(5))
def test_settles_early_on_a_clearly_safe_stream(seed):
    monitor = _run(SequentialMonitor(0.05, 0.9, min_n=20), _stream(0.005, 0.005, 0.7, seed))
    assert monitor.verdict("c") == "safe"
    assert monitor.settled_at("c") <= 160
    assert monitor.calls_saved({"c": 640}) == 2 * (640 - monitor.settled_at("c"))


@pytest.mark.parametrize("seed", range(5))
def test_settles_early_on_a_clearly_unsafe_stream(seed):
    monitor = _run(SequentialMonitor(0.05, 0.9, min_n=20), _stream(0.3, 0.02, 0.5, seed))
    assert monitor.verdict("c") == "unsafe"
    assert monitor.settled_at("c") <= 160


@pytest.mark.parametrize("seed", range(5))
def test_never_settles_on_a_borderline_stream(seed):
    """True loss exactly at the tolerance (breaks 10%, fixes 5%): sampled to the end, uncertain."""
    monitor = _run(SequentialMonitor(0.05, 0.9, min_n=20), _stream(0.10, 0.05, 0.6, seed))
    assert monitor.verdict("c") == "uncertain"
    assert monitor.settled_at("c") is None
    assert len(monitor._streams["c"].student) == 640


def test_borderline_error_rate_stays_within_the_promise():
    """Over many borderline streams, each wrong call stays under its one-sided 5% (0.90 two-sided).

    A valid procedure must err sometimes when the truth sits on the tolerance; the promise is
    that a settled ``safe`` is wrong at most 5% of the time (and likewise ``unsafe``).
    """
    verdicts = [
        _run(SequentialMonitor(0.05, 0.9, min_n=20), _stream(0.10, 0.05, 0.6, seed)).verdict("c")
        for seed in range(400)
    ]
    assert verdicts.count("safe") / 400 <= 0.05
    assert verdicts.count("unsafe") / 400 <= 0.05
    assert verdicts.count("uncertain") / 400 >= 0.9


def test_checks_only_at_planned_looks_and_after_min_n():
    monitor = SequentialMonitor(0.05, 0.9, min_n=20)
    looks = [monitor.observe("c", 1, 1) for _ in range(40)]
    assert [i + 1 for i, look in enumerate(looks) if look is not None] == [20, 40]
    assert [look.n for look in looks if look is not None] == [20, 40]


def test_items_after_settling_are_recorded_but_trigger_no_look():
    monitor = SequentialMonitor(0.05, 0.9, min_n=20, looks=[20, 40])
    for _ in range(20):
        monitor.observe("c", 0, 1)  # every item a break: clearly unsafe at the first look
    assert monitor.verdict("c") == "unsafe"
    assert monitor.observe("c", 1, 1) is None
    assert monitor.items_saved(100, "c") == 79
    assert monitor.items_saved(100, "unseen") == 0


def test_unsettled_category_saves_nothing():
    monitor = _run(SequentialMonitor(0.05, 0.9, min_n=20), _stream(0.10, 0.05, 0.6, 0))
    assert monitor.verdict("c") == "uncertain"
    assert monitor.calls_saved({"c": 640}) == 0
