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
Categories appear in the order of their first row. Without ``--replay`` the command needs the
live store, which is not configured yet: one line, exit status 2.

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
from profiles.live_replay import LiveReplay, replay_live
from profiles.outcomes import read_outcome_rows
from sdk.decision import Verdict
from sdk.engine import Engine, RouteRuntime
from sdk.errors import ConfigError, UnknownModel
from sdk.live import LiveSnapshot, MonitorSettings, VerdictChange

__all__ = ["live", "live_json", "live_table"]

_STYLE = {"safe": "green", "uncertain": "yellow", "unsafe": "red", "unknown": "dim"}
_NO_STORE = (
    "the live store is not configured yet: give --replay OUTCOMES to feed the monitors "
    "from recorded outcome rows"
)


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
) -> Table:
    """One row per category: offline verdict, live n, loss with its interval, breaks, fixes,
    live verdict and since when it is demoted (``when`` formats the monitor's clock)."""
    table = Table(title=title)
    headers = ("category", "offline", "n", "loss", "interval", "breaks", "fixes", "live", "demoted")
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
        )
    return table


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
) -> None:
    """Per category: the live loss with its anytime-valid interval and the live verdict."""
    with cli_errors():
        if replay is None:
            raise ConfigError(_NO_STORE)
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
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # wide enough that a piped table does not wrap
    console.print(live_table(snapshots, offline, title=title, when=lambda row: f"row {row:.0f}"))
    for change in changes:
        console.print(f"row {change.at}: {change.category} {change.before} -> {change.after}")
