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

Progress: the run keeps a :class:`Tally` (items done of total, calls made, cache hits),
readable while it runs and after an interrupt (``bitrate profile build`` says from it
where the cache stands). It is shown as a progress bar with counts when stderr is a
terminal, and otherwise (CI, a log file) as a plain line every ``RunOptions.log_every``
seconds and one at the end; ``quiet`` shows neither.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from profiles.assemble import ItemOutcome
from profiles.cache import CachedCall, CallCache, model_identity, request_key
from profiles.graders import make_grader
from profiles.suites import Item
from profiles.summary import SequentialMonitor
from sdk.backends import Backend, ModelConfig
from sdk.cascade import confidence_of
from sdk.errors import BackendError, BackendTimeout, RequestError
from sdk.profile import ModelIdentity
from sdk.protocol import ChatRequest

__all__ = ["Contender", "RunOptions", "RunResult", "Runner", "Tally"]


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
    """Show no progress (neither the bar nor the plain lines)."""
    log_every: float = 10.0
    """Seconds between plain progress lines when stderr is not a terminal."""
    student_logprobs: bool = True
    """Ask the student for its answers' token log-probabilities and record its confidence per
    item (what a route's ``cascade`` is calibrated on); off for a student API that refuses them."""


@dataclass
class Tally:
    """How far a run has got: kept up to date while it runs, still there after an interrupt."""

    total: int = 0
    """Items in the run."""
    done: int = 0
    """Items finished: measured, dropped on an error, or skipped by sequential stopping."""
    calls: Counter[str] = field(default_factory=Counter)
    """As :attr:`RunResult.calls`: ``student``, ``frontier``, ``cached``, ``saved``."""

    @property
    def model_calls(self) -> int:
        """Model calls made so far (each answer is in the cache once it came back)."""
        return self.calls["student"] + self.calls["frontier"]

    def line(self, elapsed: float) -> str:
        """``profiling: 120/360 items (33%), 230 model calls, 10 cached, 12s``."""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        return (
            f"profiling: {self.done}/{self.total} items{share}, {self.model_calls} model calls, "
            f"{self.calls['cached']} cached, {elapsed:.0f}s"
        )


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
    mean_logprob: float | None = None
    min_logprob: float | None = None


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
        tally: Tally | None = None,
    ):
        self.student, self.frontier = student, frontier
        self.cache = cache
        self.options = options or RunOptions()
        self.monitor = monitor
        self.tally = tally or Tally()
        """Where the run stands; give one to read it after an interrupt."""

    async def run(self, items: Sequence[Item]) -> RunResult:
        """Ask, grade and return the outcome of every item (see the module docstring)."""
        calls: Counter[str] = Counter()  # this run's: the result keeps it
        self.tally.total, self.tally.done, self.tally.calls = len(items), 0, calls
        errors: list[str] = []
        slots = asyncio.Semaphore(self.options.concurrency)
        with _Progress(self.tally, self.options) as advance:

            async def one(item: Item) -> ItemOutcome | None:
                outcome = await self._item(item, slots, calls, errors)
                advance()  # not for an item cancelled by an interrupt: it is not done
                return outcome

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
            student_mean_logprob=s.mean_logprob,
            student_min_logprob=s.min_logprob,
        )

    async def _ask(self, side: Contender, role: str, item: Item, calls: Counter[str]) -> _Answer:
        request = ChatRequest(
            model=side.name,
            messages=item.chat_messages(),
            temperature=self.options.temperature,
            max_tokens=self.options.max_tokens,
            logprobs=True if role == "student" and self.options.student_logprobs else None,
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
        confidence = confidence_of(completion) if request.logprobs else None
        return CachedCall(
            answer=text,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            latency=latency,
            mean_logprob=confidence.mean_logprob if confidence else None,
            min_logprob=confidence.min_logprob if confidence else None,
        )


def _answer(side: Contender, call: CachedCall) -> _Answer:
    prompt, completion = call.prompt_tokens, call.completion_tokens
    cost: float | None = None
    tokens: int | None = None
    if prompt is not None and completion is not None:
        cost, tokens = side.config.price.cost(prompt, completion), prompt + completion
    return _Answer(call.answer, cost, call.latency, tokens, call.mean_logprob, call.min_logprob)


class _Progress:
    """The tally shown: a rich bar with counts on a terminal, plain lines on stderr otherwise
    (every ``log_every`` seconds, checked as items finish, and one at the end), nothing when quiet."""

    def __init__(
        self,
        tally: Tally,
        options: RunOptions,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        from rich.console import Console

        self.tally, self.every, self.clock = tally, options.log_every, clock
        self.stream = stream or sys.stderr
        console = Console(file=self.stream)
        self.mode = "off" if options.quiet else "bar" if console.is_terminal else "lines"
        self.start = self.last = clock()
        self._bar: Any = None
        if self.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("profiling"), BarColumn(), MofNCompleteColumn(), TextColumn("items"))
            self._bar = Progress(*columns, TextColumn("{task.fields[calls]}"), TimeElapsedColumn(),
                                 console=console, transient=True)  # fmt: skip
            self._task = self._bar.add_task("profiling", total=tally.total, calls="")

    def __enter__(self) -> Callable[[], None]:
        if self._bar is not None:
            self._bar.start()
        elif self.mode == "lines":
            self._print(f"profiling: {self.tally.total} items, each asked of the student and the frontier")
        return self.advance

    def advance(self) -> None:
        self.tally.done += 1
        if self._bar is not None:
            calls = f"{self.tally.model_calls} calls, {self.tally.calls['cached']} cached"
            self._bar.update(self._task, completed=self.tally.done, calls=calls)
        elif self.mode == "lines" and self.clock() - self.last >= self.every:
            self.last = self.clock()
            self._print(self.tally.line(self.last - self.start))

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.mode == "lines" and exc[0] is None:
            self._print(self.tally.line(self.clock() - self.start))

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
