"""The live runtime in a child process (``sdk.live.isolated``, ``sdk.live.worker``): which engines
get one, the figures line both ways, a child that cannot start, one that is killed, and what it
writes before it stops; the child is real (``python -m sdk.live.worker``), the upstream a real
fault server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sdk.decide import LiveDemotion
from sdk.decision import Decision
from sdk.errors import ConfigError
from sdk.live.isolated import IsolatedLive, build_live, decode_figures, encode_figures, isolatable
from sdk.live.monitor import LiveMonitor, MonitorSettings
from sdk.live.runtime import LiveRuntime
from sdk.live.shadow import ShadowCounters
from sdk.live.store import open_store
from sdk.policy import Policy
from sdk.protocol import ChatCompletion, ChatRequest
from tests.support.fault_server import Ok, fault_server

REQUEST = ChatRequest.model_validate({"model": "auto", "messages": [{"role": "user", "content": "2+2?"}]})
SERVED = Decision(route="auto", target="student", side="student", task="math")
KNOWN = {"auto": frozenset({"math"})}


def policy(store: str, url: str = "http://127.0.0.1:9/v1", *, student: str = "openai", **live: Any) -> Policy:
    models: dict[str, Any] = {
        "frontier": {"backend": "openai", "base_url": url, "model": "big", "max_retries": 0},
        "student": {"backend": "openai", "base_url": url, "model": "small", "max_retries": 0},
    }
    if student != "openai":
        models["student"] = {"backend": student, "model": "/nonexistent"}
    shadow = {"spot_check": 1.0, "max_spend_per_hour": None}
    return Policy.model_validate(
        {
            "version": 1,
            "models": models,
            "routes": {"auto": {"student": "student", "frontier": "frontier", "shadow": shadow}},
            "live": {"store": store, "refresh_seconds": 0.2, **live},
        }
    )


def completion(text: str) -> ChatCompletion:
    return ChatCompletion.model_validate({"model": "m", "choices": [{"message": {"content": text}}]})


async def never(target: str, request: ChatRequest) -> ChatCompletion:
    raise AssertionError("an isolated runtime calls no backend in this process")


@pytest.mark.parametrize(("changes", "expected"), [({}, LiveRuntime), ({"isolate": True}, IsolatedLive)])
def test_which_runtime_an_engine_gets(tmp_path: Path, changes: dict, expected: type):
    live = build_live(policy(str(tmp_path / "l.sqlite"), **changes), never, known=KNOWN)
    assert type(live) is expected


@pytest.mark.parametrize(
    ("student", "given", "why"),
    [
        ("transformers", (), "model 'student' is a local transformers model"),
        ("openai", ("frontier",), "model 'frontier' was given to the engine ready-made"),
    ],
)
def test_isolation_needs_http_models_the_engine_builds(tmp_path: Path, student: str, given: tuple, why: str):
    forced = policy(str(tmp_path / "l.sqlite"), student=student, isolate=True)
    assert isolatable(forced, given) == why
    with pytest.raises(ConfigError, match=f"live.isolate is true, but {why}"):
        build_live(forced, never, known=KNOWN, given=given)


def test_the_figures_line_round_trips():
    monitor = LiveMonitor(MonitorSettings(0.05, 0.9), clock=lambda: 7.0)
    for _ in range(40):
        monitor.observe(0.0, 1.0)
    snapshot = monitor.snapshot()
    counters = ShadowCounters(calls={("spot_check", "ok"): 40}, drops={"queue_full": 2}, spend={"f": 0.5})
    demotion = LiveDemotion(7.0, snapshot.loss, snapshot.loss_low, snapshot.loss_high, 0.9, "numeric", 40)
    line = encode_figures(
        taken={"auto": 42},
        shadows={"auto": (counters, 3)},
        snapshots={("auto", "math"): snapshot},
        graders={("auto", "math"): "numeric"},
        demotions={("auto", "math"): demotion},
        seen={("auto", "math"): 1},
    )
    figures = decode_figures(line)
    assert figures.taken == {"auto": 42} and figures.seen == {("auto", "math"): 1}
    assert (
        figures.snapshots == {("auto", "math"): snapshot} and figures.demotions[("auto", "math")] == demotion
    )
    back, queued = figures.shadows["auto"]
    assert (back.calls, back.drops, back.spend, queued) == (counters.calls, counters.drops, counters.spend, 3)
    with pytest.raises(ValueError, match="not a figures line"):
        decode_figures(b'{"taken": 1}')


async def test_a_child_that_cannot_start_says_why(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    live = IsolatedLive(policy(str(tmp_path / "a-file" / "live.sqlite")), known=KNOWN)
    with pytest.raises(
        ConfigError, match="the live worker could not start: .*cannot create the store's folder"
    ):
        await live.start()


async def until(check: Callable[[], bool], seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def rows_in(store: str) -> int:
    with open_store(store, create=False) as reader:
        return reader.last_id()


def spot_checks(live: IsolatedLive) -> int:
    figures = live.shadow_figures().get("auto")
    return figures[0].calls.get(("spot_check", "ok"), 0) if figures else 0


async def test_jobs_reach_the_store_and_a_killed_child_is_started_again(tmp_path: Path):
    store = str(tmp_path / "live.sqlite")
    with fault_server("big") as frontier:
        frontier.script(*[Ok("4")] * 100)
        live = IsolatedLive(policy(store, frontier.base_url), known=KNOWN, restart_seconds=0.2)
        await live.start()
        try:
            for _ in range(5):
                live.answered(REQUEST, SERVED, completion("4"))
            await until(lambda: spot_checks(live) == 5 and rows_in(store) == 5)  # written before the kill
            proc = live._proc
            assert proc is not None
            os.kill(proc.pid, signal.SIGKILL)  # the child this test started
            await until(lambda: live._proc is None)
            live.answered(REQUEST, SERVED, completion("4"))
            assert live.shadow_figures()["auto"][0].drops == {"worker_down": 1}
            await until(lambda: live._proc is not None and live._proc is not proc)
            for _ in range(3):
                live.answered(REQUEST, SERVED, completion("4"))
            await until(lambda: spot_checks(live) == 3)  # the new child's own count
        finally:
            await live.aclose()  # the new child writes what it holds before it exits
    with open_store(store, create=False) as reader:
        rows = list(reader.export())
    assert len(rows) == 8 and {(r.student, r.frontier, r.direction) for r in rows} == {
        (1.0, 1.0, "spot_check")
    }
    assert live.traffic["auto"].requests == 9
