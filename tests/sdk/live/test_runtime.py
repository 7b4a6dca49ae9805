"""The live runtime on a real store (SQLite and PostgreSQL): shadow pairs reach the store and the
monitors, a demotion is seen by decide's view, replicas sharing a store share it, a person's
reset reaches every replica, each verdict change is logged and posted, counters add up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from sdk.decision import Decision
from sdk.errors import BackendUnavailable
from sdk.live.records import Observation
from sdk.live.runtime import LiveRuntime, counter_name, monitor_settings, reset_record
from sdk.live.store import open_store
from sdk.policy import Policy
from sdk.protocol import ChatCompletion, ChatRequest

REQUEST = ChatRequest.model_validate({"model": "auto", "messages": [{"role": "user", "content": "2+2?"}]})
SERVED = Decision(route="auto", target="student", side="student", task="math")
UNDETECTED = Decision(route="auto", target="frontier", side="frontier", task="unknown")


def completion(text: str) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "model": "m",
            "choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
    )


def live_policy(store: str, **live: Any) -> Policy:
    model = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    return Policy.model_validate(
        {
            "version": 1,
            "models": {
                "student": {**model, "price": {"input": 1.0, "output": 1.0}},
                "frontier": {**model, "price": {"input": 10.0, "output": 10.0}},
            },
            "routes": {
                "auto": {
                    "student": "student",
                    "frontier": "frontier",
                    "tolerance": {"max_loss": 0.05, "confidence": 0.9},
                    "shadow": {"spot_check": 1.0, "max_spend_per_hour": None},
                }
            },
            "live": {"store": store, "refresh_seconds": 60, **live},
        }
    )


class Frontier:
    """The frontier's answers to spot checks: ``text``."""

    def __init__(self, text: str = "4"):
        self.text = text

    async def __call__(self, target: str, request: ChatRequest) -> ChatCompletion:
        return completion(self.text)


async def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def replicas(store_location: str) -> AsyncIterator[Callable[..., Any]]:
    """``await replica(frontier, **live)``: a started runtime on this test's store (closed at the end)."""
    async with AsyncExitStack() as stack:

        async def replica(frontier: Frontier | None = None, **live: Any) -> LiveRuntime:
            runtime = LiveRuntime(
                live_policy(store_location, **live), frontier or Frontier(), known={"auto": {"math"}}, tick=60
            )
            await runtime.start()
            stack.push_async_callback(runtime.aclose)
            return runtime

        yield replica


async def serve(runtime: LiveRuntime, answers: list[str]) -> None:
    """The student served ``answers`` to math requests; wait until every spot check is graded."""
    shadow = runtime.shadows["auto"]
    before = sum(shadow.counters.calls.values())
    for text in answers:
        runtime.answered(REQUEST, SERVED, completion(text))
    await until(lambda: sum(shadow.counters.calls.values()) == before + len(answers))


async def test_spot_checks_reach_the_store_and_a_bad_student_is_demoted(replicas, store_location: str):
    runtime = await replicas()
    await serve(runtime, ["4"] * 20)
    await runtime.sync()
    assert runtime.demotion("auto", "math") is None
    await serve(runtime, ["5"] * 40)  # the student now disagrees with the frontier every time
    await runtime.sync()
    demotion = runtime.demotion("auto", "math")
    assert demotion is not None and runtime.demoted("auto", "math") == demotion.since
    assert demotion.grader == "agreement:normalised" and demotion.low > 0.05 and demotion.n <= 60
    with open_store(store_location, create=False) as store:
        rows = list(store.export())
        record = store.state("auto", "math")
    assert len(rows) == 60 and {r.direction for r in rows} == {"spot_check"}
    assert [r.student for r in rows] == [1.0] * 20 + [0.0] * 40
    assert record is not None and record.verdict == "unsafe" and record.demoted_since == demotion.since


async def test_a_replica_applies_a_demotion_reached_by_another(replicas):
    first, second = await replicas(), await replicas()
    await serve(first, ["5"] * 40)
    await first.sync()
    assert first.demotion("auto", "math") is not None and second.demotion("auto", "math") is None
    await second.sync()  # its refresh: the other replica's rows and record
    assert second.demotion("auto", "math") is not None
    third = await replicas()  # a replica started later starts demoted
    assert third.demotion("auto", "math") is not None


async def test_a_reset_written_to_the_store_reaches_every_replica(replicas, store_location: str):
    first, second = await replicas(), await replicas()
    await serve(first, ["5"] * 40)
    await first.sync()
    await second.sync()
    with open_store(store_location) as store:
        settings = monitor_settings(live_policy(store_location))["auto"]
        store.put_state(
            reset_record("auto", "math", settings, through=store.last_id(), by="ops"), expected=None
        )
    await first.sync()
    await second.sync()
    assert first.demotion("auto", "math") is None and second.demotion("auto", "math") is None
    await serve(first, ["4"] * 5)  # evidence after the reset counts afresh
    await first.sync()
    snapshot = first.ledger.snapshots()[("auto", "math")]
    assert snapshot.n == 5 and snapshot.verdict != "unsafe"


async def test_each_verdict_change_is_logged_and_posted(store_location: str, caplog):
    posted: list[tuple[str, dict[str, Any]]] = []

    async def post(url: str, body: dict[str, Any]) -> None:
        posted.append((url, body))

    runtime = LiveRuntime(
        live_policy(store_location, webhook="https://hooks.example.com/live"),
        Frontier(),
        known={"auto": {"math"}},
        post=post,
        tick=60,
    )
    await runtime.start()
    try:
        with caplog.at_level(logging.INFO, logger="bitrate.live"):
            await serve(runtime, ["5"] * 40)
            await runtime.sync()
            await until(lambda: any(body["to"] == "unsafe" for _url, body in posted))
    finally:
        await runtime.aclose()
    url, body = next((u, b) for u, b in posted if b["to"] == "unsafe")
    assert url == "https://hooks.example.com/live"
    assert body["route"] == "auto" and body["category"] == "math" and body["grader"] == "agreement:normalised"
    assert body["loss_low"] > 0.05 and body["demoted_since"] is not None
    lines = [r.getMessage() for r in caplog.records if "-> unsafe" in r.getMessage()]
    assert len(lines) == 1 and "live verdict of 'math' on route 'auto'" in lines[0]
    assert runtime.demotions_seen == {("auto", "math"): 1}


async def test_counters_add_up_across_replicas(replicas, store_location: str):
    first, second = await replicas(), await replicas()
    for runtime in (first, second):
        await serve(runtime, ["4"] * 3)
        runtime.answered(REQUEST, UNDETECTED, completion("?"))
        await runtime.sync()
    await first.sync()  # counters are added as deltas: a second sync adds nothing
    with open_store(store_location) as store:
        counts = store.counts()
    assert counts[counter_name("requests", "auto")] == 8
    assert counts[counter_name("undetected", "auto")] == 2
    assert counts[counter_name("graded", "auto", "math", "agreement:normalised")] == 6
    assert counts[counter_name("spend_micro", "auto", "math")] == 6 * 200  # 20 tokens at $10 per 1M
    assert first.traffic["auto"].novel_share == pytest.approx(0.25)


async def test_pending_observations_survive_a_store_failure(replicas):
    runtime = await replicas()
    store = runtime._store
    assert store is not None
    original = store.add
    failures = []

    def failing(batch: list[Observation]) -> list[int]:
        failures.append(len(batch))
        raise BackendUnavailable("down", backend="live-store")

    store.add = failing  # type: ignore[method-assign]
    await serve(runtime, ["5"] * 10)
    with pytest.raises(BackendUnavailable, match="down"):
        await runtime.sync()
    store.add = original  # type: ignore[method-assign]
    await runtime.sync()
    assert failures == [10] and runtime.ledger.snapshots()[("auto", "math")].n == 10
    assert runtime.ledger.cursor == 10
