"""The ``bitrate`` console command: the command-line layer, the only code that imports ``sdk``,
``gateway`` and ``profiles`` together. Each command is a thin function over a library call::

    bitrate serve                                   bitrate_cli.serve    (gateway)
    bitrate demo                                    bitrate_cli.demo     (gateway + profiles)
    bitrate profile build|import|show|report|diff|live  bitrate_cli.profile  (profiles, sdk.live)
    bitrate policy check|schema                     bitrate_cli.policy   (sdk)
    bitrate route explain|eval                      bitrate_cli.route    (sdk + profiles)
    bitrate student serve|distill                   bitrate_cli.student  (vLLM's server; profiles.distill)
    bitrate capture export                          bitrate_cli.capture  (sdk.live.capture, profiles.distill)

Errors a user can cause end as one ``error: ...`` line on stderr and exit status 2
(:func:`bitrate_cli.common.cli_errors`). Exit statuses: 0 done, 2 a usage or configuration
error, 3 ``serve`` failed to start for another reason, 130 interrupted (typer turns Ctrl-C into
130; ``profile build`` first says where its cache stands). ``bitrate --version`` prints the version.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from bitrate_cli.capture import capture_app
from bitrate_cli.common import EXIT_CODES_HELP
from bitrate_cli.demo import demo_command
from bitrate_cli.policy import policy_app
from bitrate_cli.profile import profile_app
from bitrate_cli.route import route_app
from bitrate_cli.serve import serve
from bitrate_cli.student import student_app

__all__ = ["build_app", "main", "package_version"]


def package_version() -> str:
    """The installed distribution's version."""
    try:
        return version("bitrate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"bitrate {package_version()}")
        raise typer.Exit()


def _root(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """bitrate: route chat calls between a distilled student and the frontier, and know why."""


def build_app() -> typer.Typer:
    """The command tree."""
    app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        epilog=EXIT_CODES_HELP,
    )
    app.callback()(_root)
    app.command("serve", epilog=EXIT_CODES_HELP)(serve)
    app.command("demo")(demo_command)
    app.add_typer(profile_app, name="profile")
    app.add_typer(policy_app, name="policy")
    app.add_typer(route_app, name="route")
    app.add_typer(student_app, name="student")
    app.add_typer(capture_app, name="capture")
    return app


def main() -> None:
    """Console entry point."""
    build_app()()
