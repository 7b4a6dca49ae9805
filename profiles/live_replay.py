"""Recorded outcome rows replayed through a route's live monitors (``sdk.live``), offline.

Each row, in order, is one live observation of its category: its ``student`` and ``frontier``
scores feed the category's monitor, and every verdict change is recorded with the 0-based
index of the row that made it. ``bitrate profile live --replay`` and ``bench/live_replay.py``
both run through :func:`replay_live`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from profiles.outcomes import OutcomeRow
from sdk.decision import Verdict
from sdk.errors import ConfigError
from sdk.live import LiveSnapshot, MonitorBoard, MonitorSettings, VerdictChange

__all__ = ["LiveReplay", "replay_live"]


@dataclass
class LiveReplay:
    """The monitors after the last row, and every verdict change on the way."""

    board: MonitorBoard
    changes: list[VerdictChange] = field(default_factory=list)

    def snapshots(self) -> dict[str, LiveSnapshot]:
        """Each category's figures after the last row (categories in order of first row)."""
        return self.board.snapshots()

    def first_change_to(self, verdict: Verdict, category: str, *, after: int = -1) -> int | None:
        """The row at which ``category`` first turned ``verdict`` after row ``after``, or None."""
        for change in self.changes:
            if change.category == category and change.after == verdict and change.at > after:
                return change.at
        return None


def replay_live(
    rows: Iterable[OutcomeRow],
    settings: MonitorSettings,
    *,
    start: Mapping[str, Verdict] | None = None,
    source: str | None = None,
) -> LiveReplay:
    """Feed ``rows`` in order to fresh monitors with ``settings``. ``start``: each category's
    verdict before its first row (e.g. the profile's; default ``unknown``). Time, for
    ``demoted_since``, is counted in rows. A row without a category raises ``ConfigError``
    located at ``source``."""
    replay = LiveReplay(MonitorBoard(settings, start=start))
    for index, row in enumerate(rows):
        if row.category is None:
            message = f"row {index} (id {row.id!r}) has no category: a live replay needs one on every row"
            raise ConfigError(message, location=source)
        change = replay.board.observe(row.category, row.student, row.frontier)
        if change is not None:
            replay.changes.append(change)
    return replay
