"""``bitrate profile live``: the live monitors' verdicts per category (``sdk.live``).

With ``--replay OUTCOMES`` the route's monitors are fed offline with recorded outcome rows (the
``profile import`` format, read by ``profiles.outcomes.read_outcome_rows``), in file order, each
row one live observation of its category; every row needs a ``category``. The route's
tolerance and profile come from the policy, as in ``bitrate route eval``. A category's verdict
before its first row is its offline verdict from the profile at the route's tolerance, or
``unknown`` when the profile lacks it, so the first change of each category (at its first
row) shows the live monitor taking over from the profile. ``--json`` prints exactly::

    {"categories": {NAME: {"n", "loss", "loss_low", "loss_high", "verdict"}},
     "changes": [{"at": ROW_INDEX, "category": NAME, "from": VERDICT, "to": VERDICT}]}

``at`` is the 0-based index of the row (non-blank line) after which the verdict changed.
Categories appear in the order of their first row. Without ``--replay`` the figures come from
the live store the gateways write (``bitrate_cli.profile_live_store``; ``--store`` or the
policy's ``live.store``), and ``--reset ROUTE:CATEGORY`` ends a demotion on every replica.

The rendering (:func:`live_json`, :func:`live_table`) takes monitor snapshots and changes,
whatever their source (a replay here, the store later).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bitrate_cli.common import PolicyOption, RouteOption, cli_errors, policy_or_default
from bitrate_cli.profile_export import store_location
from bitrate_cli.profile_live_store import (
    RouteView,
    graders_text,
    read_routes,
    reset_category,
    routes_json,
    when,
)
from profiles.live_replay import LiveReplay, replay_live
from profiles.outcomes import read_outcome_rows
from sdk.decision import Verdict
from sdk.engine import Engine, RouteRuntime
from sdk.errors import UnknownModel
from sdk.live import LiveSnapshot, MonitorSettings, VerdictChange, open_store

__all__ = ["live", "live_json", "live_table"]

_STYLE = {"safe": "green", "uncertain": "yellow", "unsafe": "red", "unknown": "dim"}


def _route(policy_path: Path | None, route: str | None) -> RouteRuntime:
    policy = policy_or_default(policy_path)
    name = route or next(iter(policy.routes), None)
    if name is None or name not in policy.routes:
        known = ", ".join(policy.routes) or "none"
        raise UnknownModel(f"no route named '{name}' in the policy (routes: {known})", param="route")
    return Engine(policy).routes()[name]


def _replay(runtime: RouteRuntime, outcomes: Path, *, auto_promote: bool) -> LiveReplay:
    tol = runtime.config.tolerance
    settings = MonitorSettings(tol.max_loss, tol.confidence, auto_promote)
    start: dict[str, Verdict] = {name: c.verdict for name, c in runtime.categories.items()}
    return replay_live(read_outcome_rows(outcomes), settings, start=start, source=str(outcomes))


def live_json(snapshots: Mapping[str, LiveSnapshot], changes: Sequence[VerdictChange]) -> dict[str, Any]:
    """The ``--json`` object (see the module docstring)."""
    categories = {
        name: {
            "n": s.n,
            "loss": s.loss,
            "loss_low": s.loss_low,
            "loss_high": s.loss_high,
            "verdict": s.verdict,
        }
        for name, s in snapshots.items()
    }
    return {"categories": categories, "changes": [change.to_json() for change in changes]}


def _points(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def live_table(
    snapshots: Mapping[str, LiveSnapshot],
    offline: Mapping[str, str],
    *,
    title: str,
    when: Callable[[float], str],
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> Table:
    """One row per category: offline verdict, live n, loss with its interval, breaks, fixes,
    live verdict and since when it is demoted (``when`` formats the monitor's clock); ``extra``:
    more columns, header -> category -> text."""
    table = Table(title=title)
    extra = extra or {}
    headers = ("category", "offline", "n", "loss", "interval", "breaks", "fixes", "live", "demoted", *extra)
    for header in headers:
        table.add_column(header, justify="right" if header in ("n", "loss", "breaks", "fixes") else "left")
    for name, s in snapshots.items():
        before = offline.get(name, "unknown")
        table.add_row(
            name,
            f"[{_STYLE[before]}]{before}[/]",
            str(s.n),
            _points(s.loss),
            f"[{_points(s.loss_low)}, {_points(s.loss_high)}]",
            _share(s.breaks),
            _share(s.fixes),
            f"[{_STYLE[s.verdict]}]{s.verdict}[/]",
            "-" if s.demoted_since is None else when(s.demoted_since),
            *(column.get(name, "-") for column in extra.values()),
        )
    return table


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)  # a piped table does not wrap


def _store_table(view: RouteView, location: str) -> Table:
    novel = "-" if view.novel_share is None else f"{100 * view.novel_share:.1f}% of {view.requests:,}"
    title = (
        f"route {view.name}, live store {location}: max loss {100 * view.max_loss:g} points at "
        f"{100 * view.confidence:g}% confidence; task not detected: {novel} requests"
    )
    extra = {
        "graders": {name: graders_text(view, name) for name in view.snapshots},
        "shadow $": {name: f"{view.spend.get(name, 0.0):.4f}" for name in view.snapshots},
    }
    return live_table(view.snapshots, view.offline, title=title, when=when, extra=extra)


def _from_store(
    policy_path: Path | None,
    route: str | None,
    store: str | None,
    reset: str | None,
    by: str | None,
    as_json: bool,
) -> None:
    with cli_errors():
        policy = policy_or_default(policy_path)
        location = store_location(policy_path, store)
    with cli_errors(), open_store(location, create=False) as live_store:
        if reset is not None:
            record = reset_category(policy, live_store, reset, by=by)
            refresh = policy.live.refresh_seconds if policy.live else None
            within = f" within {refresh:g} s" if refresh else ""
            typer.echo(
                f"reset {record.route}:{record.category} by {record.reset_by} in {live_store.location}; "
                f"every replica applies it at its next refresh{within}"
            )
            return
        views = read_routes(policy, live_store, route)
    if as_json:
        typer.echo(json.dumps(routes_json(location, views)))
        return
    console = _console()
    for view in views:
        console.print(_store_table(view, location))


def live(
    policy: PolicyOption = None,
    route: RouteOption = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay", help="Outcomes JSONL fed to the monitors in file order, one row per observation."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    auto_promote: Annotated[
        bool, typer.Option("--auto-promote", help="End a demotion when live evidence certifies the category.")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="The live store (SQLite file or postgresql:// URL); overrides the policy's."
        ),
    ] = None,
    reset: Annotated[
        str | None,
        typer.Option("--reset", metavar="ROUTE:CATEGORY", help="End a live demotion on every replica."),
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who resets (default: the user name).")] = None,
) -> None:
    """Per category: the live loss with its anytime-valid interval and the live verdict, from the
    live store (or from recorded outcomes with --replay); --reset ends a demotion."""
    if replay is None:
        _from_store(policy, route, store, reset, by, as_json)
        return
    with cli_errors():
        runtime = _route(policy, route)
        result = _replay(runtime, replay, auto_promote=auto_promote)
    snapshots, changes = result.snapshots(), result.changes
    if as_json:
        typer.echo(json.dumps(live_json(snapshots, changes)))
        return
    tol = runtime.config.tolerance
    title = (
        f"route {runtime.name}, replay of {replay.name}: max loss {100 * tol.max_loss:g} points "
        f"at {100 * tol.confidence:g}% confidence"
    )
    offline = {name: c.verdict for name, c in runtime.categories.items()}
    console = _console()
    console.print(live_table(snapshots, offline, title=title, when=lambda row: f"row {row:.0f}"))
    for change in changes:
        console.print(f"row {change.at}: {change.category} {change.before} -> {change.after}")
