"""The demo's figures (:class:`DemoResult`) and how they are printed: the table and the overall line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["CategoryRow", "DemoResult", "render"]

_VERDICT_STYLE = {"safe": "green", "unsafe": "red", "uncertain": "yellow"}


@dataclass
class CategoryRow:
    """What happened to one category's calls."""

    category: str
    verdict: str = "unknown"
    """The profile's verdict at the route's tolerance."""
    frontier_accuracy: float | None = None
    """The frontier's accuracy on this category, from the profile."""
    student: int = 0
    """Calls the student answered."""
    frontier: int = 0
    """Calls the frontier answered."""
    correct: int = 0
    """Answers equal to the reference after strip."""
    saved: float = 0.0
    """Dollars saved against sending these calls to the frontier."""
    frontier_cost: float = 0.0
    """Dollars these calls would have cost on the frontier."""

    @property
    def calls(self) -> int:
        """Calls sent."""
        return self.student + self.frontier

    @property
    def accuracy(self) -> float:
        """Share of routed answers that were right."""
        return self.correct / self.calls if self.calls else 0.0


@dataclass
class DemoResult:
    """The demo's figures, also printed as a table."""

    rows: list[CategoryRow]
    report: Path | None = None
    """Where the profile report was written."""
    notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)

    @property
    def student_share(self) -> float:
        """Share of calls the student answered."""
        return sum(r.student for r in self.rows) / self.calls if self.calls else 0.0

    @property
    def accuracy(self) -> float:
        """Routed accuracy over every call."""
        return sum(r.correct for r in self.rows) / self.calls if self.calls else 0.0

    @property
    def frontier_accuracy(self) -> float | None:
        """All-frontier accuracy on this workload, from the profile (calls-weighted)."""
        known = [(r.frontier_accuracy, r.calls) for r in self.rows if r.frontier_accuracy is not None]
        calls = sum(n for _, n in known)
        return sum(accuracy * n for accuracy, n in known) / calls if calls else None

    @property
    def quality_kept(self) -> float | None:
        """Routed accuracy / all-frontier accuracy."""
        frontier = self.frontier_accuracy
        return self.accuracy / frontier if frontier else None

    @property
    def saved(self) -> float:
        """Dollars saved against all-frontier."""
        return sum(r.saved for r in self.rows)

    @property
    def saved_share(self) -> float:
        """Saving as a share of the all-frontier cost."""
        total = sum(r.frontier_cost for r in self.rows)
        return self.saved / total if total else 0.0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def render(console: Console, result: DemoResult) -> None:
    """Print the per-category table, the overall line and the report's path."""
    table = Table(
        title="Where each category went",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
        caption="accuracy: routed answers equal to the reference; frontier: its accuracy in the profile",
        caption_justify="left",
    )
    for name, justify in [
        ("category", "left"),
        ("verdict", "left"),
        ("to\nstudent", "right"),
        ("to\nfrontier", "right"),
        ("accuracy\n(routed)", "right"),
        ("frontier\n(profile)", "right"),
        ("calls", "right"),
        ("saved", "right"),
    ]:
        table.add_column(name, justify=justify, min_width=max(map(len, name.split("\n"))))  # type: ignore[arg-type]
    for row in result.rows:
        style = _VERDICT_STYLE.get(row.verdict, "")
        table.add_row(
            row.category,
            f"[{style}]{row.verdict}[/]" if style else row.verdict,
            str(row.student),
            str(row.frontier),
            _pct(row.accuracy),
            _pct(row.frontier_accuracy),
            str(row.calls),
            f"${row.saved:.5f}",
        )
    console.print(table)
    console.print(
        f"[bold]overall[/]: {result.calls} calls, {_pct(result.student_share)} to the student; "
        f"quality kept {_pct(result.quality_kept)} (routed accuracy {_pct(result.accuracy)} vs "
        f"all-frontier {_pct(result.frontier_accuracy)}); cost saved ${result.saved:.5f} "
        f"({_pct(result.saved_share)} of the all-frontier cost)"
    )
    if result.report is not None:
        console.print(f"profile report: {result.report}")
