"""``bitrate profile diff OLD NEW --gate``: may the candidate student replace the current one?
(:func:`profiles.diff.gate`). Prints the per-category table and ``gate: pass`` or ``gate: FAIL``
with the reasons; exit status 0 when it passes, 1 when it fails (2: a usage error)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bitrate_cli.common import cli_errors
from profiles.diff import GateRow, gate
from profiles.report import format_interval, format_loss
from sdk.profile import load_profile

__all__ = ["EXIT_GATE_FAILED", "gate_command"]

EXIT_GATE_FAILED = 1
"""The gate failed: the candidate must not be promoted."""
_STYLE = {"improved": "green", "worse": "red", "missing": "red", "same": "", "added": ""}


def _cell(figures: tuple[float, float, float] | None) -> str:
    return "-" if figures is None else f"{format_loss(figures[0])} {format_interval(figures[1], figures[2])}"


def _row(r: GateRow) -> list[str]:
    style = _STYLE[r.status]
    status = f"[{style}]{r.status}[/]" if style else r.status
    return [
        r.category + (" *" if r.target else ""),
        r.verdict_old or "-",
        _cell(r.old),
        r.verdict_new or "-",
        _cell(r.new),
        status,
    ]


def gate_command(old: Path, new: Path, targets: list[str]) -> None:
    """Print the gate's table and verdict; exit 1 when it fails."""
    with cli_errors():
        old_profile, new_profile = load_profile(old), load_profile(new)
        result = gate(old_profile, new_profile, targets)
    console = Console() if Console().is_terminal else Console(width=140)
    t = old_profile.tolerance
    table = Table(title=f"gate: {new.name} against {old.name} (max loss {t.max_loss:g} at {t.confidence:g})")
    for header in ("category", "verdict OLD", "loss OLD", "verdict NEW", "loss NEW", "change"):
        table.add_column(header)
    for row in result.rows:
        table.add_row(*_row(row))
    console.print(table)
    legend = "each must improve" if targets else "at least one must improve (none named with --target)"
    console.print(f"* target category: {legend}")
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    if result.passed:
        console.print("gate: pass")
        return
    console.print("gate: FAIL: " + "; ".join(result.reasons), markup=False)
    raise typer.Exit(EXIT_GATE_FAILED)
