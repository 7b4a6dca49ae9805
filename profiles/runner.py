"""The profiling runner: ask student and frontier every item, grade both, keep the outcomes.

Calls go through ``sdk`` backends (retries are theirs) with bounded concurrency and
a per-call timeout; greedy decoding (temperature 0) unless told otherwise. Every
call is looked up in the :class:`~profiles.cache.CallCache` first, so a re-run or a
resumed run makes no model call for an item already answered. A call that fails
drops its item (listed in ``RunResult.errors``; a backend failure or a request the
backend refuses, e.g. too long for its context) and is not cached, so the next run
tries it again.

Sequential mode (``monitor=SequentialMonitor(...)``): items are started in suite
order and an item whose category is already settled is skipped; ``calls['saved']``
counts the model calls that skipping avoided. Items already in flight when their
category settles are still measured and kept.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from profiles.assemble import ItemOutcome
from profiles.cache import CachedCall, CallCache, model_identity, request_key
from profiles.graders import make_grader
from profiles.suites import Item
from profiles.summary import SequentialMonitor
from sdk.backends import Backend, ModelConfig
from sdk.errors import BackendError, BackendTimeout, RequestError
from sdk.profile import ModelIdentity
from sdk.protocol import ChatRequest

__all__ = ["RunOptions", "RunResult", "Runner", "Contender"]


@dataclass
class Contender:
    """One of the two models: its policy name, config and a started backend."""

    name: str
    """The model's name in the policy."""
    config: ModelConfig
    """Its configuration (price, model, URL)."""
    backend: Backend
    """The backend that serves it."""
    identity: dict[str, Any] = field(init=False)
    """What the cache keys on (see :func:`profiles.cache.model_identity`)."""

    def __post_init__(self) -> None:
        self.identity = model_identity(self.config)

    def model_identity(self) -> ModelIdentity:
        """The identity a profile records."""
        return ModelIdentity(name=self.name, model=self.config.model, backend=self.config.backend)


@dataclass(frozen=True)
class RunOptions:
    """How the runner calls the models."""

    concurrency: int = 8
    """Items in flight at once (each makes one student and one frontier call)."""
    timeout: float = 300.0
    """Seconds one call may take, retries included, before the item is dropped."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy."""
    max_tokens: int | None = None
    """Generation limit per answer; None keeps the backend's default."""
    quiet: bool = False
    """Hide the progress bar (it is also hidden when stderr is not a terminal)."""


@dataclass
class RunResult:
    """What a run produced."""

    outcomes: list[ItemOutcome]
    """Graded items, in suite order."""
    calls: Counter[str]
    """``student`` and ``frontier``: model calls made; ``cached``: cache hits; ``saved``:
    calls avoided by sequential stopping."""
    errors: list[str]
    """One line per dropped item: its id and the error."""

    @property
    def model_calls(self) -> int:
        """Model calls actually made."""
        return self.calls["student"] + self.calls["frontier"]


@dataclass
class _Answer:
    text: str
    cost: float | None
    latency: float
    tokens: int | None


class Runner:
    """Measures items on a student and a frontier (see the module docstring)."""

    def __init__(
        self,
        student: Contender,
        frontier: Contender,
        *,
        cache: CallCache | None = None,
        options: RunOptions | None = None,
        monitor: SequentialMonitor | None = None,
    ):
        self.student, self.frontier = student, frontier
        self.cache = cache
        self.options = options or RunOptions()
        self.monitor = monitor

    async def run(self, items: Sequence[Item]) -> RunResult:
        """Ask, grade and return the outcome of every item (see the module docstring)."""
        calls: Counter[str] = Counter()
        errors: list[str] = []
        slots = asyncio.Semaphore(self.options.concurrency)
        with _Progress(len(items), self.options.quiet) as advance:

            async def one(item: Item) -> ItemOutcome | None:
                try:
                    return await self._item(item, slots, calls, errors)
                finally:
                    advance()

            results = await asyncio.gather(*(one(item) for item in items))
        return RunResult([r for r in results if r is not None], calls, errors)

    async def _item(
        self, item: Item, slots: asyncio.Semaphore, calls: Counter[str], errors: list[str]
    ) -> ItemOutcome | None:
        async with slots:
            if self.monitor is not None and self.monitor.is_settled(item.category):
                calls["saved"] += 2
                return None
            try:
                s, f = await asyncio.gather(
                    self._ask(self.student, "student", item, calls),
                    self._ask(self.frontier, "frontier", item, calls),
                )
            except (BackendError, RequestError) as exc:  # this item only; the run goes on
                errors.append(f"{item.id}: {exc.message}")
                return None
        outcome = self._grade(item, s, f)
        if self.monitor is not None:
            self.monitor.observe(item.category, outcome.student, outcome.frontier)
        return outcome

    def _grade(self, item: Item, s: _Answer, f: _Answer) -> ItemOutcome:
        grader = make_grader(item.grader, item.grader_args)
        frontier_score = 1.0 if grader.needs_frontier else grader.grade(f.text, item)
        return ItemOutcome(
            id=item.id,
            category=item.category,
            prompt=item.prompt_text,
            student=grader.grade(s.text, item, frontier_answer=f.text),
            frontier=frontier_score,
            student_cost=s.cost,
            frontier_cost=f.cost,
            student_latency=s.latency,
            frontier_latency=f.latency,
            student_tokens=s.tokens,
            frontier_tokens=f.tokens,
        )

    async def _ask(self, side: Contender, role: str, item: Item, calls: Counter[str]) -> _Answer:
        request = ChatRequest(
            model=side.name,
            messages=item.chat_messages(),
            temperature=self.options.temperature,
            max_tokens=self.options.max_tokens,
        )
        key = request_key(side.identity, request.upstream_body(side.config.model))
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            calls["cached"] += 1
        else:
            hit = await self._call(side, request)
            calls[role] += 1
            if self.cache is not None:
                self.cache.put(key, hit)
        return _answer(side, hit)

    async def _call(self, side: Contender, request: ChatRequest) -> CachedCall:
        start = time.perf_counter()
        try:
            completion = await asyncio.wait_for(side.backend.complete(request), self.options.timeout)
        except TimeoutError as exc:
            raise BackendTimeout(f"no answer within {self.options.timeout:g}s", backend=side.name) from exc
        latency = time.perf_counter() - start
        text = (completion.choices[0].message.content or "") if completion.choices else ""
        usage = completion.usage
        return CachedCall(
            answer=text,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            latency=latency,
        )


def _answer(side: Contender, call: CachedCall) -> _Answer:
    prompt, completion = call.prompt_tokens, call.completion_tokens
    cost: float | None = None
    tokens: int | None = None
    if prompt is not None and completion is not None:
        cost, tokens = side.config.price.cost(prompt, completion), prompt + completion
    return _Answer(text=call.answer, cost=cost, latency=call.latency, tokens=tokens)


class _Progress:
    """A rich progress bar, or nothing when quiet or stderr is not a terminal."""

    def __init__(self, total: int, quiet: bool):
        from rich.console import Console
        from rich.progress import Progress

        console = Console(stderr=True)
        self._bar = Progress(console=console, disable=quiet or not console.is_terminal, transient=True)
        self._task = self._bar.add_task("profiling", total=total)

    def __enter__(self):
        self._bar.start()
        return lambda: self._bar.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()
