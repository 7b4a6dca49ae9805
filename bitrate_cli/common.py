"""What every command shares: the error boundary and the common options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from sdk.errors import BitrateError
from sdk.policy import Policy, default_policy, load_policy

__all__ = ["PolicyOption", "RouteOption", "cli_errors", "error_line", "policy_or_default"]

PolicyOption = Annotated[
    Path | None, typer.Option("--policy", "-p", help="Policy YAML (default: the embedded pair).")
]
RouteOption = Annotated[str | None, typer.Option("--route", "-r", help="Route name (default: the first).")]


def error_line(exc: BitrateError) -> str:
    """``error: <message>`` on one line, whatever the message holds."""
    return "error: " + " ".join(str(exc).splitlines())


@contextmanager
def cli_errors() -> Iterator[None]:
    """The command line's one error boundary: a ``BitrateError`` becomes one stderr line, exit 2."""
    try:
        yield
    except BitrateError as exc:
        typer.echo(error_line(exc), err=True)
        raise typer.Exit(2) from exc


def policy_or_default(path: Path | None) -> Policy:
    """The policy at ``path``, or the embedded pair's when none is given."""
    return load_policy(path) if path else default_policy()
