"""``bitrate profile ...``: build (``bitrate_cli.profile_build``), import, show, report and diff
capability profiles; live (``bitrate_cli.profile_live``). Every ``BitrateError`` becomes one
line on stderr and exit status 2. Loss and tolerance are fractions (``bitrate_cli.common``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bitrate_cli.common import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MAX_LOSS,
    ConfidenceOption,
    MaxLossOption,
    cli_errors,
    tolerance_of,
)
from bitrate_cli.profile_build import build
from bitrate_cli.profile_export import export
from bitrate_cli.profile_gate import gate_command
from bitrate_cli.profile_live import live
from profiles.assemble import assemble_profile
from profiles.diff import diff_profiles
from profiles.outcomes import file_sha256, read_outcomes
from profiles.report import format_interval, format_loss, tolerance_in_words, worst_first, write_report
from sdk.profile import ModelIdentity, Profile, SuiteInfo, Tolerance, load_profile

__all__ = ["profile_app"]

profile_app = typer.Typer(help="Measure, inspect and compare capability profiles.", no_args_is_help=True)
profile_app.command("build")(build)
profile_app.command("export")(export)
profile_app.command("live")(live)

_VERDICT_STYLE = {"safe": "green", "uncertain": "yellow", "unsafe": "red"}
_JSON_FIELDS = (
    "n",
    "student_accuracy",
    "frontier_accuracy",
    "loss",
    "loss_low",
    "loss_high",
    "breaks",
    "fixes",
)


def _console() -> Console:
    """A console; when output is not a terminal, wide enough that tables do not wrap."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


@profile_app.command("import")
def import_(
    outcomes: Annotated[Path, typer.Option("--outcomes", help="Outcomes JSONL, one scored item a line.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the profile JSON.")],
    max_loss: MaxLossOption = None,
    confidence: ConfidenceOption = None,
    no_evidence: Annotated[bool, typer.Option("--no-evidence", help="Leave per-item evidence out.")] = False,
    student_name: Annotated[str, typer.Option(help="Name recorded for the student.")] = "student",
    frontier_name: Annotated[str, typer.Option(help="Name recorded for the frontier.")] = "frontier",
) -> None:
    """Turn recorded outcomes (an eval you already ran) into a profile. The tolerance defaults to a
    policy route's default tolerance (printed after the profile is written)."""
    with cli_errors():
        tolerance = tolerance_of(
            max_loss, confidence, Tolerance(max_loss=DEFAULT_MAX_LOSS, confidence=DEFAULT_CONFIDENCE)
        )
        items = read_outcomes(outcomes)
        profile = assemble_profile(
            items,
            student=ModelIdentity(name=student_name, model=student_name, backend="import"),
            frontier=ModelIdentity(name=frontier_name, model=frontier_name, backend="import"),
            suite=SuiteInfo(names=[outcomes.name], sha256=file_sha256(outcomes), n_items=len(items)),
            tolerance=tolerance,
            method="import",
            keep_evidence=not no_evidence,
        )
        profile.save(out)
    counts: dict[str, int] = {}
    for c in profile.categories.values():
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    typer.echo(f"wrote {out}: {len(items)} items, {len(profile.categories)} categories ({summary})")
    typer.echo(f"tolerance: {tolerance_in_words(tolerance.max_loss, tolerance.confidence)}")


def _show_json(profile: Profile, verdicts: dict[str, str]) -> dict[str, Any]:
    meta = profile.model_dump(mode="json", exclude={"categories", "evidence"})
    meta["evidence_items"] = len(profile.evidence) if profile.evidence is not None else 0
    categories = {}
    for name, c in worst_first(profile):
        entry = {key: getattr(c, key) for key in _JSON_FIELDS}
        entry["verdict"] = verdicts[name]
        categories[name] = entry
    return {**meta, "categories": categories}


def _show_table(profile: Profile, verdicts: dict[str, str], max_loss: float, confidence: float) -> Table:
    title = f"{profile.student.name} vs {profile.frontier.name}: {tolerance_in_words(max_loss, confidence)}"
    table = Table(title=title)
    for header in ("category", "n", "student", "frontier", "loss", "interval", "breaks", "fixes", "verdict"):
        table.add_column(header, justify="left" if header in ("category", "verdict") else "right")
    for name, c in worst_first(profile):
        low, high = c.interval_at(confidence)
        verdict = verdicts[name]
        table.add_row(
            name,
            str(c.n),
            f"{100 * c.student_accuracy:.1f}%",
            f"{100 * c.frontier_accuracy:.1f}%",
            format_loss(c.loss),
            format_interval(low, high),
            f"{100 * c.breaks:.1f}%",
            f"{100 * c.fixes:.1f}%",
            f"[{_VERDICT_STYLE[verdict]}]{verdict}[/]",
        )
    return table


@profile_app.command()
def show(
    profile_path: Annotated[Path, typer.Argument(metavar="F", help="Profile JSON.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    max_loss: MaxLossOption = None,
    confidence: ConfidenceOption = None,
) -> None:
    """Print a profile's per-category figures, worst category first; --max-loss and --confidence
    recompute the verdicts at another tolerance (default: the profile's)."""
    with cli_errors():
        profile = load_profile(profile_path)
        tol = tolerance_of(max_loss, confidence, profile.tolerance)
        verdicts = profile.verdicts(tol.max_loss, tol.confidence)
    if as_json:
        typer.echo(json.dumps(_show_json(profile, verdicts), indent=2))
        return
    console = _console()
    console.print(_show_table(profile, verdicts, tol.max_loss, tol.confidence))
    console.print(
        f"method {profile.method}, suite {', '.join(profile.suite.names)} ({profile.suite.n_items} items), "
        f"created {profile.created_at:%Y-%m-%d %H:%M} UTC"
    )


@profile_app.command()
def report(
    profile_path: Annotated[Path, typer.Argument(metavar="F", help="Profile JSON.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md and loss.png.")],
) -> None:
    """Write a Markdown report and a PNG chart of loss per category."""
    with cli_errors():
        markdown, chart = write_report(load_profile(profile_path), out)
    typer.echo(f"wrote {markdown} and {chart}")


@profile_app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="Baseline profile.")],
    b: Annotated[Path, typer.Argument(help="Profile to compare with the baseline.")],
    gate: Annotated[
        bool, typer.Option("--gate", help="Pass (exit 0) or fail (exit 1) B as A's replacement.")
    ] = False,
    target: Annotated[
        list[str] | None, typer.Option("--target", help="With --gate: a category that must improve.")
    ] = None,
) -> None:
    """Which categories changed verdict or moved beyond their intervals (B against A); with
    --gate, whether B may replace A: no category worse beyond A's interval, targets improved."""
    if gate:
        gate_command(a, b, target or [])
        return
    with cli_errors():
        result = diff_profiles(load_profile(a), load_profile(b))
    console = _console()
    if result.tolerance_note:
        console.print(f"note: {result.tolerance_note}")
    if not result.changed:
        console.print(f"no category changed ({len(result.changes)} compared)")
        return
    table = Table(title=f"{b.name} against {a.name}")
    for header in ("category", "change", "verdict A", "verdict B", "loss A", "loss B"):
        table.add_column(header)
    for c in result.changed:
        table.add_row(
            c.category,
            c.kind,
            c.verdict_a or "-",
            c.verdict_b or "-",
            "-" if c.loss_a is None else format_loss(c.loss_a),
            "-" if c.loss_b is None else format_loss(c.loss_b),
        )
    console.print(table)
