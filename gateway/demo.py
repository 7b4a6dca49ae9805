"""``bitrate demo``: the whole life cycle on the embedded pair, through the real HTTP gateway.

It loads the route's profile (and writes its human report when given a writer),
starts the gateway on a free local port, sends a mixed workload of the tiny
suite through the official ``openai`` client (every other call streamed), and
prints, per category, where calls went, accuracy against the references (exact
match after strip), the frontier's accuracy from the profile, and the cost saved;
then the overall line. Everything it starts is stopped before it returns.

The suite file is read directly (JSONL: ``category``, ``prompt`` or ``messages``,
``reference``), so ``gateway`` never imports ``profiles``; the console command passes
``profiles.report.write_report`` as ``report_writer``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.demo_view import render
from sdk.errors import ConfigError
from sdk.policy import Policy

__all__ = ["CategoryRow", "DemoResult", "TINY_SUITE", "demo", "run_demo"]

TINY_SUITE = Path(__file__).resolve().parent.parent / "profiles" / "data" / "tiny.jsonl"
"""The shipped probe suite (``profiles/data/tiny.jsonl``)."""

ReportWriter = Callable[[Any, Path], Any]
"""``(profile, out_dir) -> path or paths written``, e.g. ``profiles.report.write_report``."""


@dataclass
class CategoryRow:
    """What happened to one category's calls."""

    category: str
    verdict: str = "unknown"
    """The profile's verdict at the route's tolerance."""
    frontier_accuracy: float | None = None
    """The frontier's accuracy on this category, from the profile."""
    student: int = 0
    """Calls the student answered."""
    frontier: int = 0
    """Calls the frontier answered."""
    correct: int = 0
    """Answers equal to the reference after strip."""
    saved: float = 0.0
    """Dollars saved against sending these calls to the frontier."""
    frontier_cost: float = 0.0
    """Dollars these calls would have cost on the frontier."""

    @property
    def calls(self) -> int:
        """Calls sent."""
        return self.student + self.frontier

    @property
    def accuracy(self) -> float:
        """Share of routed answers that were right."""
        return self.correct / self.calls if self.calls else 0.0


@dataclass
class DemoResult:
    """The demo's figures, also printed as a table."""

    rows: list[CategoryRow]
    report: Path | None = None
    """Where the profile report was written, when a writer was given."""
    notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)

    @property
    def student_share(self) -> float:
        """Share of calls the student answered."""
        return sum(r.student for r in self.rows) / self.calls if self.calls else 0.0

    @property
    def accuracy(self) -> float:
        """Routed accuracy over every call."""
        return sum(r.correct for r in self.rows) / self.calls if self.calls else 0.0

    @property
    def frontier_accuracy(self) -> float | None:
        """All-frontier accuracy on this workload, from the profile (calls-weighted)."""
        known = [r for r in self.rows if r.frontier_accuracy is not None]
        calls = sum(r.calls for r in known)
        return sum(r.frontier_accuracy * r.calls for r in known) / calls if calls else None  # type: ignore[operator]

    @property
    def quality_kept(self) -> float | None:
        """Routed accuracy / all-frontier accuracy."""
        frontier = self.frontier_accuracy
        return self.accuracy / frontier if frontier else None

    @property
    def saved(self) -> float:
        """Dollars saved against all-frontier."""
        return sum(r.saved for r in self.rows)

    @property
    def saved_share(self) -> float:
        """Saving as a share of the all-frontier cost."""
        total = sum(r.frontier_cost for r in self.rows)
        return self.saved / total if total else 0.0


def run_demo(report_writer: ReportWriter | None = None, **options: Any) -> int:
    """``bitrate demo``: run :func:`demo` and return the exit status: 0, or 2 with a one-line
    message when the setup is wrong (no profile, no suite, a bad policy)."""
    try:
        demo(report_writer, **options)
    except ConfigError as exc:
        _console(options.get("console")).print(f"[red]error[/]: {exc}")
        return 2
    return 0


def _console(console: Any) -> Any:
    from rich.console import Console

    return console or Console()


def demo(
    report_writer: ReportWriter | None = None,
    *,
    policy: Policy | None = None,
    route: str = "auto",
    suite: Path | None = None,
    per_category: int = 12,
    concurrency: int = 8,
    max_tokens: int = 32,
    out_dir: Path | None = None,
    console: Any = None,
) -> DemoResult:
    """Run the demo and print its table (see the module docstring); return the figures."""
    from sdk.policy import default_policy

    console = _console(console)
    policy = policy or default_policy()
    profile = _load_profile(policy, route)
    items = workload(suite or TINY_SUITE, per_category)
    result = DemoResult(_rows(policy, route, profile, items))
    if report_writer is not None:
        result.report = _write_report(report_writer, profile, out_dir)
    console.print(
        f"[bold]bitrate demo[/]: {len(items)} calls over {len(result.rows)} categories, route '{route}'"
    )
    answers = _send_through_gateway(policy, route, items, concurrency, max_tokens)
    _tally(result, policy, route, items, answers)
    render(console, result)
    return result


def _load_profile(policy: Policy, route: str) -> Any:
    from sdk.profile import load_profile

    if route not in policy.routes:
        raise ConfigError(f"the policy has no route '{route}'")
    path = policy.profile_path(route)
    if path is None or not path.is_file():
        raise ConfigError(
            f"route '{route}' has no profile file ({path}); build one with `bitrate profile build`"
        )
    return load_profile(path)


def workload(path: Path, per_category: int) -> list[dict[str, Any]]:
    """Up to ``per_category`` items of each category of a JSONL suite, interleaved by category."""
    if not path.is_file():
        raise ConfigError("suite file not found", location=str(path))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            if len(groups[item["category"]]) < per_category:
                groups[item["category"]].append(item)
    mixed: list[dict[str, Any]] = []
    for i in range(per_category):
        mixed.extend(g[i] for g in groups.values() if i < len(g))
    return mixed


def _rows(policy: Policy, route: str, profile: Any, items: list[dict[str, Any]]) -> list[CategoryRow]:
    tolerance = policy.routes[route].tolerance
    rows = {}
    for item in items:
        cat = item["category"]
        if cat not in rows:
            stats = profile.categories.get(cat)
            rows[cat] = CategoryRow(cat)
            if stats is not None:
                rows[cat].verdict = stats.verdict_at(tolerance.max_loss, tolerance.confidence)
                rows[cat].frontier_accuracy = stats.frontier_accuracy
    return list(rows.values())


def _write_report(writer: ReportWriter, profile: Any, out_dir: Path | None) -> Path:
    target = out_dir or Path(tempfile.gettempdir()) / "bitrate-demo"
    target.mkdir(parents=True, exist_ok=True)
    written = writer(profile, target)
    return Path(written[0] if isinstance(written, tuple | list) else written)


def _send_through_gateway(
    policy: Policy, route: str, items: list[dict[str, Any]], concurrency: int, max_tokens: int
) -> list[tuple[str, dict[str, Any], Any]]:
    from gateway.app import create_app
    from gateway.local import serve_in_thread

    with serve_in_thread(create_app(policy)) as server:
        return asyncio.run(_drive(server.base_url, route, items, concurrency, max_tokens))


async def _drive(
    base_url: str, route: str, items: list[dict[str, Any]], concurrency: int, max_tokens: int
) -> list[tuple[str, dict[str, Any], Any]]:
    import openai

    gate = asyncio.Semaphore(concurrency)
    async with openai.AsyncOpenAI(base_url=base_url, api_key="demo", max_retries=0) as client:

        async def one(i: int, item: dict[str, Any]) -> tuple[str, dict[str, Any], Any]:
            async with gate:
                return await _ask(client, route, item, stream=i % 2 == 1, max_tokens=max_tokens)

        return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))


async def _ask(client: Any, route: str, item: dict[str, Any], *, stream: bool, max_tokens: int) -> tuple:
    """One call: ``(answer text, bitrate metadata, usage)``."""
    messages = item.get("messages") or [{"role": "user", "content": item["prompt"]}]
    args = {"model": route, "messages": messages, "temperature": 0, "max_tokens": max_tokens}
    if not stream:
        completion = await client.chat.completions.create(**args)
        return (
            completion.choices[0].message.content or "",
            completion.model_extra["bitrate"],
            completion.usage,
        )
    chunks = await client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    text, meta, usage = [], {}, None
    async for chunk in chunks:
        text.extend(c.delta.content or "" for c in chunk.choices)
        meta = (chunk.model_extra or {}).get("bitrate") or meta
        usage = chunk.usage or usage
    return "".join(text), meta, usage


def is_correct(answer: str, reference: Any) -> bool:
    """Exact match after strip; a list reference accepts any of its values."""
    options = reference if isinstance(reference, list) else [reference]
    return any(answer.strip() == str(option).strip() for option in options if option is not None)


def _tally(
    result: DemoResult, policy: Policy, route: str, items: list[dict[str, Any]], answers: list[tuple]
) -> None:
    rows = {r.category: r for r in result.rows}
    frontier_price = policy.models[policy.routes[route].frontier].price
    for item, (text, meta, usage) in zip(items, answers, strict=True):
        row = rows[item["category"]]
        if meta.get("side") == "student":
            row.student += 1
        else:
            row.frontier += 1
        row.correct += is_correct(text, item.get("reference"))
        if usage is not None:
            full = frontier_price.cost(usage.prompt_tokens, usage.completion_tokens)
            actual = policy.models[meta["target"]].price.cost(usage.prompt_tokens, usage.completion_tokens)
            row.frontier_cost += full
            row.saved += full - actual
