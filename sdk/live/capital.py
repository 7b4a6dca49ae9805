"""The capital processes behind :class:`sdk.live.monitor.LiveMonitor` (the maths is in that
module's docstring): the grid of candidate losses, the recent window the bets read, and a
sequence of both processes over the grid with its plain counts. Internal to ``sdk.live``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["CapitalSequence", "Grid", "RecentWindow", "grid_for", "mean_var"]

PRIOR_VAR = 0.25
"""Variance of the bets' one prior pseudo-row (its mean is 0): bets start small and stay finite."""

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Grid:
    """Candidate losses and the largest bet each allows (read-only; shared between monitors).

    Row 0 of ``signed`` and ``caps`` is the ``K+`` side (``m``, ``c / (1 + m)``), row 1 the
    ``K-`` side (``-m``, ``c / (1 - m)``), so one array operation updates both processes."""

    m: FloatArray
    signed: FloatArray
    caps: FloatArray


@lru_cache(maxsize=64)
def grid_for(max_loss: float, points: int, max_bet: float) -> Grid:
    m = np.union1d(np.linspace(-1.0, 1.0, points).round(12), [max_loss])
    with np.errstate(divide="ignore"):
        caps = np.stack([max_bet / (1.0 + m), max_bet / (1.0 - m)])
    grid = Grid(m, np.stack([m, -m]), caps)
    for array in (grid.m, grid.signed, grid.caps):
        array.flags.writeable = False
    return grid


def mean_var(weight: float, total: float, squares: float) -> tuple[float, float]:
    """Mean and variance of weighted losses plus the prior pseudo-row."""
    weight += 1.0
    mean = total / weight
    return mean, max((PRIOR_VAR + squares) / weight - mean * mean, 1e-6)


class CapitalSequence:
    """Both capital processes over the grid (``logs``: row 0 log ``K+``, row 1 log ``K-``) and
    the plain counts, from one start."""

    __slots__ = ("_bounds", "_column", "breaks", "fixes", "logs", "n", "squares", "total")

    def __init__(self, size: int):
        self.logs: FloatArray = np.zeros((2, size))
        self.n = 0
        self.total = 0.0
        self.squares = 0.0
        self.breaks = 0
        self.fixes = 0
        self._bounds: tuple[float, float] | None = None
        self._column: FloatArray = np.zeros((2, 1))

    def add(self, d: float, grid: Grid, window: tuple[float, float, float], cap: float) -> None:
        """One row. ``window``: the recent window's cautious mean for each side (lowered for
        ``K+``, raised for ``K-``) and its variance. Each side bets on whichever of the window
        and this sequence's own rows is further its way; all from rows before ``d``: predictable."""
        own_mean, own_var = mean_var(self.n, self.total, self.squares)
        window_low, window_high, window_var = window
        up_mean, up_var = (window_low, window_var) if window_low > own_mean else (own_mean, own_var)
        down_mean, down_var = (window_high, window_var) if window_high < own_mean else (own_mean, own_var)
        column = self._column
        column[0, 0], column[1, 0] = up_mean, -down_mean
        gap = column - grid.signed  # K+: mean - m; K-: m - mean
        column[0, 0], column[1, 0] = up_var, down_var
        bets = gap / (column + gap * gap)
        np.maximum(bets, 0.0, out=bets)
        np.minimum(bets, grid.caps, out=bets)
        column[0, 0], column[1, 0] = d, -d
        gap = column - grid.signed  # K+: d - m; K-: m - d
        self.logs += np.log1p(bets * gap)
        np.minimum(self.logs, cap, out=self.logs)
        self.n += 1
        self.total += d
        self.squares += d * d
        self.breaks += d > 0
        self.fixes += d < 0
        self._bounds = None

    def certified(self) -> CapitalSequence:
        """A fresh sequence that keeps only this one's ``K-`` capital (its certification)."""
        fresh = CapitalSequence(self.logs.shape[1])
        fresh.logs[1] = self.logs[1]
        return fresh

    def bounds(self, grid: Grid, threshold: float) -> tuple[float, float]:
        """``(loss_low, loss_high)`` now (the definitions are in ``sdk.live.monitor``)."""
        if self._bounds is None:
            size = grid.m.size
            ruled_out = self.logs >= threshold
            first_kept = int(ruled_out[0].argmin())
            last_kept = size - 1 - int(ruled_out[1, ::-1].argmin())
            low = float(grid.m[first_kept - 1]) if first_kept > 0 else -1.0
            high = float(grid.m[last_kept + 1]) if last_kept < size - 1 else 1.0
            self._bounds = low, high
        return self._bounds

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "total": self.total,
            "squares": self.squares,
            "breaks": self.breaks,
            "fixes": self.fixes,
            "log_up": self.logs[0].tolist(),
            "log_down": self.logs[1].tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], size: int) -> CapitalSequence:
        seq = cls(size)
        seq.n, seq.breaks, seq.fixes = int(data["n"]), int(data["breaks"]), int(data["fixes"])
        seq.total, seq.squares = float(data["total"]), float(data["squares"])
        up, down = (
            np.asarray(data["log_up"], dtype=np.float64),
            np.asarray(data["log_down"], dtype=np.float64),
        )
        if (
            up.shape != (size,)
            or down.shape != (size,)
            or not (np.isfinite(up).all() and np.isfinite(down).all())
        ):
            raise ValueError(f"monitor state: log_up and log_down must each hold {size} finite numbers")
        seq.logs = np.stack([up, down])
        return seq


class RecentWindow:
    """Exponentially weighted sums of the recent losses (time constant ``window`` rows)."""

    __slots__ = ("_decay", "sums")

    def __init__(self, window: float, sums: list[float] | None = None):
        self._decay = 1.0 - 1.0 / window
        self.sums = sums or [0.0, 0.0, 0.0, 0.0]
        """Weight, sum of d, sum of d^2, sum of squared weights."""

    def cautious(self, caution: float) -> tuple[float, float, float]:
        """``(mean - margin, mean + margin, variance)``, the margin ``caution`` standard errors
        of the weighted mean (with the prior pseudo-row)."""
        weight, total, squares, weight_sq = self.sums
        mean, var = mean_var(weight, total, squares)
        margin = caution * math.sqrt(var * (1.0 + weight_sq)) / (1.0 + weight)
        return mean - margin, mean + margin, var

    def add(self, d: float) -> None:
        decay = self._decay
        weight, total, squares, weight_sq = self.sums
        self.sums = [
            decay * weight + 1.0,
            decay * total + d,
            decay * squares + d * d,
            decay * decay * weight_sq + 1.0,
        ]
