"""``bitrate route explain`` (where a message would go and why, no model call) and
``bitrate route eval`` (recorded outcomes replayed through a route, offline: see ``profiles.replay``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bitrate_cli.common import PolicyOption, RouteOption, cli_errors, policy_or_default
from bitrate_cli.progress import progress_reporter
from profiles.outcomes import read_outcome_rows
from profiles.replay import Progress, ReplayReport, replay_report, replay_route
from sdk.client import build_request
from sdk.engine import Engine
from sdk.errors import InvalidRequest, UnknownModel
from sdk.protocol import ChatMessage, ChatRequest

__all__ = ["replay_policy", "route_app"]

route_app = typer.Typer(help="Inspect routing decisions and replay recorded outcomes.", no_args_is_help=True)
TaskOption = Annotated[str | None, typer.Option("--task", help="A task hint, as the x-bitrate-task header.")]
RequestOption = Annotated[
    Path | None,
    typer.Option(
        "--request",
        help="A chat-completions body (JSON) to route instead of TEXT: its tools, images, "
        "response_format and length count.",
    ),
]


def _request_of(name: str, text: str | None, body_path: Path | None) -> ChatRequest:
    """The request to explain: TEXT as one user message, or the body in ``body_path`` (its ``model``
    replaced by the route's name)."""
    if (text is None) == (body_path is None):
        raise InvalidRequest("give the message TEXT or --request FILE, not both")
    if body_path is None:
        return ChatRequest(model=name, messages=[ChatMessage(role="user", content=text)])
    try:
        body = json.loads(body_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"--request {body_path}: not a readable JSON file ({exc})") from exc
    if not isinstance(body, dict):
        raise InvalidRequest(f"--request {body_path}: not a JSON object")
    body.pop("model", None)
    return build_request(name, body.pop("messages", []), False, body)


@route_app.command("explain")
def explain(
    text: Annotated[str | None, typer.Argument(help="The user message to route.")] = None,
    policy: PolicyOption = None,
    route: RouteOption = None,
    task: TaskOption = None,
    request_body: RequestOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Show where TEXT (or a whole request, --request) would go and why, without calling any model."""
    with cli_errors():
        engine = Engine(policy_or_default(policy))
        name = route or next(iter(engine.policy.routes), None) or next(iter(engine.policy.models))
        decision = engine.explain(_request_of(name, text, request_body), task)
    if as_json:
        typer.echo(json.dumps(decision.to_meta(), indent=2))
        return
    typer.echo(f"route:   {decision.route} -> {decision.target} ({decision.side})")
    source, conf = decision.task_source, decision.task_confidence
    typer.echo(f"task:    {decision.task} (by {source}, confidence {conf:.2f})")
    loss = "n/a" if decision.estimated_loss is None else f"{decision.estimated_loss:.3f}"
    typer.echo(f"verdict: {decision.verdict} (estimated loss {loss}, rule {decision.rule})")
    typer.echo(f"reason:  {decision.reason}")
    runtime = engine.routes().get(name)
    for note in runtime.notes if runtime else []:
        typer.echo(f"note:    {note}")


def replay_policy(
    policy_path: Path | None,
    route: str | None,
    outcomes: Path,
    *,
    bins: int | None = 10,
    detect: bool = False,
    progress: Progress | None = None,
) -> ReplayReport:
    """Load the policy (default: the embedded pair) and replay ``outcomes`` through ``route``
    (default: the policy's first route); ``detect``: the route's detectors name every row's task."""
    policy = policy_or_default(policy_path)
    name = route or next(iter(policy.routes), None)
    if name is None or name not in policy.routes:
        known = ", ".join(policy.routes) or "none"
        raise UnknownModel(f"no route named '{name}' in the policy (routes: {known})", param="route")
    rows = read_outcome_rows(outcomes)
    runtime = Engine(policy).routes()[name]
    tol = runtime.config.tolerance
    items = replay_route(rows, runtime, detect=detect, progress=progress)
    return replay_report(items, max_loss=tol.max_loss, confidence=tol.confidence, bins=bins)


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%" if pct else f"{value:.3f}"


def _loss_line(report: ReplayReport) -> str:
    interval = f"[{_fmt(report.realised_loss_low)}, {_fmt(report.realised_loss_high)}]"
    kept = "kept" if report.within_tolerance else "BROKEN"
    return (
        f"{_fmt(report.realised_loss)} {interval} at {report.confidence:g}; "
        f"promise <= {report.max_loss:g}: {kept}"
    )


def _print_table(report: ReplayReport) -> None:
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
    if report.detection_accuracy is not None:
        undetected = _fmt(report.undetected_share, pct=True)
        lines.append(
            ("detection accuracy", f"{_fmt(report.detection_accuracy, pct=True)} ({undetected} undetected)")
        )
    if report.cascaded:
        extra = report.cascaded - report.cascade_kept
        lines.append(
            (
                "cascade",
                f"{report.cascaded} answered by the student first, {report.cascade_kept} kept, "
                f"{extra} escalated (a student call and its latency on top of the frontier's)",
            )
        )
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        typer.echo(f"{key:<{width}}  {value}")
    typer.echo(
        "PGR curve (frontier share -> PGR): "
        + ", ".join(f"{p.frontier_share:.2f}->{_fmt(p.pgr)}" for p in report.curve)
    )


@route_app.command("eval")
def eval_command(
    outcomes: Annotated[
        Path, typer.Option("--outcomes", "-o", help="Outcomes JSONL (the format of 'profile import').")
    ],
    policy: PolicyOption = None,
    route: RouteOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    bins: Annotated[
        int,
        typer.Option("--bins", help="Quantile bins of the threshold sweep (RouteLLM: 10); 0: every score."),
    ] = 10,
    detect: Annotated[
        bool,
        typer.Option(
            "--detect",
            help="Let the route's detectors name every row's task, even where the row gives its category "
            "(then the report says how often they agreed).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show no progress.")] = False,
) -> None:
    """Replay recorded outcomes through a route without calling any model: student share, quality,
    realised loss against the promise, cost saved, and RouteLLM's APGR and CPT."""
    with cli_errors(), progress_reporter("route eval", quiet) as progress:
        report = replay_policy(policy, route, outcomes, bins=bins or None, detect=detect, progress=progress)
    if as_json:
        typer.echo(report.dumps())
    else:
        _print_table(report)
