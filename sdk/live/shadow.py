"""Shadow traffic for one route: a share of answered requests also answered by the other side in
the background, graded, and handed on as :class:`~sdk.live.records.Observation`.

- ``shadow.rate`` of frontier-served requests are answered by the student too (``shadow``);
  ``shadow.spot_check`` of student-served ones by the frontier (``spot_check``). Only
  categories the route knows (and ``shadow.categories``, when set) are sampled; a request whose
  task was not detected never is.
- The caller never waits: the engine calls :meth:`RouteShadow.offer` after the answer is
  complete (for a stream, once it finished, with the assembled answer), and ``offer`` only puts
  a job on a bounded queue. A full queue drops the job and counts it; so does the frontier spend
  cap (``max_spend_per_hour``, a sliding hour of what frontier and judge calls cost at the
  models' prices), checked before a job is queued.
- ``max_concurrency`` workers take jobs from the queue and call the other side's backend
  directly: no routing, no circuit breaker, no fallback, and none of the gateway's request
  metrics (only the shadow series, :class:`ShadowCounters`). A failed shadow call or grade is
  counted and dropped; it never reaches a caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace

from sdk.backends.config import Price
from sdk.checks import AnswerChoice, answer_of
from sdk.decision import Decision
from sdk.errors import BitrateError
from sdk.live.capture import Redactor
from sdk.live.graders import LiveGrader, LivePair, Ungradable, build_grader
from sdk.live.records import Direction, Observation, prompt_hash
from sdk.live.shadow_config import ShadowConfig
from sdk.policy import RouteConfig
from sdk.protocol import ChatCompletion, ChatRequest, Usage

__all__ = [
    "BackendCall",
    "RouteShadow",
    "Sampler",
    "ShadowCounters",
    "ShadowJob",
    "SpendWindow",
    "answer_text",
]

log = logging.getLogger("bitrate.live")

BackendCall = Callable[[str, ChatRequest], Awaitable[ChatCompletion]]
"""Calls a policy model's backend directly: ``await call(model_name, request)``."""
_HOUR = 3600.0


def answer_text(choices: Collection[AnswerChoice]) -> str:
    """The text graded for an answer: its first choice's content (tool-call arguments when it
    has no text); empty for an answer without choices."""
    for choice in choices:
        return choice.text
    return ""


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One answered request to be answered by the other side and graded."""

    category: str
    """The request's task category."""
    direction: Direction
    """``shadow`` (the frontier served; the student answers now) or ``spot_check`` (the reverse)."""
    request: ChatRequest
    """The caller's request."""
    served: str
    """The text of the answer the caller got."""
    at: float = field(default_factory=time.time)
    """When the caller's answer was complete (Unix seconds)."""


class SpendWindow:
    """Dollars spent over the last hour (sliding), against a cap (None: no cap)."""

    def __init__(self, per_hour: float | None, clock: Callable[[], float] = time.monotonic):
        self.per_hour = per_hour
        self._clock = clock
        self._spent: deque[tuple[float, float]] = deque()
        self._total = 0.0

    def _expire(self) -> None:
        cutoff = self._clock() - _HOUR
        while self._spent and self._spent[0][0] <= cutoff:
            self._total -= self._spent.popleft()[1]

    def allows(self) -> bool:
        """True while the last hour's spend is under the cap."""
        if self.per_hour is None:
            return True
        self._expire()
        return self._total < self.per_hour

    def add(self, dollars: float) -> None:
        """Count a call's cost now."""
        if dollars > 0:
            self._spent.append((self._clock(), dollars))
            self._total += dollars

    @property
    def last_hour(self) -> float:
        """Dollars spent over the last hour."""
        self._expire()
        return max(0.0, self._total)


@dataclass
class ShadowCounters:
    """What one route's shadow traffic did (this replica, since start): the shadow series."""

    calls: dict[tuple[Direction, str], int] = field(default_factory=dict)
    """(direction, outcome) -> calls; outcome ``ok``, ``error`` (the call failed) or
    ``ungradable`` (the grader could not score the pair)."""
    drops: dict[str, int] = field(default_factory=dict)
    """reason -> jobs dropped before any call: ``queue_full``, ``spend_cap``."""
    spend: dict[str, float] = field(default_factory=dict)
    """model -> dollars its shadow and judge calls cost."""
    spend_by_category: dict[str, float] = field(default_factory=dict)
    """category -> dollars its shadow and judge calls cost."""
    peak_queue: int = 0
    """Most jobs ever waiting at once."""

    def count(self, key: tuple[Direction, str]) -> None:
        self.calls[key] = self.calls.get(key, 0) + 1

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1


class Sampler:
    """Which answered requests of a route are shadowed, and which way: one random draw against
    ``rate`` (frontier-served) or ``spot_check`` (student-served), for categories the route
    knows and ``shadow.categories`` includes; never a request whose task was not detected."""

    def __init__(self, config: ShadowConfig, known: Collection[str], rng: random.Random | None = None):
        self.config = config
        self._known = frozenset(known)
        self._rng = rng or random.Random()

    def __call__(self, decision: Decision) -> Direction | None:
        category = decision.task
        if category not in self._known or not self.config.includes(category):
            return None
        direction: Direction
        if decision.side == "student":
            share, direction = self.config.spot_check, "spot_check"
        elif decision.side == "frontier":
            share, direction = self.config.rate, "shadow"
        else:
            return None
        return direction if share > 0.0 and self._rng.random() < share else None


class RouteShadow:
    """One route's shadow traffic (see the module docstring)."""

    def __init__(
        self,
        name: str,
        route: RouteConfig,
        call: BackendCall,
        prices: Callable[[str], Price],
        *,
        known: Collection[str],
        sink: Callable[[Observation], None],
        capture: bool = False,
        redact: Redactor | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """``call`` reaches a model's backend; ``prices`` a model's price; ``known`` the
        categories the route knows (a caller's hint naming another is never sampled); ``sink``
        receives each graded pair; ``capture`` keeps messages and answers in it, rewritten by
        ``redact`` (the policy's ``live.redact``) first."""
        self.name, self.route, self.config = name, route, route.shadow
        self.counters = ShadowCounters()
        self._call, self._prices, self._sink, self._capture = call, prices, sink, capture
        self._redact = redact or Redactor()
        self.sampler = Sampler(self.config, known, rng)
        self._spend = SpendWindow(self.config.max_spend_per_hour, clock)
        self._judge_model = self.config.judge or route.frontier
        self._graders: dict[str, LiveGrader] = {}
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(self.config.queue_size)
        self._workers: list[asyncio.Task[None]] = []
        for category in ("", *self.config.graders):
            self._grader(category)  # a missing optional package fails the start, not a shadow call

    # ------------------------------------------------------------------ the caller's side

    def sample(self, decision: Decision) -> Direction | None:
        """Whether this answered request is shadowed, and which way (see :class:`Sampler`)."""
        return self.sampler(decision)

    def offer(self, job: ShadowJob) -> bool:
        """Queue ``job`` without waiting; False (and counted) when the spend cap or a full queue
        drops it."""
        if self._needs_frontier(job) and not self._spend.allows():
            self.counters.drop("spend_cap")
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.counters.drop("queue_full")
            return False
        self.counters.peak_queue = max(self.counters.peak_queue, self._queue.qsize())
        return True

    @property
    def queued(self) -> int:
        """Jobs waiting now."""
        return self._queue.qsize()

    @property
    def spent_last_hour(self) -> float:
        """Dollars of frontier and judge calls over the last hour (what the cap is held to)."""
        return self._spend.last_hour

    # ------------------------------------------------------------------ workers

    def start(self) -> None:
        """Start ``max_concurrency`` workers on the running loop."""
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"shadow-{self.name}-{i}")
                for i in range(self.config.max_concurrency)
            ]

    async def aclose(self) -> None:
        """Stop the workers; queued jobs are dropped, calls in flight cancelled."""
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self.run(job)
            except Exception:  # the worker's boundary: a bug is logged; the worker goes on
                log.exception("shadow job on route '%s' failed (a bug in bitrate)", self.name)

    async def run(self, job: ShadowJob) -> Observation | None:
        """Answer ``job`` on the other side, grade the pair and hand it to the sink; None (and
        counted) when the call or the grade failed."""
        spot = job.direction == "spot_check"
        target = self.route.frontier if spot else self.route.student
        request = job.request.model_copy(update={"stream": False, "stream_options": None, "n": 1})
        try:
            answer = await self._call(target, request)
        except BitrateError as exc:
            self.counters.count((job.direction, "error"))
            log.debug("shadow call to '%s' failed: %s", target, exc)
            return None
        self._charge(target, job.category, answer.usage)
        other = answer_text(answer_of(answer))
        student, frontier = (job.served, other) if spot else (other, job.served)
        grader = self._grader(job.category)
        try:
            s, f = await grader.grade(LivePair(job.request, student, frontier))
        except (Ungradable, BitrateError) as exc:
            self.counters.count((job.direction, "ungradable"))
            log.debug("shadow pair on route '%s' not graded: %s", self.name, exc)
            return None
        self.counters.count((job.direction, "ok"))
        observation = self._observation(job, grader.name, s, f, student, frontier)
        self._sink(observation)
        return observation

    # ------------------------------------------------------------------ internals

    def _needs_frontier(self, job: ShadowJob) -> bool:
        return job.direction == "spot_check" or self.config.grader_for(job.category).kind == "judge"

    def _grader(self, category: str) -> LiveGrader:
        found = self._graders.get(category)
        if found is None:
            config = self.config.grader_for(category)

            async def judge(request: ChatRequest) -> str:
                answer = await self._call(self._judge_model, request)
                self._charge(self._judge_model, category, answer.usage)
                return answer_text(answer_of(answer))

            found = build_grader(config, judge_model=self._judge_model, judge=judge)
            self._graders[category] = found
        return found

    def _charge(self, model: str, category: str, usage: Usage | None) -> None:
        if usage is None:
            return
        dollars = self._prices(model).cost(usage.prompt_tokens, usage.completion_tokens)
        counters = self.counters
        counters.spend[model] = counters.spend.get(model, 0.0) + dollars
        counters.spend_by_category[category] = counters.spend_by_category.get(category, 0.0) + dollars
        if model != self.route.student:
            self._spend.add(dollars)

    def _observation(
        self, job: ShadowJob, grader: str, s: float, f: float, student: str, frontier: str
    ) -> Observation:
        messages = [m.model_dump(mode="json", exclude_none=True) for m in job.request.messages]
        observation = Observation(
            route=self.name,
            category=job.category,
            student=s,
            frontier=f,
            grader=grader,
            direction=job.direction,
            prompt_hash=prompt_hash(messages),
            at=job.at,
        )
        if not self._capture:
            return observation
        redact = self._redact
        return replace(
            observation,
            messages=json.dumps(redact.tree(messages), ensure_ascii=False),
            student_answer=_message_json(redact(student)),
            frontier_answer=_message_json(redact(frontier)),
        )


def _message_json(text: str) -> str:
    return json.dumps({"role": "assistant", "content": text}, ensure_ascii=False)
