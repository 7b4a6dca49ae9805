"""``bitrate profile build``: measure student vs frontier on probe suites, write a profile.

Registered by ``bitrate_cli.profile``. Without ``--policy`` (or ``$BITRATE_POLICY``) it
measures the embedded pair (``sdk.policy.default_policy()``). Progress goes to stderr
(``profiles.runner``); Ctrl-C says how far the run got and how to resume from the call
cache, and exits 130.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bitrate_cli.common import (
    EXIT_INTERRUPTED,
    ConfidenceOption,
    MaxLossOption,
    PolicyOption,
    cli_errors,
    confidence_flag,
    loss_flag,
    make_tolerance,
    policy_or_default,
    settings,
)
from profiles.assemble import assemble_profile
from profiles.cache import CallCache
from profiles.report import format_interval, format_loss, tolerance_in_words
from profiles.runner import Contender, Runner, RunOptions, RunResult, Tally
from profiles.suites import Suite, load_suite
from profiles.summary import SequentialMonitor
from sdk.backends import make_backend
from sdk.errors import ConfigError
from sdk.policy import Policy, RouteConfig
from sdk.profile import Profile, SuiteInfo

__all__ = ["build", "build_profile", "interrupted_line"]

_STYLE = {"safe": "green", "uncertain": "yellow", "unsafe": "red"}


def _route(policy_or_path: Policy | Path | None, route: str) -> tuple[Policy, RouteConfig]:
    """The policy and its route ``route``."""
    policy = policy_or_path if isinstance(policy_or_path, Policy) else policy_or_default(policy_or_path)
    config = policy.route_of(route)
    if config is None:
        raise ConfigError(
            f"no route '{route}' (routes: {', '.join(sorted(policy.routes)) or 'none'})", key="route"
        )
    return policy, config


def _contenders(policy: Policy, config: RouteConfig) -> list[Contender]:
    """Both sides of the route, their backends built."""
    return [
        Contender(name, policy.models[name], make_backend(name, policy.models[name]))
        for name in (config.student, config.frontier)
    ]


async def _measure(runner: Runner, suite: Suite) -> RunResult:
    try:
        return await runner.run(suite.items)
    finally:
        await asyncio.gather(runner.student.backend.close(), runner.frontier.backend.close())


def build_profile(
    *,
    policy: Policy | Path | None = None,
    route: str = "auto",
    suite: list[str],
    max_loss: float | None = None,
    confidence: float | None = None,
    options: RunOptions | None = None,
    cache: CallCache | None = None,
    keep_evidence: bool = True,
    sequential: bool = False,
    tally: Tally | None = None,
) -> tuple[Profile, RunResult]:
    """Measure ``route``'s pair on ``suite`` specs and assemble the profile (not saved). ``policy``: a
    loaded policy, a path, or ``None`` (``$BITRATE_POLICY``, else the embedded pair). ``max_loss``
    and ``confidence`` are fractions (default: the route's); out of range is a ``ConfigError``.
    ``tally`` is kept up to date as items finish (read it after an interrupt)."""
    loaded, config = _route(policy, route)
    tolerance = make_tolerance(  # before anything loads
        config.tolerance.max_loss if max_loss is None else max_loss,
        config.tolerance.confidence if confidence is None else confidence,
    )
    items = load_suite(suite)
    student, frontier = _contenders(loaded, config)
    monitor = SequentialMonitor(tolerance.max_loss, tolerance.confidence) if sequential else None
    runner = Runner(student, frontier, cache=cache, options=options, monitor=monitor, tally=tally)
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
            f"{format_loss(c.loss)} {format_interval(c.loss_low, c.loss_high)}",
            f"{c.breaks:.1%}",
            f"{c.fixes:.1%}",
            f"[{_STYLE[c.verdict]}]{c.verdict}[/]",
        )
    console = Console(width=120)
    console.print(table)
    t = profile.tolerance
    console.print(f"tolerance: {tolerance_in_words(t.max_loss, t.confidence)}")
    if result.calls["saved"]:
        console.print(f"sequential stopping saved {result.calls['saved']} calls")
    for error in result.errors:
        console.print(f"dropped {error}", markup=False)
    console.print(f"model calls: {result.model_calls} (cache hits: {result.calls['cached']})")
    console.print(f"wrote {out}", markup=False)


def interrupted_line(tally: Tally, cache: CallCache | None) -> str:
    """What an interrupted build says: how far it got and how to resume."""
    done = f"interrupted after {tally.done} of {tally.total} items"
    if cache is None:
        return f"{done}; nothing was cached (--no-cache): a new run starts over"
    return (
        f"{done}; {tally.model_calls} new answers are in the call cache {cache.path} "
        f"({len(cache)} in all): run the same command again to resume without asking them again"
    )


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
    policy: PolicyOption = None,
    route: Annotated[str, typer.Option(help="Route whose student and frontier are measured.")] = "auto",
    max_loss: MaxLossOption = None,
    confidence: ConfidenceOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Items in flight at once.")] = 8,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Generation limit per answer.")] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds one call may take.")] = 300.0,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Call cache folder (env BITRATE_CACHE_DIR; default ./.bitrate-cache).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Bypass the call cache.")] = False,
    no_evidence: Annotated[bool, typer.Option("--no-evidence", help="Leave per-item scores out.")] = False,
    sequential: Annotated[bool, typer.Option("--sequential", help="Stop settled categories early.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress (bar or log lines).")] = False,
) -> None:
    """Measure the student against the frontier on probe suites and write a capability profile.
    --max-loss and --confidence default to the route's tolerance."""
    tally = Tally()
    cache: CallCache | None = None
    with cli_errors():
        loss, level = loss_flag(max_loss), confidence_flag(confidence)  # checked before any model loads
        cache = None if no_cache else CallCache(settings(cache_dir=cache_dir).cache_dir)
        try:
            options = RunOptions(concurrency=concurrency, timeout=timeout, max_tokens=max_tokens, quiet=quiet)
            profile, result = build_profile(
                policy=policy,
                route=route,
                suite=suite,
                max_loss=loss,
                confidence=level,
                options=options,
                cache=cache,
                keep_evidence=not no_evidence,
                sequential=sequential,
                tally=tally,
            )
        except KeyboardInterrupt:
            typer.echo(interrupted_line(tally, cache), err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        finally:
            if cache is not None:
                cache.close()
        profile.save(out)
    _print_summary(profile, result, out)
