"""Compare two profiles (e.g. two student versions): which categories changed.

A category **changed verdict** when its verdict differs between A and B, both
taken at A's tolerance and confidence (B's verdicts are recomputed there when
the tolerances differ). It **moved** when B's loss lies outside A's interval
or A's loss outside B's: a shift larger than either measurement's own
uncertainty. Categories present on one side only are reported as added or
removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sdk.profile import Profile

__all__ = ["CategoryChange", "ProfileDiff", "diff_profiles"]

ChangeKind = Literal["verdict", "moved", "added", "removed", "same"]


@dataclass(frozen=True, slots=True)
class CategoryChange:
    """How one category differs between profile A and profile B."""

    category: str
    """Category name."""
    kind: ChangeKind
    """``verdict`` (verdict changed), ``moved`` (loss moved beyond the intervals), ``added``,
    ``removed`` or ``same``."""
    verdict_a: str | None
    """A's verdict at A's tolerance (None when absent from A)."""
    verdict_b: str | None
    """B's verdict at A's tolerance (None when absent from B)."""
    loss_a: float | None
    """A's loss."""
    loss_b: float | None
    """B's loss."""
    moved: bool = False
    """True when the loss moved beyond the intervals (also possible with a changed verdict)."""


@dataclass(frozen=True, slots=True)
class ProfileDiff:
    """The result of ``diff_profiles``."""

    changes: list[CategoryChange]
    """One entry per category in either profile, changed ones first."""
    tolerance_note: str | None = None
    """Set when the two profiles were measured at different tolerances."""

    @property
    def changed(self) -> list[CategoryChange]:
        """Only the categories that differ."""
        return [c for c in self.changes if c.kind != "same"]


_ORDER = {"verdict": 0, "moved": 1, "added": 2, "removed": 3, "same": 4}


def _compare(name: str, a: Profile, b: Profile) -> CategoryChange:
    ca, cb = a.categories.get(name), b.categories.get(name)
    t = a.tolerance
    if ca is None or cb is None:
        return CategoryChange(
            category=name,
            kind="added" if ca is None else "removed",
            verdict_a=ca.verdict_at(t.max_loss, t.confidence) if ca else None,
            verdict_b=cb.verdict_at(t.max_loss, t.confidence) if cb else None,
            loss_a=ca.loss if ca else None,
            loss_b=cb.loss if cb else None,
        )
    va, vb = ca.verdict_at(t.max_loss, t.confidence), cb.verdict_at(t.max_loss, t.confidence)
    low_b, high_b = cb.interval_at(t.confidence)
    moved = not (ca.loss_low <= cb.loss <= ca.loss_high) or not (low_b <= ca.loss <= high_b)
    kind: ChangeKind = "verdict" if va != vb else "moved" if moved else "same"
    return CategoryChange(name, kind, va, vb, ca.loss, cb.loss, moved)


def diff_profiles(a: Profile, b: Profile) -> ProfileDiff:
    """Compare B against A, category by category, at A's tolerance."""
    names = sorted(a.categories.keys() | b.categories.keys())
    changes = sorted((_compare(n, a, b) for n in names), key=lambda c: (_ORDER[c.kind], c.category))
    note = None
    if a.tolerance != b.tolerance:
        note = (
            f"tolerances differ (A: {a.tolerance.max_loss:g} at {a.tolerance.confidence:g}, "
            f"B: {b.tolerance.max_loss:g} at {b.tolerance.confidence:g}); B's verdicts recomputed at A's"
        )
    return ProfileDiff(changes=changes, tolerance_note=note)
