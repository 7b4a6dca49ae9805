"""``bitrate policy ...`` and ``bitrate route ...``: typer sub-apps assembled by ``bitrate_cli``.

- ``bitrate policy check P``: validate a policy file (exit 2 with the one error line).
- ``bitrate policy schema``: the policy's JSON Schema, for editors.
- ``bitrate route explain --policy P [--route R] TEXT``: the routing decision, no model call.
- ``bitrate route eval ...``: offline replay, registered from ``sdk.cli_replay`` when present.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Annotated

import typer

from sdk.errors import BitrateError

__all__ = ["policy_app", "route_app"]

policy_app = typer.Typer(help="Validate routing policies and print their schema.", no_args_is_help=True)
route_app = typer.Typer(help="Inspect routing decisions.", no_args_is_help=True)

PolicyOption = Annotated[
    Path | None, typer.Option("--policy", "-p", help="Policy YAML (default: the embedded pair).")
]
RouteOption = Annotated[str | None, typer.Option("--route", "-r", help="Route name (default: the first).")]
TaskOption = Annotated[str | None, typer.Option("--task", help="A task hint, as the x-bitrate-task header.")]


def _fail(exc: BitrateError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2)


@policy_app.command("check")
def check(path: Annotated[Path, typer.Argument(help="Policy YAML file.")]) -> None:
    """Validate a policy: prints 'ok: N models, M routes' or the one error (exit 2)."""
    from sdk.policy import load_policy

    try:
        policy = load_policy(path)
    except BitrateError as exc:
        raise _fail(exc) from exc
    typer.echo(f"ok: {len(policy.models)} models, {len(policy.routes)} routes")


@policy_app.command("schema")
def schema() -> None:
    """Print the policy file's JSON Schema."""
    from sdk.policy import Policy

    typer.echo(json.dumps(Policy.model_json_schema(), indent=2))


def _engine(policy: Path | None):
    from sdk.engine import Engine
    from sdk.policy import default_policy, load_policy

    return Engine(load_policy(policy) if policy else default_policy())


@route_app.command("explain")
def explain(
    text: Annotated[str, typer.Argument(help="The user message to route.")],
    policy: PolicyOption = None,
    route: RouteOption = None,
    task: TaskOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Show where TEXT would go and why, without calling any model."""
    from sdk.protocol import ChatRequest

    try:
        engine = _engine(policy)
        name = route or next(iter(engine.policy.routes), None) or next(iter(engine.policy.models))
        request = ChatRequest(model=name, messages=[{"role": "user", "content": text}])
        decision = engine.explain(request, task)
    except BitrateError as exc:
        raise _fail(exc) from exc
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


def _register_eval() -> None:
    """Part B's ``route eval`` lives in ``sdk.cli_replay``; register it when present."""
    if importlib.util.find_spec("sdk.cli_replay") is None:
        return
    command = getattr(importlib.import_module("sdk.cli_replay"), "eval_command", None)
    if command is not None:
        route_app.command("eval")(command)


_register_eval()
