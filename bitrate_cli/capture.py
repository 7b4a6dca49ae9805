"""``bitrate capture export``: the live store's frontier answers (captures, and live pairs kept
with their texts) as chat training data and a held-out suite (``profiles.distill.export``).

The store is ``--store`` when given, else the policy's ``live.store`` (beside the policy file).
It is only read: no store there yet is one error line, exit status 2, as is a store with no
capture (of ``--route``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bitrate_cli.common import cli_errors
from bitrate_cli.profile_export import store_location
from profiles.distill import export_captures
from sdk.live.capture import frontier_answers
from sdk.live.store import open_store

__all__ = ["capture_app"]

capture_app = typer.Typer(
    help="Frontier answers captured by the gateway: export them as training data.", no_args_is_help=True
)


@capture_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help='Training file: {"messages": [...]} a line.')],
    policy: Annotated[
        Path | None, typer.Option("--policy", "-p", help="Policy YAML whose live store is read.")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="The live store (SQLite file or postgresql:// URL).")
    ] = None,
    route: Annotated[str | None, typer.Option("--route", "-r", help="Only this route's captures.")] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", "-c", help="Only this category (repeatable).")
    ] = None,
    holdout: Annotated[
        float, typer.Option(min=0.0, max=0.95, help="Share of conversations held out for profiling.")
    ] = 0.2,
    heldout_out: Annotated[
        Path | None,
        typer.Option("--heldout-out", help="Held-out suite (default: heldout.jsonl beside --out)."),
    ] = None,
    grader: Annotated[str, typer.Option(help="Grader of the held-out suite: exact or normalised.")] = "exact",
) -> None:
    """Write captured frontier answers as training data plus a held-out suite for `profile build`."""
    if grader not in ("exact", "normalised"):
        raise typer.BadParameter("must be exact or normalised", param_hint="--grader")
    heldout = heldout_out or out.with_name("heldout.jsonl")
    with cli_errors():
        with open_store(store_location(policy, store), capture=True, create=False) as live_store:
            answers = frontier_answers(live_store, route)
        result = export_captures(
            answers,
            out,
            heldout,
            holdout=holdout,
            categories=category,
            grader="exact" if grader == "exact" else "normalised",
        )
    for line in result.table():
        typer.echo(line)
    where = f" and {result.heldout} ({result.heldout_counts.total()} held out)" if result.heldout else ""
    typer.echo(
        f"wrote {result.train} ({result.train_counts.total()} conversations){where}; "
        f"{result.read} captures read, {result.duplicates} duplicates dropped"
    )
