"""The ``bitrate`` console command: the only module that imports both ``gateway`` and ``profiles``.

Each package owns its sub-commands; this module only assembles them.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="bitrate: route chat calls between a distilled student and the frontier.",
    no_args_is_help=True,
    add_completion=False,
)


def _assemble() -> typer.Typer:
    return app


def main() -> None:
    """Console entry point."""
    _assemble()()


if __name__ == "__main__":
    main()
