"""``bitrate profile export``: the live store's observations as an outcomes file
(``profiles.live_export``), for ``bitrate profile import`` and ``bitrate route eval``.

The store is ``--store`` when given, else the policy's ``live.store`` (relative to the policy
file; default ``bitrate-live.sqlite`` beside it). The store is only read: a missing SQLite file
or a database without the store's tables is one error line, exit status 2, as is a store with
no observation (of ``--route``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bitrate_cli.common import cli_errors
from profiles.live_export import export_outcomes
from sdk.errors import ConfigError
from sdk.live.config import LiveConfig
from sdk.live.store import open_store
from sdk.policy import load_policy

__all__ = ["export", "store_location"]


def store_location(policy_path: Path | None, store: str | None) -> str:
    """``store`` when given, else the policy's live store resolved beside the policy file."""
    if store:
        return store
    if policy_path is None:
        raise ConfigError("give --policy (its live store is read) or --store PATH_OR_URL", key="--store")
    policy = load_policy(policy_path)
    live = policy.live or LiveConfig()  # a policy without a `live:` section: the default
    return live.store_location(policy_path.resolve().parent)


def export(
    out: Annotated[Path, typer.Option("--out", help="Where to write the outcomes JSONL.")],
    policy: Annotated[
        Path | None, typer.Option("--policy", "--config", "-p", help="Policy YAML whose live store is read.")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="The live store (SQLite file or postgresql:// URL); overrides the policy's."
        ),
    ] = None,
    route: Annotated[
        str | None, typer.Option("--route", "-r", help="Only this route's observations.")
    ] = None,
) -> None:
    """Write live observations as outcome rows (see `profile import` and `route eval`)."""
    with cli_errors():
        location = store_location(policy, store)
        with open_store(location, create=False) as live_store:
            summary = export_outcomes(live_store.export(route=route), out)
            if summary.rows == 0:
                where = f"route '{route}'" if route else "any route"
                raise ConfigError(
                    f"no live observations of {where}; nothing written", location=live_store.location
                )
    typer.echo(summary.line())
