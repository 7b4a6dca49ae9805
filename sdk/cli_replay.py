"""``bitrate route eval``: replay recorded outcomes through a route, offline (see ``sdk.replay``).

``eval_command`` is a plain function with typer annotations; ``sdk.cli`` registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdk.errors import BitrateError, UnknownModel

__all__ = ["eval_command", "replay_policy"]


def replay_policy(policy_path: Path | None, route: str | None, outcomes: Path, *, bins: int | None = 10):
    """Load the policy (default: the embedded pair) and replay ``outcomes`` through ``route``
    (default: the policy's first route). Returns the :class:`sdk.replay.ReplayReport`."""
    from sdk.engine import Engine
    from sdk.policy import default_policy, load_policy
    from sdk.replay import read_outcome_rows, replay, replay_report, route_with

    policy = load_policy(policy_path) if policy_path else default_policy()
    name = route or next(iter(policy.routes), None)
    if name is None or name not in policy.routes:
        known = ", ".join(policy.routes) or "none"
        raise UnknownModel(f"no route named '{name}' in the policy (routes: {known})", param="route")
    rows = read_outcome_rows(outcomes)
    runtime = Engine(policy).routes()[name]
    tol = runtime.config.tolerance
    items = replay(rows, route_with(runtime))
    return replay_report(items, max_loss=tol.max_loss, confidence=tol.confidence, bins=bins)


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%" if pct else f"{value:.3f}"


def _loss_line(report) -> str:
    interval = f"[{_fmt(report.realised_loss_low)}, {_fmt(report.realised_loss_high)}]"
    kept = "kept" if report.within_tolerance else "BROKEN"
    return (
        f"{_fmt(report.realised_loss)} {interval} at {report.confidence:g}; "
        f"promise <= {report.max_loss:g}: {kept}"
    )


def _print_table(report) -> None:
    lines = [
        ("items", str(report.n)),
        ("sent to student", _fmt(report.student_share, pct=True)),
        ("quality (routed mix)", _fmt(report.quality)),
        ("quality all-frontier", _fmt(report.frontier_quality)),
        ("quality all-student", _fmt(report.student_quality)),
        ("quality oracle", _fmt(report.oracle_quality)),
        ("realised loss on student items", _loss_line(report)),
        ("APGR", _fmt(report.apgr)),
        ("CPT(50%) frontier calls", _fmt(report.cpt50, pct=True)),
        ("CPT(80%) frontier calls", _fmt(report.cpt80, pct=True)),
        ("cost saved", _fmt(report.cost_saved, pct=True)),
        ("decided by", ", ".join(f"{rule} {count}" for rule, count in sorted(report.rules.items()))),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        typer.echo(f"{key:<{width}}  {value}")
    typer.echo(
        "PGR curve (frontier share -> PGR): "
        + ", ".join(f"{p.frontier_share:.2f}->{_fmt(p.pgr)}" for p in report.curve)
    )


def eval_command(
    outcomes: Annotated[
        Path, typer.Option("--outcomes", "-o", help="Outcomes JSONL (the format of 'profile import').")
    ],
    policy: Annotated[
        Path | None, typer.Option("--policy", "-p", help="Policy YAML (default: the embedded pair).")
    ] = None,
    route: Annotated[
        str | None, typer.Option("--route", "-r", help="Route name (default: the first).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    bins: Annotated[
        int,
        typer.Option("--bins", help="Quantile bins of the threshold sweep (RouteLLM: 10); 0: every score."),
    ] = 10,
) -> None:
    """Replay recorded outcomes through a route without calling any model: student share, quality,
    realised loss against the promise, cost saved, and RouteLLM's APGR and CPT."""
    try:
        report = replay_policy(policy, route, outcomes, bins=bins or None)
    except BitrateError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(report.dumps())
    else:
        _print_table(report)
