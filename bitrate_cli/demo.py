"""``bitrate demo``: the whole life cycle on the embedded pair, through the real HTTP gateway.

It measures the pair on the probe suite (``bitrate profile build``'s library path, the
``tiny`` suite by default: every answer goes to the call cache, ``./.bitrate-cache`` or
``$BITRATE_CACHE_DIR``, so a second run asks no model again) and writes the profile and
its human report; with ``--shipped-profile`` it says so and uses the profile the project
ships instead. Then it starts the gateway on a free local port, sends a mixed workload of
the suite through the official ``openai`` client (every other call streamed), and prints,
per category, where calls went, accuracy against the references (exact match after
strip), the frontier's accuracy from the profile, and the cost saved; then the overall
line. Each step is announced as it starts, with the profiling's progress on stderr.
Everything it starts is stopped before it returns.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bitrate_cli.common import settings
from bitrate_cli.demo_view import CategoryRow, DemoResult, render
from bitrate_cli.profile_build import build_profile
from profiles.cache import CallCache
from profiles.report import write_report
from profiles.runner import RunOptions
from profiles.suites import Item, load_suite
from sdk.errors import ConfigError
from sdk.policy import EMBEDDED_PROFILE, Policy, default_policy
from sdk.profile import Profile, load_profile

__all__ = ["CategoryRow", "DemoResult", "demo", "demo_command", "run_demo", "workload"]

Answer = tuple[str, dict[str, Any], Any]
"""One call's ``(answer text, bitrate metadata, usage)``."""


def demo_command(
    out: Annotated[Path, typer.Option(help="Where the measured profile and its report are written.")] = Path(
        "bitrate-demo"
    ),
    per_category: Annotated[int, typer.Option(help="Requests per task category.")] = 12,
    shipped_profile: Annotated[
        bool,
        typer.Option(
            "--shipped-profile", help="Use the profile the project ships instead of measuring the pair here."
        ),
    ] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Call cache folder (env BITRATE_CACHE_DIR; default ./.bitrate-cache).")
    ] = None,
) -> None:
    """Run the whole life cycle on the embedded pair: measure its profile (cached after the first run),
    serve, route a workload through the gateway, report."""
    measure = None if shipped_profile else "tiny"
    raise typer.Exit(run_demo(out_dir=out, per_category=per_category, measure=measure, cache_dir=cache_dir))


def run_demo(**options: Any) -> int:
    """Run :func:`demo` and return the exit status: 0, or 2 with a one-line message when the
    setup is wrong (no profile, no suite, a bad policy)."""
    try:
        demo(**options)
    except ConfigError as exc:
        (options.get("console") or Console()).print(f"[red]error[/]: {exc}")
        return 2
    return 0


def demo(
    *,
    policy: Policy | None = None,
    route: str = "auto",
    suite: str | Path = "tiny",
    per_category: int = 12,
    concurrency: int = 8,
    max_tokens: int = 32,
    out_dir: Path | None = None,
    console: Console | None = None,
    measure: str | None = None,
    cache_dir: Path | None = None,
) -> DemoResult:
    """Run the demo and print its table (see the module docstring); return the figures. ``measure``:
    the suite to profile the route's pair on first (``None``: use the route's profile file)."""
    console = console or Console()
    policy = policy or default_policy()
    report_dir = out_dir or Path(tempfile.gettempdir()) / "bitrate-demo"
    items = workload(load_suite(str(suite)).items, per_category)
    if measure is None:
        profile = _load_profile(policy, route)
        console.print(f"[bold]1/3[/] profile: {_profile_origin(policy, route, profile)}")
    else:
        policy, profile = _measure(policy, route, measure, report_dir, cache_dir, console)
    result = DemoResult(_rows(policy, route, profile, items))
    result.report = write_report(profile, report_dir)[0]
    console.print(
        f"[bold]2/3[/] starting the gateway (loading both models), then routing {len(items)} calls over "
        f"{len(result.rows)} categories through route '{route}' with the openai client"
    )
    answers = _send_through_gateway(
        policy, route, items, concurrency, max_tokens, _counter(console, len(items))
    )
    _tally(result, policy, route, items, answers)
    console.print("[bold]3/3[/] where each call went")
    render(console, result)
    return result


def _profile_origin(policy: Policy, route: str, profile: Profile) -> str:
    """Where the profile the demo uses came from, in words."""
    measured = f"measured on '{', '.join(profile.suite.names)}' ({profile.suite.n_items} items)"
    if policy.routes[route].profile == EMBEDDED_PROFILE:
        return f"the profile shipped with bitrate ({measured}), not measured here"
    return f"{policy.profile_path(route)} ({measured}), not measured here"


def _measure(
    policy: Policy, route: str, suite: str, out_dir: Path, cache_dir: Path | None, console: Console
) -> tuple[Policy, Profile]:
    """Profile ``route``'s pair on ``suite`` (cached calls are not asked again), save it in
    ``out_dir``, and return a copy of ``policy`` whose route uses it."""
    with CallCache(settings(cache_dir=cache_dir).cache_dir) as cache:
        console.print(
            f"[bold]1/3[/] measuring student vs frontier on the '{suite}' suite "
            f"(answers cached in {cache.path.parent}: a second run asks no model again; "
            "--shipped-profile skips this)"
        )
        profile, result = build_profile(
            policy=policy, route=route, suite=[suite], options=RunOptions(), cache=cache
        )
    saved = profile.save(out_dir / "profile.json").resolve()
    console.print(
        f"    {len(result.outcomes)} items, {result.model_calls} model calls, {result.calls['cached']} "
        f"answers from the cache; profile written to {saved}"
    )
    measured = policy.model_copy(deep=True)
    measured.routes[route] = measured.routes[route].model_copy(update={"profile": str(saved)})
    return measured, profile


def _counter(console: Console, total: int) -> Callable[[], None]:
    """Counts answers; on a terminal, a status line shows how many are in."""
    done = 0
    status = console.status(f"0/{total} answers") if console.is_terminal else None
    if status is not None:
        status.start()

    def answered() -> None:
        nonlocal done
        done += 1
        if status is not None:
            status.update(f"{done}/{total} answers")
            if done == total:
                status.stop()

    return answered


def _load_profile(policy: Policy, route: str) -> Profile:
    if route not in policy.routes:
        raise ConfigError(f"the policy has no route '{route}'")
    path = policy.profile_path(route)
    if path is None or not path.is_file():
        raise ConfigError(
            f"route '{route}' has no profile file ({path}); build one with `bitrate profile build`"
        )
    return load_profile(path)


def workload(items: list[Item], per_category: int) -> list[Item]:
    """Up to ``per_category`` items of each category, interleaved by category."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        group = groups.setdefault(item.category, [])
        if len(group) < per_category:
            group.append(item)
    mixed: list[Item] = []
    for i in range(per_category):
        mixed.extend(g[i] for g in groups.values() if i < len(g))
    return mixed


def _rows(policy: Policy, route: str, profile: Profile, items: list[Item]) -> list[CategoryRow]:
    tolerance = policy.routes[route].tolerance
    rows = {}
    for item in items:
        cat = item.category
        if cat not in rows:
            stats = profile.categories.get(cat)
            rows[cat] = CategoryRow(cat)
            if stats is not None:
                rows[cat].verdict = stats.verdict_at(tolerance.max_loss, tolerance.confidence)
                rows[cat].frontier_accuracy = stats.frontier_accuracy
    return list(rows.values())


def _send_through_gateway(
    policy: Policy,
    route: str,
    items: list[Item],
    concurrency: int,
    max_tokens: int,
    answered: Callable[[], None] = lambda: None,
) -> list[Answer]:
    # the web stack loads when the demo runs, not for every `bitrate` start-up
    from gateway.app import create_app
    from gateway.local import serve_in_thread

    with serve_in_thread(create_app(policy)) as server:
        return asyncio.run(_drive(server.base_url, route, items, concurrency, max_tokens, answered))


async def _drive(
    base_url: str,
    route: str,
    items: list[Item],
    concurrency: int,
    max_tokens: int,
    answered: Callable[[], None],
) -> list[Answer]:
    import openai  # the caller a user would write; imported when the demo runs

    gate = asyncio.Semaphore(concurrency)
    async with openai.AsyncOpenAI(base_url=base_url, api_key="demo", max_retries=0) as client:

        async def one(i: int, item: Item) -> Answer:
            async with gate:
                answer = await _ask(client, route, item, stream=i % 2 == 1, max_tokens=max_tokens)
            answered()
            return answer

        return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))


async def _ask(client: Any, route: str, item: Item, *, stream: bool, max_tokens: int) -> Answer:
    """One call: ``(answer text, bitrate metadata, usage)``."""
    messages = [m.model_dump(exclude_none=True) for m in item.chat_messages()]
    args = {"model": route, "messages": messages, "temperature": 0, "max_tokens": max_tokens}
    if not stream:
        completion = await client.chat.completions.create(**args)
        return (
            completion.choices[0].message.content or "",
            completion.model_extra["bitrate"],
            completion.usage,
        )
    chunks = await client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    text: list[str] = []
    meta: dict[str, Any] = {}
    usage = None
    async for chunk in chunks:
        text.extend(c.delta.content or "" for c in chunk.choices)
        meta = (chunk.model_extra or {}).get("bitrate") or meta
        usage = chunk.usage or usage
    return "".join(text), meta, usage


def is_correct(answer: str, reference: Any) -> bool:
    """Exact match after strip; a list reference accepts any of its values."""
    options = reference if isinstance(reference, list) else [reference]
    return any(answer.strip() == str(option).strip() for option in options if option is not None)


def _tally(result: DemoResult, policy: Policy, route: str, items: list[Item], answers: list[Answer]) -> None:
    rows = {r.category: r for r in result.rows}
    frontier_price = policy.models[policy.routes[route].frontier].price
    for item, (text, meta, usage) in zip(items, answers, strict=True):
        row = rows[item.category]
        if meta.get("side") == "student":
            row.student += 1
        else:
            row.frontier += 1
        row.correct += is_correct(text, item.reference)
        if usage is not None:
            full = frontier_price.cost(usage.prompt_tokens, usage.completion_tokens)
            actual = policy.models[meta["target"]].price.cost(usage.prompt_tokens, usage.completion_tokens)
            row.frontier_cost += full
            row.saved += full - actual
