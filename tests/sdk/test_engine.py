"""The engine on real HTTP backends: two scriptable OpenAI-compatible servers play student and frontier."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from sdk.engine import Circuit, Engine
from sdk.errors import BackendError, UnknownModel, UpstreamStatusError
from sdk.policy import load_policy
from sdk.profile import CategoryStats, Counts, ModelIdentity, Profile, SuiteInfo, Tolerance
from sdk.protocol import ChatRequest
from tests.support.fault_server import Drop, Ok, Status, fault_server

STUDENT_TEXT = "student says hi"
FRONTIER_TEXT = "frontier says hi"


def category(both: int, breaks: int, fixes: int, neither: int, verdict: str) -> CategoryStats:
    n = both + breaks + fixes + neither
    loss = (breaks - fixes) / n
    return CategoryStats(
        n=n, student_accuracy=(both + fixes) / n, frontier_accuracy=(both + breaks) / n, loss=loss,
        loss_low=loss - 0.05, loss_high=loss + 0.05, confidence=0.9, interval="newcombe",
        breaks=breaks / n, fixes=fixes / n, verdict=verdict,
        counts=Counts(both=both, breaks=breaks, fixes=fixes, neither=neither),
    )  # fmt: skip


def write_profile(path: Path) -> Path:
    """reverse: safe; add: unsafe; sort: uncertain (at max_loss 0.05, 90%)."""
    profile = Profile(
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        method="import",
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["test"], sha256="0" * 64, n_items=400),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        categories={
            "reverse": category(200, 0, 0, 0, "safe"),
            "add": category(40, 60, 0, 0, "unsafe"),
            "sort": category(90, 5, 0, 5, "uncertain"),
        },
    )
    return profile.save(path)


def make_policy(tmp_path: Path, student_url: str, frontier_url: str, **route_changes) -> Path:
    write_profile(tmp_path / "profile.json")
    route = {
        "student": "student",
        "frontier": "frontier",
        "profile": "profile.json",
        "tolerance": {"max_loss": 0.05, "confidence": 0.9},
        "tasks": {
            "detect": ["hint", "rules"],
            "rules": [{"match": f"^{t}:", "task": t} for t in ("reverse", "add", "sort")],
        },
        "escalate": [{"check": "json_valid"}],
        **route_changes,
    }
    model = {"backend": "openai", "max_retries": 0, "transport": "httpx", "timeout": 10}
    policy = {
        "version": 1,
        "models": {
            "student": {**model, "base_url": student_url, "model": "stu"},
            "frontier": {**model, "base_url": frontier_url, "model": "fro"},
        },
        "routes": {"auto": route},
    }
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@pytest.fixture
def servers():
    with fault_server("stu") as student, fault_server("fro") as frontier:
        yield student, frontier


@pytest.fixture
async def make_engine(servers, tmp_path):
    student, frontier = servers
    engines: list[Engine] = []

    async def make(**route_changes) -> Engine:
        policy = load_policy(make_policy(tmp_path, student.base_url, frontier.base_url, **route_changes))
        engine = Engine(policy)
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.aclose()


def req(text: str, model: str = "auto", **params) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": text}], **params)


def script(servers, student=None, frontier=None):
    s, f = servers
    s.script(*(student or [Ok(STUDENT_TEXT)]))
    f.script(*(frontier or [Ok(FRONTIER_TEXT)]))


async def test_safe_task_goes_to_the_student_and_carries_the_decision(servers, make_engine):
    script(servers)
    engine = await make_engine()
    completion, decision = await engine.complete(req("reverse: abc"))
    assert completion.choices[0].message.content == STUDENT_TEXT
    assert (decision.side, decision.target, decision.task, decision.rule) == (
        "student",
        "student",
        "reverse",
        "verdict",
    )
    assert completion.model_extra["bitrate"] == decision.to_meta()
    assert decision == engine.explain(req("reverse: abc"))
    assert len(servers[0].chat_requests) == 1 and not servers[1].chat_requests
    assert json.loads(servers[0].chat_requests[0].body)["model"] == "stu"


async def test_unsafe_and_unknown_tasks_go_to_the_frontier(servers, make_engine):
    servers[1].script(Ok(FRONTIER_TEXT), Ok(FRONTIER_TEXT))
    engine = await make_engine()
    c1, d1 = await engine.complete(req("add: 1+2"))
    c2, d2 = await engine.complete(req("write me a poem"))
    assert c1.choices[0].message.content == c2.choices[0].message.content == FRONTIER_TEXT
    assert (d1.rule, d1.verdict, d2.rule, d2.task) == ("verdict", "unsafe", "unknown_task", "unknown")
    assert not servers[0].chat_requests


async def test_hint_beats_rules(servers, make_engine):
    script(servers)
    engine = await make_engine()
    _, decision = await engine.complete(req("add: 1+2"), task_hint="reverse")
    assert (decision.task, decision.task_source, decision.side) == ("reverse", "hint", "student")


async def test_direct_model_and_unknown_model(servers, make_engine):
    script(servers)
    engine = await make_engine()
    completion, decision = await engine.complete(req("add: 1+2", model="student"))
    assert (decision.side, decision.target, decision.rule) == ("direct", "student", "direct")
    assert completion.choices[0].message.content == STUDENT_TEXT
    with pytest.raises(UnknownModel, match="no route or model named 'gpt-9'"):
        await engine.complete(req("hi", model="gpt-9"))
    assert engine.model_names() == ["auto", "student", "frontier"]
    assert engine.price("student").input == 0.0


async def test_student_failure_falls_back_to_the_frontier(servers, make_engine):
    script(servers, student=[Status(503)])
    engine = await make_engine()
    completion, decision = await engine.complete(req("reverse: abc"))
    assert completion.choices[0].message.content == FRONTIER_TEXT
    assert (decision.side, decision.fallback_from) == ("frontier", "student")
    assert "failed" in decision.reason and completion.model_extra["bitrate"]["fallback_from"] == "student"


async def test_student_failure_without_fallback_raises(servers, make_engine):
    script(servers, student=[Drop()])
    engine = await make_engine(fallback={"student_error": "none"})
    with pytest.raises(BackendError) as info:
        await engine.complete(req("reverse: abc"))
    assert info.value.backend == "student"
    assert not servers[1].chat_requests


async def test_frontier_failure_falls_back_only_when_allowed_and_not_unsafe(servers, make_engine):
    script(servers, frontier=[Status(500), Status(500), Status(500)])
    default = await make_engine()
    with pytest.raises(UpstreamStatusError):
        await default.complete(req("sort: 3 1 2"))
    allowing = await make_engine(fallback={"frontier_error": "student"})
    completion, decision = await allowing.complete(req("sort: 3 1 2"))
    assert (decision.side, decision.fallback_from, decision.verdict) == ("student", "frontier", "uncertain")
    assert completion.choices[0].message.content == STUDENT_TEXT
    with pytest.raises(UpstreamStatusError):
        await allowing.complete(req("add: 1+2"))  # unsafe: never on the student
    assert len(servers[0].chat_requests) == 1


async def test_caller_fault_is_never_retried_on_the_other_side(servers, make_engine):
    script(servers, student=[Status(400, message="bad field")])
    engine = await make_engine()
    with pytest.raises(UpstreamStatusError) as info:
        await engine.complete(req("reverse: abc"))
    assert info.value.is_caller_fault
    assert not servers[1].chat_requests


async def test_failed_json_check_escalates_to_the_frontier(servers, make_engine):
    script(servers, student=[Ok("not json"), Ok('{"ok": true}')], frontier=[Ok('{"answer": 1}')])
    engine = await make_engine()
    fmt = {"response_format": {"type": "json_object"}}
    completion, decision = await engine.complete(req("reverse: abc", **fmt))
    assert completion.choices[0].message.content == '{"answer": 1}'
    assert (decision.escalated, decision.side, decision.target) == (True, "frontier", "frontier")
    assert "json_valid" in decision.reason
    passing, kept = await engine.complete(req("reverse: abc", **fmt))
    assert (passing.choices[0].message.content, kept.escalated, kept.side) == (
        '{"ok": true}',
        False,
        "student",
    )


async def test_stream_passes_through_and_tags_the_last_chunk(servers, make_engine):
    script(servers)
    engine = await make_engine()
    routed = await engine.stream(req("reverse: abc", stream=True))
    assert routed.decision.side == "student"
    chunks = [chunk async for chunk in routed]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == STUDENT_TEXT
    assert chunks[-1].model_extra["bitrate"] == routed.decision.to_meta()
    assert all("bitrate" not in (c.model_extra or {}) for c in chunks[:-1])
    assert routed.state == "done"


async def test_stream_falls_back_before_the_first_chunk(servers, make_engine):
    script(servers, student=[Status(503)])
    engine = await make_engine()
    routed = await engine.stream(req("reverse: abc", stream=True))
    assert (routed.decision.side, routed.decision.fallback_from) == ("frontier", "student")
    text = "".join([c.choices[0].delta.content or "" async for c in routed if c.choices])
    assert text == FRONTIER_TEXT


async def test_stream_that_may_escalate_is_buffered_and_checked(servers, make_engine):
    script(servers, student=[Ok("no json here")], frontier=[Ok('{"a": 1}')])
    engine = await make_engine()
    routed = await engine.stream(req("reverse: abc", stream=True, response_format={"type": "json_object"}))
    assert routed.decision.escalated and routed.decision.side == "frontier"
    chunks = [c async for c in routed]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == '{"a": 1}'
    assert chunks[-1].model_extra["bitrate"]["escalated"] is True


async def test_checked_stream_whose_student_fails_streams_the_frontier(servers, make_engine):
    script(servers, student=[Status(503)], frontier=[Ok('{"b": 2}')])
    engine = await make_engine()
    routed = await engine.stream(req("reverse: abc", stream=True, response_format={"type": "json_object"}))
    assert (routed.decision.side, routed.decision.fallback_from, routed.decision.escalated) == (
        "frontier",
        "student",
        False,
    )
    assert "".join([c.choices[0].delta.content or "" async for c in routed if c.choices]) == '{"b": 2}'


async def test_stream_closed_early_stops(servers, make_engine):
    script(servers)
    engine = await make_engine()
    routed = await engine.stream(req("reverse: abc", stream=True))
    first = await anext(aiter(routed))
    assert first.choices
    await routed.aclose()
    assert routed.state == "closed"


async def test_open_circuit_routes_around_the_student(servers, make_engine):
    script(servers, student=[Status(503)] * 3, frontier=[Ok(FRONTIER_TEXT)] * 4)
    engine = await make_engine()
    engine.circuit = Circuit(threshold=3, cooldown=60)
    for _ in range(3):
        await engine.complete(req("reverse: abc"))
    _, decision = await engine.complete(req("reverse: abc"))
    assert (decision.rule, decision.side, decision.fallback_from) == ("health", "frontier", None)
    assert len(servers[0].chat_requests) == 3


def test_circuit_opens_and_closes_with_an_injected_clock():
    now = [0.0]
    circuit = Circuit(threshold=2, cooldown=5, clock=lambda: now[0])
    circuit.failure("s")
    assert circuit.unavailable() == frozenset()
    circuit.failure("s")
    assert circuit.unavailable() == {"s"}
    now[0] = 6.0
    assert circuit.unavailable() == frozenset()
    circuit.success("s")
    circuit.failure("s")
    assert circuit.unavailable() == frozenset()


def test_half_open_circuit_lets_one_probe_through():
    now = [0.0]
    circuit = Circuit(threshold=1, cooldown=5, clock=lambda: now[0])
    circuit.failure("s")
    assert not circuit.acquire("s")  # open: fail fast
    assert circuit.retry_in("s") == 5
    now[0] = 5.5
    assert circuit.acquire("s")  # the probe
    assert not circuit.acquire("s")  # one at a time
    assert circuit.unavailable() == {"s"}
    circuit.failure("s")  # the probe failed: open for another cooldown
    assert not circuit.acquire("s")
    now[0] = 11.0
    assert circuit.acquire("s")
    circuit.release("s")  # a cancelled probe frees the slot
    assert circuit.acquire("s")
    circuit.success("s")
    assert circuit.acquire("s") and circuit.acquire("s")


async def test_open_circuit_fails_fast_on_a_direct_model_then_probes_back(servers, make_engine):
    script(servers, student=[Status(500)] * 2 + [Ok("back")])
    engine = await make_engine()
    now = [0.0]
    engine.circuit = Circuit(threshold=2, cooldown=30, clock=lambda: now[0])
    direct = ChatRequest.model_validate({"model": "student", "messages": [{"role": "user", "content": "x"}]})
    for _ in range(2):
        with pytest.raises(BackendError):
            await engine.complete(direct)
    seen = len(servers[0].chat_requests)
    with pytest.raises(BackendError) as info:
        await engine.complete(direct)
    assert (info.value.status, info.value.code) == (503, "circuit_open")
    assert len(servers[0].chat_requests) == seen  # the open circuit never reached the backend
    now[0] = 31.0
    completion, _ = await engine.complete(direct)  # the probe, which succeeds and closes it
    assert completion.choices[0].message.content == "back"
    assert engine.circuit.unavailable() == frozenset()
