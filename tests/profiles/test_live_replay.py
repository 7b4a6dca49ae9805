"""``profiles.live_replay``: outcome rows, in order, through a route's live monitors."""

from __future__ import annotations

import pytest

from profiles.live_replay import replay_live
from profiles.outcomes import OutcomeRow
from sdk.errors import ConfigError
from sdk.live import MonitorSettings, VerdictChange

SETTINGS = MonitorSettings(0.05, 0.90)


def row(i: int, category: str | None, student: float, frontier: float = 1.0) -> OutcomeRow:
    return OutcomeRow(id=i, category=category, prompt=f"q{i}", student=student, frontier=frontier)


def test_rows_feed_their_category_in_order_and_changes_carry_the_row_index():
    rows = [row(i, "math", student=float(i % 2)) for i in range(200)]
    rows.insert(5, row(999, "chat", 1.0))
    replay = replay_live(rows, SETTINGS, start={"math": "safe"})
    assert replay.changes[0] == VerdictChange(0, "math", "safe", "uncertain")
    assert replay.changes[1] == VerdictChange(5, "chat", "unknown", "uncertain")
    demoted = replay.first_change_to("unsafe", "math")
    assert demoted is not None and demoted > 5
    assert replay.first_change_to("unsafe", "math", after=demoted) is None
    snaps = replay.snapshots()
    assert list(snaps) == ["math", "chat"] and snaps["math"].n == 200 and snaps["chat"].n == 1
    assert snaps["math"].demoted_since == demoted  # a replay's clock counts rows


def test_a_row_without_category_is_a_config_error_naming_the_row():
    rows = [row(0, "math", 1.0), row(1, None, 1.0)]
    with pytest.raises(ConfigError, match="row 1 \\(id 1\\) has no category") as caught:
        replay_live(rows, SETTINGS, source="stream.jsonl")
    assert "stream.jsonl" in str(caught.value)
