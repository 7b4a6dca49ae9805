"""``bitrate policy check P`` (everything ``bitrate serve`` would refuse, one line each, exit 2) and
``bitrate policy schema`` (the policy's JSON Schema, for editors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bitrate_cli.common import PolicyOption, cli_errors, error_line, settings
from sdk.errors import ConfigError
from sdk.policy import Policy, read_policy
from sdk.policy_check import check_policy_file

__all__ = ["policy_app"]

policy_app = typer.Typer(help="Validate routing policies and print their schema.", no_args_is_help=True)


@policy_app.command("check")
def check(
    path: Annotated[
        Path | None, typer.Argument(help="Policy YAML file (or --policy/--config, or env BITRATE_POLICY).")
    ] = None,
    policy_option: PolicyOption = None,
    static: Annotated[
        bool,
        typer.Option(
            "--static",
            help="Check the file alone (keys, types, references), not the profiles, model "
            "directories and environment variables it names: for a policy whose profile is not built yet.",
        ),
    ] = False,
) -> None:
    """Check a policy as 'bitrate serve' would: prints 'ok: N models, M routes', or every problem
    (one line each, naming file, line and key) and exits 2."""
    with cli_errors():
        chosen = path or settings(policy=policy_option).policy
        if chosen is None:
            raise ConfigError("no policy to check: give its path (or set BITRATE_POLICY)")
    policy, problems = read_policy(chosen) if static else check_policy_file(chosen)
    for problem in problems:
        typer.echo(error_line(problem), err=True)
    if policy is None or problems:
        raise typer.Exit(2)
    typer.echo(f"ok: {len(policy.models)} models, {len(policy.routes)} routes")


@policy_app.command("schema")
def schema() -> None:
    """Print the policy file's JSON Schema."""
    typer.echo(json.dumps(Policy.model_json_schema(), indent=2))
