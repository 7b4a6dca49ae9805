"""Live safety end to end: real gateways on 127.0.0.1, real fault-injecting upstreams, the official
``openai`` client as the caller, a real store (SQLite; PostgreSQL for two replicas).

Route ``auto`` sends category ``easy`` (safe in the profile) to the student and spot-checks every
student answer against the frontier (the live work on the gateway's event loop, and in its child
process: ``live.isolate``) (``shadow.spot_check: 1.0``, agreement grader). The student
answers like the frontier at first, then starts answering badly; the frontier's spot-check answers
are slowed down. The category must be demoted (later requests go to the frontier, rule ``live``,
``x-bitrate-reason`` says so), no caller request may fail, and no caller may wait for a spot check:
the student-served calls stay far faster than the frontier's answers (compared within the run).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from profiles.summary import summarize
from sdk.policy import Policy
from sdk.profile import ModelIdentity, Profile, SuiteInfo, Tolerance
from tests.support.fault_server import Exchange, Fault, FaultServer, Ok, fault_server
from tests.support.gateway_server import RunningServer, running_gateway
from tests.support.postgres import fresh_schema_url

GOOD = "The answer is 42."
BAD = "I am not sure, maybe 41."
SLOW = 0.4
"""Seconds the frontier takes to answer (spot checks included): far above a student-served call."""
PROMPT = "easy: what is six times seven?"


@dataclass
class Slow(Fault):
    """Wait ``seconds``, then answer ``text`` (JSON or SSE, as the request asks)."""

    seconds: float
    text: str

    async def respond(self, ex: Exchange) -> bool:
        await asyncio.sleep(self.seconds)
        return await Ok(self.text).respond(ex)


def _profile(path: Path) -> Path:
    tol = {"max_loss": 0.05, "confidence": 0.9}
    profile = Profile(
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        method="import",
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["live"], sha256="0" * 64, n_items=200),
        tolerance=Tolerance(**tol),
        categories={"easy": summarize([1] * 200, [1] * 200, **tol)},
    )
    assert profile.categories["easy"].verdict == "safe"
    return profile.save(path)


def live_policy(student: str, frontier: str, profile: Path, store: str, **live: Any) -> Policy:
    def model(url: str, name: str, price: float) -> dict[str, Any]:
        return {
            "backend": "openai",
            "base_url": url,
            "model": name,
            "max_retries": 0,
            "timeout": 10,
            "price": {"input": price, "output": price},
        }

    return Policy.model_validate(
        {
            "version": 1,
            "models": {"student": model(student, "small", 0.1), "frontier": model(frontier, "big", 10.0)},
            "routes": {
                "auto": {
                    "student": "student",
                    "frontier": "frontier",
                    "profile": str(profile),
                    "profile_models_must_match": False,
                    "tolerance": {"max_loss": 0.05, "confidence": 0.9},
                    "tasks": {"detect": ["rules"], "rules": [{"match": "^easy:", "task": "easy"}]},
                    "shadow": {
                        "spot_check": 1.0,
                        "max_concurrency": 16,
                        "queue_size": 4096,
                        "max_spend_per_hour": None,
                        "grader": {"kind": "agreement", "mode": "normalised"},
                    },
                }
            },
            "live": {"store": store, "refresh_seconds": 0.3, **live},
        }
    )


@dataclass
class Call:
    """One caller request as the caller saw it."""

    seconds: float
    target: str
    rule: str
    reason: str
    text: str


def call(client: openai.OpenAI) -> Call:
    started = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": PROMPT}]
    )
    completion = raw.parse()
    meta = (completion.model_extra or {})["bitrate"]
    reason = raw.headers["x-bitrate-reason"]
    assert reason == meta["reason"]
    seconds = time.perf_counter() - started
    return Call(seconds, meta["target"], meta["rule"], reason, completion.choices[0].message.content or "")


def call_stream(client: openai.OpenAI) -> Call:
    started = time.perf_counter()
    chunks = list(
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
    )
    seconds = time.perf_counter() - started
    meta = next(c.model_extra["bitrate"] for c in chunks if (c.model_extra or {}).get("bitrate"))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return Call(seconds, meta["target"], meta["rule"], meta["reason"], text)


@dataclass
class Bench:
    student: FaultServer
    frontier: FaultServer
    profile: Path


@contextmanager
def bench(tmp_path: Path, good: int) -> Iterator[Bench]:
    """Two upstreams: a student that answers well ``good`` times, then badly; a slow frontier."""
    with fault_server("small") as student, fault_server("big") as frontier:
        student.script(*[Ok(GOOD)] * good, *[Ok(BAD)] * 4000)
        frontier.script(*[Slow(SLOW, GOOD)] * 4000)
        yield Bench(student, frontier, _profile(tmp_path / "profile.json"))


def until_demoted(client: openai.OpenAI, limit: int = 400, pace: float = 0.01) -> list[Call]:
    """Caller requests, every third one streamed, until one is answered by the frontier."""
    calls: list[Call] = []
    for i in range(limit):
        calls.append(call_stream(client) if i % 3 == 2 else call(client))
        if calls[-1].target == "frontier":
            return calls
        time.sleep(pace)
    raise AssertionError(f"not demoted after {limit} requests: {calls[-1]}")


def metrics(server: RunningServer) -> str:
    return httpx.get(f"{server.url}/metrics", timeout=10).text


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_a_student_that_turns_bad_is_demoted_without_any_caller_waiting(tmp_path: Path, make_client, isolate):
    with bench(tmp_path, good=12) as b:
        store = str(tmp_path / "live.sqlite")
        policy = live_policy(b.student.base_url, b.frontier.base_url, b.profile, store, isolate=isolate)
        with running_gateway(policy) as server:
            client = make_client(server)
            calls = until_demoted(client)
            after = [call(client) for _ in range(3)] + [call_stream(client)]
            scrape = metrics(server)
    served = [c for c in calls if c.target == "student"]
    assert {c.rule for c in served} == {"verdict"} and len(served) >= 12
    assert [c.text for c in served[:12]] == [GOOD] * 12 and served[-1].text == BAD
    # every later request goes to the frontier, and says why
    for c in [calls[-1], *after]:
        assert (c.target, c.rule, c.text) == ("frontier", "live", GOOD)
        assert c.reason.startswith("frontier: live monitor demoted 'easy' (loss ")
        assert "agreement:normalised" in c.reason and "90% [" in c.reason
    # no caller waited for a spot check: a student-served call is far faster than a frontier answer
    assert statistics.median(c.seconds for c in served) < 0.5 * statistics.median(c.seconds for c in after)
    assert max(c.seconds for c in served) < min(c.seconds for c in after)
    # the spot checks went to the frontier directly, as plain JSON calls, one per student answer
    spot_checks = [r for r in b.frontier.chat_requests if r.json and r.json.get("stream") is False]
    assert len(spot_checks) >= len(served) - 16  # (the last ones may still have been queued)
    assert 'bitrate_live_verdict{category="easy",route="auto",verdict="unsafe"} 1.0' in scrape
    assert 'bitrate_live_demotions_total{category="easy",route="auto"} 1.0' in scrape
    assert 'bitrate_shadow_calls_total{direction="spot_check",outcome="ok",route="auto"}' in scrape
    # shadow calls are not caller requests: the request series counts only the callers' answers
    frontier_answers = (
        f'bitrate_requests_total{{route="auto",status="200",target="frontier",task="easy"}} {4 + 1}.0'
    )
    assert frontier_answers in scrape


def test_two_replicas_on_one_postgres_store_apply_the_same_demotion(
    tmp_path: Path, make_client, postgres_url
):
    pytest.importorskip("psycopg")
    store = fresh_schema_url(postgres_url, "live_e2e_replicas")
    with ExitStack() as stack:
        b = stack.enter_context(bench(tmp_path, good=6))
        policy = live_policy(b.student.base_url, b.frontier.base_url, b.profile, store)
        first = stack.enter_context(running_gateway(policy))
        second = stack.enter_context(running_gateway(policy))
        one, two = make_client(first), make_client(second)
        assert call(two).target == "student"  # the second replica starts routing to the student
        until_demoted(one)  # all the evidence goes through the first replica
        demoted_at = time.monotonic()
        refresh = policy.live.refresh_seconds if policy.live else 0.0
        while True:  # the second replica applies it within a few of its refreshes
            seen = call(two)
            if seen.target == "frontier":
                break
            assert time.monotonic() - demoted_at < 20 * refresh, (
                "the second replica never applied the demotion"
            )
            time.sleep(refresh / 4)
        assert seen.rule == "live" and "live monitor demoted 'easy'" in seen.reason
        assert 'bitrate_live_verdict{category="easy",route="auto",verdict="unsafe"} 1.0' in metrics(second)
