"""The runner against real backends: the openai HTTP backend talking to a local server.

The server answers by model: ``big`` solves every task, ``small`` fails ``reverse``
(it echoes the input). Call counts are read on the server side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from profiles.cache import CallCache
from profiles.runner import Contender, Runner, RunOptions
from profiles.suites import Item
from profiles.summary import SequentialMonitor
from sdk.backends import OpenAIConfig, Price, make_backend
from tests.support.fault_server import Fault, Status, completion, fault_server


def solve(model: str, prompt: str) -> str:
    task, _, arg = prompt.partition(": ")
    if task == "add":
        return str(sum(int(x) for x in arg.split()))
    if task == "reverse":
        return arg[::-1] if model == "big" else arg
    return "Hello there." if model == "big" else "hello, THERE"


@dataclass
class Solver(Fault):
    """Answers the task in the last user message, as the requested model would."""

    async def respond(self, ex) -> bool:
        prompt = ex.request.json["messages"][-1]["content"]
        body = completion(ex.model, solve(ex.model, prompt))
        await ex.send(200, json.dumps(body).encode(), "application/json")
        return True


def items(n_add: int = 3, n_reverse: int = 3) -> list[Item]:
    adds = [
        Item(id=f"a{i}", category="add", prompt=f"add: {i} {i + 1}", reference=2 * i + 1, grader="numeric")
        for i in range(n_add)
    ]
    reverses = [
        Item(id=f"r{i}", category="reverse", prompt=f"reverse: ab{i}", reference=f"{i}ba")
        for i in range(n_reverse)
    ]
    return adds + reverses


@pytest.fixture
def server():
    with fault_server() as srv:
        srv.script(*[Solver()] * 400)
        yield srv


@pytest.fixture
async def sides(server):
    made = []
    for name, model, price in (
        ("student", "small", Price(input=1, output=2)),
        ("frontier", "big", Price(input=10)),
    ):
        config = OpenAIConfig(
            backend="openai", base_url=server.base_url, model=model, max_retries=0, price=price
        )
        made.append(Contender(name, config, make_backend(name, config)))
    yield made
    for side in made:
        await side.backend.close()


async def test_scores_tokens_latency_and_cost(sides, server, tmp_path):
    student, frontier = sides
    result = await Runner(student, frontier, options=RunOptions(quiet=True)).run(items())
    assert [o.id for o in result.outcomes] == ["a0", "a1", "a2", "r0", "r1", "r2"]
    scores = {o.category: set() for o in result.outcomes}
    for o in result.outcomes:
        scores[o.category].add((o.student, o.frontier))
    assert scores == {"add": {(1.0, 1.0)}, "reverse": {(0.0, 1.0)}}
    first = result.outcomes[0]  # answer "1": one word, prompt 5 tokens (the server's usage)
    assert first.student_tokens == 6 and first.frontier_tokens == 6
    assert first.student_cost == pytest.approx((5 * 1 + 1 * 2) / 1e6)
    assert first.frontier_cost == pytest.approx(5 * 10 / 1e6)
    assert first.student_latency > 0 and first.prompt == "add: 0 1"
    assert result.calls == {"student": 6, "frontier": 6} and len(server.chat_requests) == 12
    sent = server.chat_requests[0].json
    assert sent["temperature"] == 0 and sent["model"] in ("small", "big")


async def test_rerun_and_resume_make_no_call_for_cached_items(sides, server, tmp_path):
    student, frontier = sides
    with CallCache(tmp_path) as cache:
        runner = Runner(student, frontier, cache=cache, options=RunOptions(quiet=True, concurrency=2))
        half = await runner.run(items()[:3])
        assert half.model_calls == 6 and len(server.chat_requests) == 6
        full = await runner.run(items())  # a resumed run: only the other half is asked
        assert full.calls == {"student": 3, "frontier": 3, "cached": 6}
        again = await runner.run(items())
        assert again.model_calls == 0 and again.calls["cached"] == 12
        assert len(server.chat_requests) == 12 and len(cache) == 12
    assert [(o.student, o.frontier) for o in again.outcomes] == [
        (o.student, o.frontier) for o in full.outcomes
    ]
    with CallCache(tmp_path) as reopened:  # the cache is on disk
        assert (
            await Runner(student, frontier, cache=reopened, options=RunOptions(quiet=True)).run(items())
        ).model_calls == 0


async def test_other_parameters_or_models_miss_the_cache(sides, server, tmp_path):
    student, frontier = sides
    with CallCache(tmp_path) as cache:
        await Runner(student, frontier, cache=cache, options=RunOptions(quiet=True)).run(items(1, 0))
        hot = await Runner(
            student, frontier, cache=cache, options=RunOptions(quiet=True, temperature=0.7)
        ).run(items(1, 0))
        assert hot.model_calls == 2
        plain = RunOptions(quiet=True, student_logprobs=False)  # the student is asked for log-probabilities
        await Runner(student, frontier, cache=cache, options=plain).run(items(1, 0))
        swapped = await Runner(frontier, student, cache=cache, options=plain).run(items(1, 0))
        assert swapped.model_calls == 0  # same model + request, whichever side it plays


async def test_failed_item_is_dropped_reported_and_retried_next_run(sides, server, tmp_path):
    student, frontier = sides
    with fault_server() as failing:
        failing.script(Status(400, message="bad things"), *[Solver()] * 10)
        config = OpenAIConfig(backend="openai", base_url=failing.base_url, model="small", max_retries=0)
        flaky = Contender("student", config, make_backend("student", config))
        with CallCache(tmp_path) as cache:
            runner = Runner(flaky, frontier, cache=cache, options=RunOptions(quiet=True, concurrency=1))
            first = await runner.run(items(2, 0))
            assert [o.id for o in first.outcomes] == ["a1"]
            assert len(first.errors) == 1 and first.errors[0].startswith("a0: backend 'student'")
            second = await runner.run(items(2, 0))
            assert [o.id for o in second.outcomes] == ["a0", "a1"]
            assert second.calls == {"student": 1, "cached": 3}
        await flaky.backend.close()


async def test_agreement_items_score_student_against_frontier(sides):
    student, frontier = sides
    free = [Item(id="f", category="free", prompt="greet: me", grader="agreement")]
    result = await Runner(student, frontier, options=RunOptions(quiet=True)).run(free)
    assert (result.outcomes[0].student, result.outcomes[0].frontier) == (1.0, 1.0)


async def test_sequential_mode_stops_a_settled_category(sides, server):
    student, frontier = sides
    monitor = SequentialMonitor(max_loss=0.05, confidence=0.9, min_n=5, looks=[5, 10, 20])
    suite = items(0, 20)
    runner = Runner(student, frontier, options=RunOptions(quiet=True, concurrency=1), monitor=monitor)
    result = await runner.run(suite)
    assert monitor.verdict("reverse") == "unsafe" and monitor.settled_at("reverse") == 5
    assert len(result.outcomes) == 5
    assert result.calls == {"student": 5, "frontier": 5, "saved": 30}
    assert len(server.chat_requests) == 10


async def test_in_process_transformers_pair_with_cache(tiny_model_dir, tmp_path):
    """Two real TransformersBackends on the tiny test model (it answers ANSWER to anything)."""
    from sdk.backends import TransformersConfig
    from tests.support.tiny_model import ANSWER

    made = []
    for name in ("student", "frontier"):
        config = TransformersConfig(backend="transformers", model=str(tiny_model_dir), threads=1)
        made.append(Contender(name, config, make_backend(name, config)))
    suite = [
        Item(id="n", category="numbers", prompt="How many times?", reference=42, grader="numeric"),
        Item(id="w", category="words", prompt="Which animal?", reference="cat", grader="regex"),
    ]
    try:
        with CallCache(tmp_path) as cache:
            runner = Runner(*made, cache=cache, options=RunOptions(quiet=True, max_tokens=len(ANSWER) + 8))
            first = await runner.run(suite)
            second = await runner.run(suite)
    finally:
        for side in made:
            await side.backend.close()
    assert first.model_calls == 4 and not first.errors
    assert [(o.student, o.frontier) for o in first.outcomes] == [(1.0, 1.0), (0.0, 0.0)]
    assert first.outcomes[0].student_tokens > len(ANSWER)
    assert second.model_calls == 0 and second.calls["cached"] == 4
