"""``bitrate policy check P`` (validate a policy, one error line and exit 2 when it is wrong) and
``bitrate policy schema`` (the policy's JSON Schema, for editors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bitrate_cli.common import cli_errors
from sdk.policy import Policy, load_policy

__all__ = ["policy_app"]

policy_app = typer.Typer(help="Validate routing policies and print their schema.", no_args_is_help=True)


@policy_app.command("check")
def check(path: Annotated[Path, typer.Argument(help="Policy YAML file.")]) -> None:
    """Validate a policy: prints 'ok: N models, M routes' or the one error (exit 2)."""
    with cli_errors():
        policy = load_policy(path)
    typer.echo(f"ok: {len(policy.models)} models, {len(policy.routes)} routes")


@policy_app.command("schema")
def schema() -> None:
    """Print the policy file's JSON Schema."""
    typer.echo(json.dumps(Policy.model_json_schema(), indent=2))
