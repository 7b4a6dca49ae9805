"""The ``bitrate`` console command: the command-line layer, the only code that imports ``sdk``,
``gateway`` and ``profiles`` together. Each command is a thin function over a library call::

    bitrate serve                                   bitrate_cli.serve    (gateway)
    bitrate demo                                    bitrate_cli.demo     (gateway + profiles)
    bitrate profile build|import|show|report|diff|live  bitrate_cli.profile  (profiles, sdk.live)
    bitrate policy check|schema                     bitrate_cli.policy   (sdk)
    bitrate route explain|eval                      bitrate_cli.route    (sdk + profiles)
    bitrate student serve                           bitrate_cli.student  (vLLM's server)

Errors a user can cause end as one ``error: ...`` line on stderr and exit status 2
(:func:`bitrate_cli.common.cli_errors`).
"""

from __future__ import annotations

import typer

from bitrate_cli.demo import demo_command
from bitrate_cli.policy import policy_app
from bitrate_cli.profile import profile_app
from bitrate_cli.route import route_app
from bitrate_cli.serve import serve
from bitrate_cli.student import student_app

__all__ = ["build_app", "main"]


def build_app() -> typer.Typer:
    """The command tree."""
    app = typer.Typer(
        help="bitrate: route chat calls between a distilled student and the frontier, and know why.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.command("serve")(serve)
    app.command("demo")(demo_command)
    app.add_typer(profile_app, name="profile")
    app.add_typer(policy_app, name="policy")
    app.add_typer(route_app, name="route")
    app.add_typer(student_app, name="student")
    return app


def main() -> None:
    """Console entry point."""
    build_app()()
