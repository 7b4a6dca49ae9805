"""A route's live monitors, one per category, and the verdict changes they make.

The board creates a category's :class:`~sdk.live.monitor.LiveMonitor` on its first
observation, with the route's settings. Each observation is one row, numbered from 0 in the
order the board receives them; :meth:`MonitorBoard.observe` returns a :class:`VerdictChange`
when the category's verdict differs from the one before it. Before its first observation a
category's verdict is the one the caller starts it with (``bitrate profile live`` passes the
profile's offline verdicts), else ``unknown``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sdk.decision import Verdict
from sdk.live.monitor import LiveMonitor, LiveSnapshot, MonitorSettings

__all__ = ["MonitorBoard", "VerdictChange"]


@dataclass(frozen=True, slots=True)
class VerdictChange:
    """A category's verdict changed at one row."""

    at: int
    """The 0-based row (observation) at which it changed."""
    category: str
    """The category."""
    before: Verdict
    """The verdict before that row (``unknown`` when neither the monitor nor the caller had one)."""
    after: Verdict
    """The verdict after it."""

    def to_json(self) -> dict[str, str | int]:
        """``{"at", "category", "from", "to"}``."""
        return {"at": self.at, "category": self.category, "from": self.before, "to": self.after}


class MonitorBoard:
    """One route's monitors by category, created on first sight with the same settings."""

    def __init__(
        self,
        settings: MonitorSettings,
        *,
        start: Mapping[str, Verdict] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        """``start``: each category's verdict before its first observation (default ``unknown``).
        ``clock``: the monitors' clock for ``demoted_since``; None counts time in rows (a replay:
        ``demoted_since`` is then the demoting row's index)."""
        self.settings = settings
        self.rows = 0
        """Observations received so far."""
        self._start = dict(start or {})
        self._clock = clock or (lambda: float(self.rows - 1))
        self._monitors: dict[str, LiveMonitor] = {}

    def monitor(self, category: str) -> LiveMonitor:
        """The category's monitor, created when first asked for."""
        found = self._monitors.get(category)
        if found is None:
            found = self._monitors[category] = LiveMonitor(self.settings, clock=self._clock)
        return found

    def get(self, category: str) -> LiveMonitor | None:
        """The category's monitor, or None before its first observation."""
        return self._monitors.get(category)

    def put(self, category: str, monitor: LiveMonitor) -> None:
        """Make ``monitor`` the category's (a state read from the store, or a reset one)."""
        self._monitors[category] = monitor

    def observe(self, category: str, student: float, frontier: float) -> VerdictChange | None:
        """Feed one graded pair to the category's monitor; the change it made, if any."""
        at = self.rows
        self.rows += 1
        fresh = category not in self._monitors
        monitor = self.monitor(category)
        before: Verdict = self._start.get(category, "unknown") if fresh else monitor.verdict
        after = monitor.observe(student, frontier)
        return VerdictChange(at, category, before, after) if after != before else None

    def snapshots(self) -> dict[str, LiveSnapshot]:
        """Every monitor's figures now, by category, in the order categories were first seen."""
        return {category: monitor.snapshot() for category, monitor in self._monitors.items()}
