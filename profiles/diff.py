"""Compare two profiles (e.g. two student versions): which categories changed.

A category **changed verdict** when its verdict differs between A and B, both
taken at A's tolerance and confidence (B's verdicts are recomputed there when
the tolerances differ). It **moved** when B's loss lies outside A's interval
or A's loss outside B's: a shift larger than either measurement's own
uncertainty. Categories present on one side only are reported as added or
removed.

:func:`gate` decides whether a candidate student (NEW) may replace the current one (OLD):
no category worse beyond OLD's interval, and the targets improved (the rule is in its
docstring and in ``docs/distill.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sdk.profile import CategoryStats, Profile

__all__ = ["CategoryChange", "GateResult", "GateRow", "ProfileDiff", "diff_profiles", "gate"]

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


GateStatus = Literal["improved", "worse", "same", "missing", "added"]


@dataclass(frozen=True, slots=True)
class GateRow:
    """One category in the gate's table, both profiles read at OLD's tolerance."""

    category: str
    """Category name."""
    status: GateStatus
    """``improved``, ``worse``, ``same``, ``missing`` (OLD has it, NEW does not) or ``added``."""
    target: bool
    """Whether the category is one the gate wants improved."""
    verdict_old: str | None
    """OLD's verdict."""
    verdict_new: str | None
    """NEW's verdict."""
    old: tuple[float, float, float] | None
    """OLD's (loss, low, high)."""
    new: tuple[float, float, float] | None
    """NEW's (loss, low, high)."""


@dataclass(frozen=True, slots=True)
class GateResult:
    """The result of :func:`gate`."""

    passed: bool
    """True when the candidate may be promoted."""
    rows: list[GateRow]
    """Every category, worst status first."""
    reasons: list[str]
    """Why it failed (empty when it passed)."""
    notes: list[str]
    """What a reader should know (other suites, other tolerances)."""


def _figures(stats: CategoryStats | None, confidence: float) -> tuple[float, float, float] | None:
    if stats is None:
        return None
    low, high = stats.interval_at(confidence)
    return stats.loss, low, high


def _status(
    old: tuple[float, float, float] | None,
    new: tuple[float, float, float] | None,
    safe_now: bool,
    safe_before: bool,
) -> GateStatus:
    if old is None:
        return "added"
    if new is None:
        return "missing"
    if new[0] > old[2]:
        return "worse"
    if (safe_now and not safe_before) or old[0] - new[0] > (old[2] - old[1]) / 2:
        return "improved"
    return "same"


_GATE_ORDER = {"worse": 0, "missing": 1, "improved": 2, "same": 3, "added": 4}


def gate(old: Profile, new: Profile, targets: Sequence[str] = ()) -> GateResult:
    """Whether NEW may replace OLD. Both are read at OLD's tolerance and confidence; for each
    category with OLD's loss L_old in [low_old, high_old] and NEW's loss L_new:

    - **worse** when ``L_new > high_old``: NEW's loss lies above OLD's whole interval;
    - **improved** when NEW's verdict is ``safe`` and OLD's was not, or when
      ``L_old - L_new > (high_old - low_old) / 2`` (the loss fell by more than the half-width of
      OLD's interval);
    - **missing** when NEW did not measure a category OLD has (it cannot vouch for it).

    The gate passes when no category is worse or missing and the targets improved: every
    category named in ``targets`` (each must be in both profiles), or, with none named, at least
    one of the categories OLD does not mark ``safe``."""
    tol = old.tolerance
    wanted = set(targets)
    unknown = sorted(wanted - (old.categories.keys() & new.categories.keys()))
    verdicts = old.verdicts(tol.max_loss, tol.confidence)
    default_targets = {c for c, v in verdicts.items() if v != "safe"}
    rows = []
    for name in sorted(old.categories.keys() | new.categories.keys()):
        a, b = old.categories.get(name), new.categories.get(name)
        va = a.verdict_at(tol.max_loss, tol.confidence) if a else None
        vb = b.verdict_at(tol.max_loss, tol.confidence) if b else None
        fa, fb = _figures(a, tol.confidence), _figures(b, tol.confidence)
        status = _status(fa, fb, vb == "safe", va == "safe")
        rows.append(GateRow(name, status, name in (wanted or default_targets), va, vb, fa, fb))
    rows.sort(key=lambda r: (_GATE_ORDER[r.status], r.category))
    reasons = [
        f"'{r.category}' got worse: loss {r.new[0]:+.3f} > OLD's interval top {r.old[2]:+.3f}"
        for r in rows
        if r.status == "worse" and r.new and r.old
    ]
    reasons += [f"'{r.category}' is not measured in NEW" for r in rows if r.status == "missing"]
    reasons += [f"target '{name}' is not in both profiles" for name in unknown]
    improved = [r for r in rows if r.target and r.status == "improved"]
    if wanted:
        reasons += [
            f"target '{r.category}' did not improve"
            for r in rows
            if r.target and r.status != "improved" and r.category not in unknown
        ]
    elif not improved:
        reasons.append("no category OLD does not mark safe improved")
    notes = []
    if old.suite.sha256 != new.suite.sha256:
        notes.append("the two profiles were measured on different suites: compare like with like")
    if old.tolerance != new.tolerance:
        notes.append("tolerances differ: NEW read at OLD's")
    return GateResult(not reasons, rows, reasons, notes)
