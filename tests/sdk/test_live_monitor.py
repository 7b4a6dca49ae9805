"""The live monitor (``sdk.live``) on synthetic streams with fixed seeds: validity, detection,
sticky demotion, reset, auto-promotion, state round trip, coverage, and the vectorised update
pinned to the formula in the module docstring."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sdk.live import LiveMonitor, MonitorBoard, MonitorSettings, VerdictChange

MAX_LOSS = 0.05
SETTINGS = MonitorSettings(MAX_LOSS, 0.90)


def pairs(seed: int, n: int, breaks: float, fixes: float = 0.0) -> list[tuple[float, float]]:
    """``n`` graded 0/1 pairs ``(s, f)``: the frontier alone right with probability ``breaks``,
    the student alone right with ``fixes``, else both right; loss = breaks - fixes."""
    u = np.random.default_rng(seed).random(n)
    return [(0.0, 1.0) if x < breaks else (1.0, 0.0) if x < breaks + fixes else (1.0, 1.0) for x in u]


def feed(monitor: LiveMonitor, rows: list[tuple[float, float]]) -> list[str]:
    return [monitor.observe(s, f) for s, f in rows]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_stream_within_tolerance_is_never_demoted_and_ends_safe():
    monitor = LiveMonitor(SETTINGS)
    verdicts = feed(monitor, pairs(1, 3000, breaks=0.04, fixes=0.04))
    assert "unsafe" not in verdicts
    snap = monitor.snapshot()
    assert (snap.verdict, snap.n, snap.demoted_since) == ("safe", 3000, None)
    assert snap.loss_low < snap.loss < snap.loss_high <= MAX_LOSS


def test_a_bad_stream_is_demoted_quickly_and_says_when():
    clock = Clock()
    monitor = LiveMonitor(SETTINGS, clock=clock)
    verdicts = []
    for i, (s, f) in enumerate(pairs(2, 400, breaks=0.35)):
        clock.now = 1000.0 + i
        verdicts.append(monitor.observe(s, f))
    first = verdicts.index("unsafe")
    assert first < 100
    snap = monitor.snapshot()
    assert snap.verdict == "unsafe" and snap.demoted_since == 1000.0 + first
    assert snap.loss_low > MAX_LOSS and snap.recovery_n == 400 - first - 1


def test_a_jump_after_a_long_good_stretch_is_caught():
    delays = []
    for seed in range(8):
        monitor = LiveMonitor(SETTINGS)
        assert "unsafe" not in feed(monitor, pairs(seed, 3000, breaks=0.06, fixes=0.04))
        after = feed(monitor, pairs(100 + seed, 400, breaks=0.36, fixes=0.04))
        delays.append(after.index("unsafe") + 1 if "unsafe" in after else 10_000)
    assert max(delays) < 400 and sorted(delays)[4] < 150


def test_a_stream_at_exactly_the_tolerance_is_rarely_demoted():
    """Ville: at most (1 - confidence) / 2 = 5% of such streams may ever be demoted."""
    demoted = sum("unsafe" in feed(LiveMonitor(SETTINGS), pairs(seed, 600, MAX_LOSS)) for seed in range(40))
    assert demoted <= 2


def test_a_drifting_stream_never_above_the_tolerance_is_not_demoted():
    """The guarantee needs only the loss given the past <= max_loss, not a stationary stream."""
    for seed in range(5):
        monitor = LiveMonitor(SETTINGS)
        for block in range(10):
            breaks = MAX_LOSS if block % 2 else 0.0
            assert "unsafe" not in feed(monitor, pairs(100 * seed + block, 200, breaks, fixes=0.02))


def test_reset_starts_a_fresh_test():
    monitor = LiveMonitor(SETTINGS)
    feed(monitor, pairs(7, 300, breaks=0.4))
    monitor.reset()
    snap = monitor.snapshot()
    assert (snap.verdict, snap.n, snap.loss, snap.demoted_since, snap.recovery_n) == (
        "uncertain",
        0,
        None,
        None,
        None,
    )
    assert (snap.loss_low, snap.loss_high) == (-1.0, 1.0)


def test_auto_promote_when_the_recovery_certifies_the_category():
    monitor = LiveMonitor(MonitorSettings(MAX_LOSS, 0.90, auto_promote=True))
    assert "unsafe" in feed(monitor, pairs(8, 300, breaks=0.4))
    good = feed(monitor, pairs(9, 3000, breaks=0.0))  # the student is fixed
    promoted_at = good.index("safe")
    assert set(good[:promoted_at]) == {"unsafe"} and promoted_at < 300
    assert "unsafe" not in good[promoted_at:]
    snap = monitor.snapshot()
    # a promotion starts a fresh watch that keeps the recovery's certification
    assert snap.n == 3000 - promoted_at - 1 and snap.loss == 0.0
    assert snap.demoted_since is None and snap.recovery_n is None


def test_without_auto_promote_the_recovery_is_only_shown():
    monitor = LiveMonitor(SETTINGS)
    bad = feed(monitor, pairs(5, 300, breaks=0.4))
    demoted_at = bad.index("unsafe")
    assert set(feed(monitor, pairs(6, 2000, breaks=0.0))) == {"unsafe"}
    snap = monitor.snapshot()
    assert snap.n == 2300 and snap.recovery_n == 2300 - demoted_at - 1
    assert snap.recovery_high is not None and snap.recovery_high <= MAX_LOSS  # promotable, not promoted


def test_state_round_trips_through_json_and_continues_identically():
    clock = Clock()
    monitor = LiveMonitor(SETTINGS, clock=clock)
    feed(monitor, pairs(10, 500, breaks=0.02) + pairs(11, 200, breaks=0.4))
    assert monitor.verdict == "unsafe"  # the state holds a recovery too
    state = json.loads(json.dumps(monitor.to_dict()))
    copy = LiveMonitor.from_dict(state, clock=clock)
    assert copy.snapshot() == monitor.snapshot()
    rest = pairs(12, 300, breaks=0.1, fixes=0.05)
    assert feed(copy, rest) == feed(monitor, rest)
    assert copy.to_dict() == monitor.to_dict()
    assert len(json.dumps(state)) < 30_000


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update(version=99),
        lambda s: s["watch"].update(log_up=[0.0, 1.0]),
        lambda s: s["watch"].pop("n"),
        lambda s: s.update(demoted_since=None),  # a recovery without a demotion
        lambda s: s["settings"].update(confidence=2.0),
    ],
)
def test_a_broken_state_is_refused(mutate):
    monitor = LiveMonitor(SETTINGS)
    feed(monitor, pairs(13, 200, breaks=0.4))
    state = json.loads(json.dumps(monitor.to_dict()))
    mutate(state)
    with pytest.raises(ValueError, match="monitor state|need"):
        LiveMonitor.from_dict(state)


def test_the_interval_holds_the_true_loss_at_every_row():
    for seed, (breaks, fixes) in enumerate([(0.1, 0.05), (0.3, 0.0), (0.0, 0.2)]):
        monitor = LiveMonitor(SETTINGS)
        true_loss = breaks - fixes
        for s, f in pairs(20 + seed, 2000, breaks, fixes):
            monitor.observe(s, f)
            snap = monitor.snapshot()
            assert snap.loss_low < true_loss < snap.loss_high
        assert snap.loss_high - snap.loss_low < 0.12  # and it narrows


def test_continuous_scores_breaks_and_fixes():
    monitor = LiveMonitor(SETTINGS)
    rows = [(0.5, 0.7), (0.5, 0.5), (0.8, 0.6), (0.2, 0.9)]
    feed(monitor, rows)
    snap = monitor.snapshot()
    assert snap.n == 4 and snap.loss == pytest.approx((0.2 + 0 - 0.2 + 0.7) / 4)
    assert (snap.breaks, snap.fixes) == (0.5, 0.25)


@pytest.mark.parametrize("scores", [(-0.1, 0.5), (0.5, 1.5), (math.nan, 0.5)])
def test_scores_outside_zero_one_are_refused(scores):
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        LiveMonitor(SETTINGS).observe(*scores)


def test_the_vectorised_update_matches_the_formula_at_max_loss():
    """The capital processes at m = max_loss, recomputed row by row from the module docstring's
    formulas with plain floats (bets from the window and from the watch's own rows)."""
    settings = SETTINGS
    rows = pairs(30, 400, breaks=0.1, fixes=0.03) + pairs(31, 100, breaks=0.4)
    monitor = LiveMonitor(settings)
    feed(monitor, rows)
    m, c, decay = settings.max_loss, settings.max_bet, 1 - 1 / settings.window
    cap = settings.threshold + settings.memory
    w = [0.0, 0.0, 0.0, 0.0]
    n, total, squares = 0, 0.0, 0.0
    log_up = log_down = 0.0
    for s, f in rows:
        d = f - s
        mean = w[1] / (1 + w[0])
        var = max((0.25 + w[2]) / (1 + w[0]) - mean**2, 1e-6)
        margin = settings.caution * math.sqrt(var * (1 + w[3])) / (1 + w[0])
        own = total / (1 + n)
        own_var = max((0.25 + squares) / (1 + n) - own**2, 1e-6)
        up, up_var = (mean - margin, var) if mean - margin > own else (own, own_var)
        down, down_var = (mean + margin, var) if mean + margin < own else (own, own_var)
        a = min(max((up - m) / (up_var + (up - m) ** 2), 0.0), c / (1 + m))
        b = min(max((m - down) / (down_var + (m - down) ** 2), 0.0), c / (1 - m))
        log_up = min(log_up + math.log1p(a * (d - m)), cap)
        log_down = min(log_down + math.log1p(-b * (d - m)), cap)
        w = [decay * w[0] + 1, decay * w[1] + d, decay * w[2] + d * d, decay**2 * w[3] + 1]
        n, total, squares = n + 1, total + d, squares + d * d
    state = monitor.to_dict()
    grid = np.union1d(np.linspace(-1, 1, settings.grid_points).round(12), [m])
    at = int(np.searchsorted(grid, m))
    assert state["watch"]["log_up"][at] == pytest.approx(log_up, abs=1e-9)
    assert state["watch"]["log_down"][at] == pytest.approx(log_down, abs=1e-9)


def test_settings_are_checked():
    with pytest.raises(ValueError):
        MonitorSettings(1.5, 0.9)
    with pytest.raises(ValueError):
        MonitorSettings(0.05, 0.9, window=0.5)


def test_the_board_logs_changes_by_row_from_the_start_verdicts():
    board = MonitorBoard(SETTINGS, start={"math": "safe"})
    changes: list[VerdictChange] = []
    stream = [("math", s, f) for s, f in pairs(40, 300, breaks=0.4)]
    stream.insert(3, ("chat", 1.0, 1.0))
    for category, s, f in stream:
        change = board.observe(category, s, f)
        if change is not None:
            changes.append(change)
    assert changes[0] == VerdictChange(0, "math", "safe", "uncertain")
    assert changes[1] == VerdictChange(3, "chat", "unknown", "uncertain")
    demotion = changes[2]
    assert (demotion.category, demotion.before, demotion.after) == ("math", "uncertain", "unsafe")
    # the board's clock counts rows: demoted_since is the demoting row
    assert board.snapshots()["math"].demoted_since == demotion.at
    assert list(board.snapshots()) == ["math", "chat"]
    assert demotion.to_json() == {"at": demotion.at, "category": "math", "from": "uncertain", "to": "unsafe"}
