"""The live monitor: per route and category, is the student still within the tolerance?

Each observation is one request answered by both sides and graded: student score ``s`` and
frontier score ``f`` in [0, 1], loss ``d = f - s`` in [-1, 1] (``sdk.stats`` conventions). The
monitor keeps a sequential test of "the live loss is <= ``max_loss``" that stays valid however
often it is read, and turns it into the same three verdicts as a profile. Pure: no I/O; the
clock that stamps a demotion is injected.

The statistics: a betting confidence sequence (Waudby-Smith & Ramdas 2023)
--------------------------------------------------------------------------
For each candidate loss ``m`` on a grid of [-1, 1] (``grid_points`` evenly spaced, plus
``max_loss`` exactly), two capital processes bet on the next ``d``::

    K+_n(m) = prod_{i<=n} (1 + a_i(m) (d_i - m)),   0 <= a_i(m) <= c / (1 + m)   (bets loss > m)
    K-_n(m) = prod_{i<=n} (1 - b_i(m) (d_i - m)),   0 <= b_i(m) <= c / (1 - m)   (bets loss < m)

(``c = max_bet`` < 1 keeps every factor >= 1 - c > 0). The bets may be any function of the rows
before ``i`` (predictable). Then, if the mean of every ``d_i`` given the rows before it is
<= ``m``, ``K+(m)`` is a nonnegative supermartingale starting at 1, and by Ville's inequality
``P(K+_n(m) >= 1/alpha for some n) <= alpha``; the same holds for ``K-(m)`` when those means
are >= ``m``. ``alpha = (1 - confidence) / 2`` per side: ``confidence`` is two-sided, as
everywhere in bitrate. Two changes keep that property: each capital is capped at
``e^memory / alpha`` (money taken off the table, so evidence from long ago can be outweighed
after a change), and a sequence may start afresh (a new test).

Bets follow aGRAPA (the paper's approximate growth-rate-adaptive rule), ``(mu - m) / (var +
(mu - m)^2)`` clipped to its range, with one prior pseudo-row of mean 0 and variance 1/4. Each
side takes ``mu`` (and ``var``) from whichever of two estimates is further its way:

- all rows of its sequence: efficient on a stationary stream;
- a **recent window** (exponential weights over about ``window`` rows), moved ``caution``
  standard errors against the side (lowered for ``K+``, raised for ``K-``). After a long good
  stretch the window sees a jump of the loss within a few rows and ``K+(max_loss)`` starts
  growing at once, where the whole-history mean would still be below ``max_loss`` and bet
  nothing; the caution keeps the window's noise from betting, and losing, during that stretch.
  (``docs/live.md`` has the measurements.)

Figures, at each row, over the **watch** (the rows since creation, ``reset()`` or the last
promotion):

- ``loss_low``: the largest grid point ``m`` with ``K+(m') >= 1/alpha`` now for every grid
  point ``m' <= m`` (-1 when none): the loss is above it. ``loss_high`` likewise from ``K-``
  (1 when none). Together an anytime-valid confidence sequence at ``confidence`` (Howard et
  al. 2021; Waudby-Smith & Ramdas 2023). It is the current set, not the running intersection,
  so after a change it follows the recent rows instead of going empty; ``loss``, the mean of
  every watch row, can then lie outside it.
- ``n``, ``loss`` (mean of ``d``), ``breaks`` (share with ``f > s``), ``fixes`` (share with ``s > f``).

Verdicts (``sdk.stats.verdict`` on the interval; a demotion first):

========= =========================================================================
verdict   when
========= =========================================================================
unsafe    demoted: at some row ``loss_low > max_loss`` (hence ``K+(max_loss) >= 1/alpha``)
safe      not demoted and ``loss_high <= max_loss`` now
uncertain otherwise
========= =========================================================================

A demotion is sticky. It ends with ``reset()`` (a person: a fresh watch, window and test), or,
with ``auto_promote``, when live evidence certifies the category again: at the demotion a fresh
**recovery** sequence starts (with the next row), and the category is promoted at the first row
where the recovery's ``loss_high <= max_loss``, i.e. its ``K-`` rules out every loss >=
``max_loss``. The promotion starts a fresh watch that keeps the recovery's ``K-`` capital (so it
is ``safe`` at once) and a fresh ``K+`` (a new demotion test). While demoted, the watch keeps
counting, so its figures show the evidence against the student; the snapshot shows the
recovery's ``n`` and ``loss_high``.

Guarantees (``alpha = (1 - confidence) / 2``):

- a stream whose loss given the past is always <= ``max_loss`` (stationary or not) is ever
  demoted with probability <= ``alpha``, within the promise ``1 - confidence``;
- after a demotion, a student whose loss given the past stays >= ``max_loss`` is ever promoted
  with probability <= ``alpha``; a stream of constant loss above ``max_loss`` is ever called
  ``safe`` with probability <= ``alpha``; ``[loss_low, loss_high]`` holds a constant loss at
  every row at once with probability >= ``confidence``.

Each ``reset()`` and promotion starts a new demotion test with its own ``alpha``. The state is
a dict of plain JSON values (``to_dict``/``from_dict``); a row costs a few numpy operations on
the grid (``bench/live_replay.py`` measures it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sdk.live.capital import CapitalSequence, RecentWindow, grid_for
from sdk.stats import VerdictName, verdict

__all__ = ["STATE_VERSION", "LiveMonitor", "LiveSnapshot", "MonitorSettings"]

STATE_VERSION = 1
"""Version of the ``to_dict`` format; ``from_dict`` refuses others."""


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """What a monitor tests and how it bets; fixed for its life (kept in its state)."""

    max_loss: float
    """The route's tolerance: largest acceptable mean loss (f - s), in [0, 1]."""
    confidence: float
    """Two-sided level in (0, 1); each verdict holds one-sided at ``(1 + confidence) / 2``."""
    auto_promote: bool = False
    """End a demotion when the recovery certifies the category (its ``loss_high <= max_loss``)."""
    window: float = 32.0
    """Rows the recent window looks back over (time constant of its exponential weights)."""
    max_bet: float = 0.5
    """Share ``c`` of the largest bet that keeps the capital nonnegative (the paper's truncation)."""
    grid_points: int = 401
    """Evenly spaced candidate losses over [-1, 1] (0.005 apart at 401); ``max_loss`` is added."""
    caution: float = 1.5
    """Standard errors the window's mean is moved against a side before that side bets on it."""
    memory: float = 10.0
    """Log-capital kept beyond the threshold: each process is capped at ``threshold + memory``."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.max_loss <= 1.0 and 0.0 < self.confidence < 1.0):
            raise ValueError(f"need max_loss in [0, 1] and confidence in (0, 1), got {self}")
        if not (self.window >= 1.0 and 0.0 < self.max_bet < 1.0 and self.grid_points >= 3):
            raise ValueError(f"need window >= 1, max_bet in (0, 1) and grid_points >= 3, got {self}")
        if not (self.caution >= 0.0 and self.memory > 0.0):
            raise ValueError(f"need caution >= 0 and memory > 0, got {self}")

    @property
    def threshold(self) -> float:
        """``log(1 / alpha)``: a capital process at or above it rules its candidate loss out."""
        return math.log(2.0 / (1.0 - self.confidence))


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What a monitor says now: the figures every surface shows (``profile live``, metrics)."""

    n: int
    """Rows in the watch (since creation, reset or the last promotion)."""
    loss: float | None
    """Mean of f - s over the watch; None when it is empty."""
    loss_low: float
    """Lower end of the anytime-valid interval (-1 when nothing is ruled out)."""
    loss_high: float
    """Upper end of the anytime-valid interval (1 when nothing is ruled out)."""
    breaks: float | None
    """Share of watch rows where the frontier scored higher; None when empty."""
    fixes: float | None
    """Share of watch rows where the student scored higher; None when empty."""
    verdict: VerdictName
    """``safe``, ``uncertain``, or ``unsafe`` (demoted); see the module docstring."""
    demoted_since: float | None
    """When the demotion happened (the monitor's clock), or None."""
    recovery_n: int | None
    """Rows since the demotion (the recovery); None when not demoted."""
    recovery_high: float | None
    """The recovery's upper bound (promotion needs it <= ``max_loss``); None when not demoted."""
    max_loss: float
    """The tolerance the verdict is read at."""
    confidence: float
    """The two-sided level of the interval."""


class LiveMonitor:
    """One route's monitor for one category: ``observe(s, f)`` rows, read ``snapshot()``."""

    def __init__(self, settings: MonitorSettings, *, clock: Callable[[], float] = time.time):
        """``clock`` stamps ``demoted_since`` (seconds; injected by tests and replays)."""
        self.settings = settings
        self.clock = clock
        self._grid = grid_for(settings.max_loss, settings.grid_points, settings.max_bet)
        self._threshold = settings.threshold
        self._cap = settings.threshold + settings.memory
        self.reset()

    @classmethod
    def create(
        cls,
        max_loss: float,
        confidence: float,
        *,
        auto_promote: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> LiveMonitor:
        """A monitor with the default bets for a route's tolerance."""
        return cls(MonitorSettings(max_loss, confidence, auto_promote), clock=clock)

    def reset(self) -> None:
        """Forget everything (a person cleared the demotion): a fresh watch, window and test."""
        self._window = RecentWindow(self.settings.window)
        self._watch = CapitalSequence(self._grid.m.size)
        self._recovery: CapitalSequence | None = None
        self._demoted_since: float | None = None

    # ------------------------------------------------------------------ feeding

    def observe(self, student: float, frontier: float) -> VerdictName:
        """Add one graded pair (scores in [0, 1]) and return the verdict after it."""
        if not (0.0 <= student <= 1.0 and 0.0 <= frontier <= 1.0):
            raise ValueError(f"scores must be in [0, 1], got student={student}, frontier={frontier}")
        d = float(frontier) - float(student)
        cautious = self._window.cautious(self.settings.caution)
        self._watch.add(d, self._grid, cautious, self._cap)
        if self._recovery is not None:
            self._recovery.add(d, self._grid, cautious, self._cap)
        self._window.add(d)
        self._transition()
        return self.verdict

    def _transition(self) -> None:
        """Demote when the watch rules ``max_loss`` out from below; promote (with ``auto_promote``)
        when the recovery rules it out from above. Demoted exactly while a recovery exists."""
        grid, threshold, max_loss = self._grid, self._threshold, self.settings.max_loss
        if self._recovery is None:
            if self._watch.bounds(grid, threshold)[0] > max_loss:
                self._demoted_since = self.clock()
                self._recovery = CapitalSequence(grid.m.size)
        elif self.settings.auto_promote and self._recovery.bounds(grid, threshold)[1] <= max_loss:
            self._watch = self._recovery.certified()
            self._recovery, self._demoted_since = None, None

    # ------------------------------------------------------------------ reading

    @property
    def demoted_since(self) -> float | None:
        """When the current demotion happened (the clock's value), or None."""
        return self._demoted_since

    @property
    def verdict(self) -> VerdictName:
        """``unsafe`` while demoted, else ``safe`` or ``uncertain`` from the interval now."""
        if self._demoted_since is not None:
            return "unsafe"
        low, high = self._watch.bounds(self._grid, self._threshold)
        return verdict(low, high, self.settings.max_loss)

    def snapshot(self) -> LiveSnapshot:
        """The figures now."""
        watch, recovery, grid, threshold = self._watch, self._recovery, self._grid, self._threshold
        n = watch.n
        low, high = watch.bounds(grid, threshold)
        return LiveSnapshot(
            n=n,
            loss=watch.total / n if n else None,
            loss_low=low,
            loss_high=high,
            breaks=watch.breaks / n if n else None,
            fixes=watch.fixes / n if n else None,
            verdict=self.verdict,
            demoted_since=self._demoted_since,
            recovery_n=recovery.n if recovery is not None else None,
            recovery_high=recovery.bounds(grid, threshold)[1] if recovery is not None else None,
            max_loss=self.settings.max_loss,
            confidence=self.settings.confidence,
        )

    # ------------------------------------------------------------------ state

    def to_dict(self) -> dict[str, Any]:
        """The whole state as plain JSON values; ``from_dict`` continues exactly from it::

            {"version": 1, "settings": {MonitorSettings' fields},
             "window": [weight, sum of d, sum of d^2, sum of squared weights],
             "watch": SEQUENCE, "recovery": SEQUENCE or null, "demoted_since": seconds or null}

        where a SEQUENCE is ``{"n", "total", "squares", "breaks", "fixes", "log_up", "log_down"}``,
        the last two the log-capital of ``K+`` and ``K-`` over the grid (about 10 KB of JSON at
        the default 401 points; twice that while demoted)."""
        return {
            "version": STATE_VERSION,
            "settings": asdict(self.settings),
            "window": list(self._window.sums),
            "watch": self._watch.to_dict(),
            "recovery": self._recovery.to_dict() if self._recovery is not None else None,
            "demoted_since": self._demoted_since,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, clock: Callable[[], float] = time.time) -> LiveMonitor:
        """A monitor continuing from ``to_dict``'s output; ``ValueError`` when it is not one."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(
                f"monitor state: version {data.get('version')!r}, this bitrate reads {STATE_VERSION}"
            )
        try:
            monitor = cls(MonitorSettings(**data["settings"]), clock=clock)
            size = monitor._grid.m.size
            window = [float(x) for x in data["window"]]
            if len(window) != 4:
                raise ValueError("monitor state: window must hold 4 numbers")
            monitor._window = RecentWindow(monitor.settings.window, window)
            monitor._watch = CapitalSequence.from_dict(data["watch"], size)
            recovery = data["recovery"]
            monitor._recovery = CapitalSequence.from_dict(recovery, size) if recovery is not None else None
            since = data["demoted_since"]
            monitor._demoted_since = float(since) if since is not None else None
        except (KeyError, TypeError) as exc:
            raise ValueError(f"monitor state: missing or malformed field ({exc})") from exc
        if (monitor._recovery is None) != (monitor._demoted_since is None):
            raise ValueError("monitor state: a recovery goes with a demotion, and only with one")
        return monitor
