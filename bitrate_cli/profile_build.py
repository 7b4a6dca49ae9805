"""``bitrate profile build``: measure student vs frontier on probe suites, write a profile.

Registered by ``bitrate_cli.profile``. Without ``--policy`` it measures the
embedded pair (``sdk.policy.default_policy()``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bitrate_cli.common import policy_or_default
from profiles.assemble import assemble_profile
from profiles.cache import CallCache
from profiles.runner import Contender, Runner, RunOptions, RunResult
from profiles.suites import Suite, load_suite
from profiles.summary import SequentialMonitor
from sdk.backends import make_backend
from sdk.errors import BitrateError, ConfigError
from sdk.profile import Profile, SuiteInfo, Tolerance

__all__ = ["build", "build_profile"]

_STYLE = {"safe": "green", "uncertain": "yellow", "unsafe": "red"}


def _sides(policy_path: Path | None, route: str) -> tuple[list[Contender], Tolerance]:
    """Build both backends of ``route`` and read its tolerance."""
    policy = policy_or_default(policy_path)
    config = policy.route_of(route)
    if config is None:
        raise ConfigError(
            f"no route '{route}' (routes: {', '.join(sorted(policy.routes)) or 'none'})", key="route"
        )
    sides = [
        Contender(name, policy.models[name], make_backend(name, policy.models[name]))
        for name in (config.student, config.frontier)
    ]
    tolerance = Tolerance(max_loss=config.tolerance.max_loss, confidence=config.tolerance.confidence)
    return sides, tolerance


async def _measure(runner: Runner, suite: Suite) -> RunResult:
    try:
        return await runner.run(suite.items)
    finally:
        await asyncio.gather(runner.student.backend.close(), runner.frontier.backend.close())


def build_profile(
    *,
    policy: Path | None = None,
    route: str = "auto",
    suite: list[str],
    max_loss: float | None = None,
    confidence: float | None = None,
    options: RunOptions | None = None,
    cache: CallCache | None = None,
    keep_evidence: bool = True,
    sequential: bool = False,
) -> tuple[Profile, RunResult]:
    """Measure ``route``'s pair on ``suite`` specs and assemble the profile (not saved)."""
    items = load_suite(suite)
    (student, frontier), tolerance = _sides(policy, route)
    tolerance = Tolerance(
        max_loss=tolerance.max_loss if max_loss is None else max_loss,
        confidence=tolerance.confidence if confidence is None else confidence,
    )
    monitor = SequentialMonitor(tolerance.max_loss, tolerance.confidence) if sequential else None
    runner = Runner(student, frontier, cache=cache, options=options, monitor=monitor)
    result = asyncio.run(_measure(runner, items))
    if not result.outcomes:
        raise ConfigError(
            f"no item could be measured; first error: {result.errors[0]}"
            if result.errors
            else "the suite has no items"
        )
    profile = assemble_profile(
        result.outcomes,
        student=student.model_identity(),
        frontier=frontier.model_identity(),
        suite=SuiteInfo(names=list(suite), sha256=items.hash, n_items=len(items.items)),
        tolerance=tolerance,
        method="build",
        keep_evidence=keep_evidence,
        calls={key: result.calls[key] for key in ("student", "frontier", "cached", "saved")},
    )
    return profile, result


def _print_summary(profile: Profile, result: RunResult, out: Path) -> None:
    table = Table(title=f"{profile.student.name} vs {profile.frontier.name}")
    for column in ("category", "n", "student", "frontier", "loss (interval)", "breaks", "fixes", "verdict"):
        table.add_column(column, justify="left" if column in ("category", "verdict") else "right")
    for name, c in profile.categories.items():
        table.add_row(
            name,
            str(c.n),
            f"{c.student_accuracy:.1%}",
            f"{c.frontier_accuracy:.1%}",
            f"{c.loss:+.3f} ({c.loss_low:+.3f}, {c.loss_high:+.3f})",
            f"{c.breaks:.1%}",
            f"{c.fixes:.1%}",
            f"[{_STYLE[c.verdict]}]{c.verdict}[/]",
        )
    console = Console(width=120)
    console.print(table)
    t = profile.tolerance
    console.print(f"tolerance: max_loss {t.max_loss:g} at confidence {t.confidence:g}")
    if result.calls["saved"]:
        console.print(f"sequential stopping saved {result.calls['saved']} calls")
    for error in result.errors:
        console.print(f"dropped {error}", markup=False)
    console.print(f"model calls: {result.model_calls} (cache hits: {result.calls['cached']})")
    console.print(f"wrote {out}", markup=False)


def build(
    suite: Annotated[
        list[str],
        typer.Option(
            "--suite",
            "-s",
            help="Suite spec: tiny, gsm8k:PATH, bbh:PATH, "
            "ifeval:PATH or a .jsonl[.gz] path, with optional @N "
            "(at most N items per category). Repeatable.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the profile JSON.")],
    policy: Annotated[Path | None, typer.Option(help="Policy YAML; default: the embedded pair.")] = None,
    route: Annotated[str, typer.Option(help="Route whose student and frontier are measured.")] = "auto",
    max_loss: Annotated[float | None, typer.Option(help="Tolerance; default: the route's.")] = None,
    confidence: Annotated[float | None, typer.Option(help="Confidence; default: the route's.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Items in flight at once.")] = 8,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Generation limit per answer.")] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds one call may take.")] = 300.0,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Call cache folder; default $BITRATE_CACHE_DIR or ./.bitrate-cache.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Bypass the call cache.")] = False,
    no_evidence: Annotated[bool, typer.Option("--no-evidence", help="Leave per-item scores out.")] = False,
    sequential: Annotated[bool, typer.Option("--sequential", help="Stop settled categories early.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Measure the student against the frontier on probe suites and write a capability profile."""
    try:
        cache = None if no_cache else CallCache(cache_dir)
        try:
            options = RunOptions(concurrency=concurrency, timeout=timeout, max_tokens=max_tokens, quiet=quiet)
            profile, result = build_profile(
                policy=policy,
                route=route,
                suite=suite,
                max_loss=max_loss,
                confidence=confidence,
                options=options,
                cache=cache,
                keep_evidence=not no_evidence,
                sequential=sequential,
            )
        finally:
            if cache is not None:
                cache.close()
        profile.save(out)
    except BitrateError as exc:  # the CLI boundary: one line on stderr, exit status 2 (as profiles.cli)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _print_summary(profile, result, out)
