"""One route's shadow traffic (``sdk.live.shadow``): what is sampled, what a full queue and the
spend cap drop (never waiting), and what a worker records, on a scripted backend call."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from sdk.backends.config import Price
from sdk.decision import Decision
from sdk.errors import BackendTimeout
from sdk.live.capture import Redactor
from sdk.live.records import Observation
from sdk.live.shadow import RouteShadow, ShadowJob, SpendWindow
from sdk.policy import RouteConfig
from sdk.protocol import ChatCompletion, ChatRequest

REQUEST = ChatRequest.model_validate(
    {"model": "auto", "messages": [{"role": "user", "content": "2+2? me@x.org"}]}
)
PRICES = {"s": Price(input=1.0, output=1.0), "f": Price(input=100.0, output=100.0)}


def completion(text: str, tokens: int = 10) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "model": "m",
            "choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": tokens, "completion_tokens": tokens, "total_tokens": 2 * tokens},
        }
    )


class Upstream:
    """A scripted backend call: answers ``text`` (or raises ``error``), after ``gate`` opens."""

    def __init__(self, text: str = "4", error: Exception | None = None):
        self.text, self.error = text, error
        self.calls: list[tuple[str, ChatRequest]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, target: str, request: ChatRequest) -> ChatCompletion:
        self.calls.append((target, request))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return completion(self.text)


def shadow(upstream: Upstream, sink: list[Observation], *, rng: float = 0.0, **config: Any) -> RouteShadow:
    route = RouteConfig.model_validate(
        {"student": "s", "frontier": "f", "shadow": {"spot_check": 1.0, **config}}
    )
    stub = random.Random()
    stub.random = lambda: rng  # type: ignore[method-assign]
    return RouteShadow(
        "auto", route, upstream, PRICES.__getitem__, known={"math", "chat"}, sink=sink.append, rng=stub
    )


def decision(side: str, task: str = "math") -> Decision:
    return Decision(route="auto", target=side[0], side=side, task=task)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "side", "task", "draw", "expected"),
    [
        ({}, "student", "math", 0.5, "spot_check"),
        ({"spot_check": 0.4}, "student", "math", 0.5, None),
        ({"rate": 0.6}, "frontier", "math", 0.5, "shadow"),
        ({}, "frontier", "math", 0.0, None),  # rate 0: no shadow of frontier answers
        ({}, "student", "unknown", 0.0, None),  # not detected: never sampled
        ({}, "student", "made-up-hint", 0.0, None),  # a task the route does not know
        ({"categories": ["chat"]}, "student", "math", 0.0, None),
        ({"categories": ["chat"]}, "student", "chat", 0.0, "spot_check"),
        ({}, "direct", "math", 0.0, None),
    ],
)
def test_what_is_sampled(config, side, task, draw, expected):
    assert shadow(Upstream(), [], rng=draw, **config).sample(decision(side, task)) == expected


async def test_a_full_queue_drops_and_counts_and_never_waits():
    upstream, sink = Upstream(), []
    upstream.gate.clear()  # the other side hangs
    route = shadow(upstream, sink, max_concurrency=1, queue_size=2)
    route.start()
    try:
        offered = [route.offer(ShadowJob("math", "spot_check", REQUEST, "4")) for _ in range(10)]
        await asyncio.sleep(0.05)  # the worker takes one job and hangs on it
        offered += [route.offer(ShadowJob("math", "spot_check", REQUEST, "4")) for _ in range(10)]
        assert route.queued == 2 and route.counters.peak_queue == 2
        assert offered.count(True) == 3 and route.counters.drops == {"queue_full": 17}
        upstream.gate.set()
        for _ in range(100):
            if len(sink) == 3:
                break
            await asyncio.sleep(0.01)
        assert len(sink) == 3 and route.queued == 0
    finally:
        await route.aclose()


async def test_the_spend_cap_drops_frontier_calls_once_reached():
    upstream, sink = Upstream(), []
    now = [0.0]
    route = shadow(upstream, sink, max_spend_per_hour=0.003)
    route._spend = SpendWindow(0.003, clock=lambda: now[0])
    job = ShadowJob("math", "spot_check", REQUEST, "4")
    assert route.offer(job)
    await route.run(await route._queue.get())  # 20 tokens at $100 per 1M: $0.002
    assert route.offer(job)
    await route.run(await route._queue.get())
    assert not route.offer(job) and route.counters.drops == {"spend_cap": 1}
    assert route.counters.spend == {"f": pytest.approx(0.004)} and route.spent_last_hour == pytest.approx(
        0.004
    )
    now[0] = 3601.0  # an hour later the window is empty again
    assert route.offer(job)


async def test_a_shadow_of_the_frontier_costs_nothing_against_the_cap():
    route = shadow(Upstream(), [], rate=1.0, max_spend_per_hour=0.0)
    assert route.offer(ShadowJob("math", "shadow", REQUEST, "4"))  # the student answers: no cap
    assert not route.offer(ShadowJob("math", "spot_check", REQUEST, "4"))


@pytest.mark.parametrize(
    ("direction", "served", "other", "scores"),
    [
        ("spot_check", "5", "4", (0.0, 1.0)),  # the student served "5", the frontier says "4"
        ("spot_check", "4", "4", (1.0, 1.0)),
        ("shadow", "4", "5", (0.0, 1.0)),  # the frontier served "4", the student would say "5"
    ],
)
async def test_a_worker_calls_the_other_side_directly_and_grades(direction, served, other, scores):
    upstream, sink = Upstream(other), []
    route = shadow(upstream, sink, rate=1.0)
    observation = await route.run(
        ShadowJob("math", direction, REQUEST.model_copy(update={"stream": True}), served)
    )
    target, request = upstream.calls[0]
    assert target == ("f" if direction == "spot_check" else "s")
    assert request.stream is False and request.n == 1
    assert observation is not None and sink == [observation]
    assert (observation.student, observation.frontier) == scores
    assert (observation.grader, observation.direction, observation.route) == (
        "agreement:normalised",
        direction,
        "auto",
    )
    assert observation.messages is None and not observation.captured
    assert route.counters.calls == {(direction, "ok"): 1}


async def test_a_failed_shadow_call_is_counted_and_dropped():
    sink: list[Observation] = []
    route = shadow(Upstream(error=BackendTimeout("slow", backend="f")), sink)
    assert await route.run(ShadowJob("math", "spot_check", REQUEST, "4")) is None
    assert sink == [] and route.counters.calls == {("spot_check", "error"): 1}


async def test_capture_keeps_the_texts_redacted():
    sink: list[Observation] = []
    route = RouteShadow(
        "auto",
        RouteConfig.model_validate({"student": "s", "frontier": "f", "shadow": {"spot_check": 1.0}}),
        Upstream("4, me@x.org"),
        PRICES.__getitem__,
        known={"math"},
        sink=sink.append,
        capture=True,
        redact=Redactor([r"me@x\.org"]),
    )
    observation = await route.run(ShadowJob("math", "spot_check", REQUEST, "4"))
    assert observation is not None and observation.captured
    assert json.loads(observation.messages or "") == [{"role": "user", "content": "2+2? [REDACTED]"}]
    assert json.loads(observation.frontier_answer or "")["content"] == "4, [REDACTED]"
    assert "me@x.org" not in json.dumps([observation.messages, observation.student_answer])
