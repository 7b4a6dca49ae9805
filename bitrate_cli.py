"""The ``bitrate`` console command: the only module that imports both ``gateway`` and ``profiles``.

Each package owns its sub-commands; this module only assembles them::

    bitrate serve | demo                       gateway
    bitrate profile build|import|show|report|diff    profiles
    bitrate policy check|schema                sdk
    bitrate route explain|eval                 sdk
    bitrate student serve                      sdk (vLLM's OpenAI server for a student)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["build_app", "main"]


def _demo(
    out: Annotated[Path, typer.Option(help="Where the profile report is written.")] = Path("bitrate-demo"),
    per_category: Annotated[int, typer.Option(help="Requests per task category.")] = 12,
) -> None:
    """Run the whole life cycle on the embedded pair: profile, serve, route a workload, report."""
    from gateway.demo import run_demo
    from profiles.report import write_report

    def report_writer(profile, out_dir: Path) -> Path:
        markdown, _chart = write_report(profile, out_dir)
        return markdown

    code = run_demo(report_writer=report_writer, out_dir=out, per_category=per_category)
    raise typer.Exit(code)


def build_app() -> typer.Typer:
    """Assemble the command tree from the packages' own sub-apps."""
    from gateway.cli import serve
    from profiles.cli import profile_app
    from sdk.cli import policy_app, route_app
    from sdk.cli_student import student_app

    app = typer.Typer(
        help="bitrate: route chat calls between a distilled student and the frontier, and know why.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.command("serve")(serve)
    app.command("demo")(_demo)
    app.add_typer(profile_app, name="profile")
    app.add_typer(policy_app, name="policy")
    app.add_typer(route_app, name="route")
    app.add_typer(student_app, name="student")
    return app


def main() -> None:
    """Console entry point."""
    build_app()()


if __name__ == "__main__":
    main()
