"""profiles.diff: changed verdicts, losses that moved beyond the intervals, added and removed."""

from __future__ import annotations

from profiles.diff import diff_profiles
from sdk.profile import Tolerance
from tests.profiles.test_report import make_profile


def _by_name(result):
    return {c.category: c for c in result.changes}


def test_identical_profiles_have_no_changes():
    a = make_profile(math=(40, 30, 2, 28), chat=(300, 2, 2, 96))
    result = diff_profiles(a, a)
    assert result.changed == []
    assert [c.kind for c in result.changes] == ["same", "same"]
    assert result.tolerance_note is None


def test_verdict_change_moved_added_and_removed():
    a = make_profile(
        math=(40, 30, 2, 28),  # unsafe
        chat=(300, 2, 2, 96),  # safe
        code=(40, 30, 2, 28),  # unsafe, loss 0.28
        legal=(50, 5, 5, 40),
    )
    b = make_profile(
        math=(68, 2, 2, 28),  # better student: loss 0, few discordant items: safe
        chat=(300, 2, 2, 96),  # unchanged
        code=(40, 15, 2, 43),  # still unsafe, loss 0.13: outside A's interval
        poetry=(50, 5, 5, 40),
    )
    changes = _by_name(diff_profiles(a, b))
    assert (changes["math"].kind, changes["math"].verdict_a, changes["math"].verdict_b) == (
        "verdict",
        "unsafe",
        "safe",
    )
    assert changes["math"].moved
    assert changes["chat"].kind == "same"
    assert (changes["code"].kind, changes["code"].verdict_b) == ("moved", "unsafe")
    assert changes["poetry"].kind == "added" and changes["poetry"].verdict_a is None
    assert changes["legal"].kind == "removed" and changes["legal"].loss_b is None
    assert [c.kind for c in diff_profiles(a, b).changes] == ["verdict", "moved", "added", "removed", "same"]


def test_different_tolerances_compare_at_the_baselines():
    a = make_profile(chat=(60, 6, 3, 11))  # loss ~0.04
    loose = a.model_copy(update={"tolerance": Tolerance(max_loss=0.2, confidence=0.9)})
    result = diff_profiles(a, loose)
    assert "tolerances differ" in result.tolerance_note
    assert result.changed == []  # same data, judged at A's tolerance: same verdict
    assert loose.categories["chat"].verdict_at(0.2, 0.9) == "safe"
