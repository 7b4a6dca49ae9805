"""``bitrate profile ...``: build (``bitrate_cli.profile_build``), import, show, report and diff
capability profiles; live (``bitrate_cli.profile_live``). Every ``BitrateError`` becomes one
line on stderr and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from bitrate_cli.common import cli_errors
from bitrate_cli.profile_build import build
from bitrate_cli.profile_export import export
from bitrate_cli.profile_live import live
from profiles.assemble import assemble_profile
from profiles.diff import diff_profiles
from profiles.outcomes import file_sha256, read_outcomes
from profiles.report import worst_first, write_report
from sdk.errors import ConfigError
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


def _tolerance(max_loss: float, confidence: float) -> Tolerance:
    try:
        return Tolerance(max_loss=max_loss, confidence=confidence)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(first["msg"], key=f"--{str(first['loc'][0]).replace('_', '-')}") from exc


def _console() -> Console:
    """A console; when output is not a terminal, wide enough that tables do not wrap."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


@profile_app.command("import")
def import_(
    outcomes: Annotated[Path, typer.Option("--outcomes", help="Outcomes JSONL, one scored item a line.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the profile JSON.")],
    max_loss: Annotated[float, typer.Option(help="Largest acceptable mean loss (0.02 = 2 points).")] = 0.02,
    confidence: Annotated[float, typer.Option(help="Two-sided interval level.")] = 0.9,
    no_evidence: Annotated[bool, typer.Option("--no-evidence", help="Leave per-item evidence out.")] = False,
    student_name: Annotated[str, typer.Option(help="Name recorded for the student.")] = "student",
    frontier_name: Annotated[str, typer.Option(help="Name recorded for the frontier.")] = "frontier",
) -> None:
    """Turn recorded outcomes (an eval you already ran) into a profile."""
    with cli_errors():
        tolerance = _tolerance(max_loss, confidence)
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
    title = (
        f"{profile.student.name} vs {profile.frontier.name}: "
        f"max loss {100 * max_loss:g} points at {100 * confidence:g}% confidence"
    )
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
            f"{100 * c.loss:+.1f}",
            f"[{100 * low:+.1f}, {100 * high:+.1f}]",
            f"{100 * c.breaks:.1f}%",
            f"{100 * c.fixes:.1f}%",
            f"[{_VERDICT_STYLE[verdict]}]{verdict}[/]",
        )
    return table


@profile_app.command()
def show(
    profile_path: Annotated[Path, typer.Argument(metavar="F", help="Profile JSON.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    max_loss: Annotated[float | None, typer.Option(help="Recompute verdicts at this tolerance.")] = None,
    confidence: Annotated[float | None, typer.Option(help="Recompute verdicts at this level.")] = None,
) -> None:
    """Print a profile's per-category figures, worst category first."""
    with cli_errors():
        profile = load_profile(profile_path)
        tol = _tolerance(
            profile.tolerance.max_loss if max_loss is None else max_loss,
            profile.tolerance.confidence if confidence is None else confidence,
        )
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
) -> None:
    """Which categories changed verdict or moved beyond their intervals (B against A)."""
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
            "-" if c.loss_a is None else f"{100 * c.loss_a:+.1f}",
            "-" if c.loss_b is None else f"{100 * c.loss_b:+.1f}",
        )
    console.print(table)
