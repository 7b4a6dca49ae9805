"""The demo's table and overall line, printed with rich."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.demo import DemoResult

__all__ = ["render"]

_VERDICT_STYLE = {"safe": "green", "unsafe": "red", "uncertain": "yellow"}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def render(console: Any, result: DemoResult) -> None:
    """Print the per-category table, the overall line and the report's path."""
    from rich import box
    from rich.table import Table

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
