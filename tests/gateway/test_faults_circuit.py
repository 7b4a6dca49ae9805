"""The circuit breaker through the gateway: opens after N failures, stops sending, probes back.

The engine's per-model :class:`sdk.engine.Circuit` runs with ``threshold: 2`` and
``cooldown: 30`` s of a clock the test moves; the fault servers (real, on 127.0.0.1) count
what reaches them. The gateway runs in-process (:mod:`tests.support.inprocess`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sdk.engine import Circuit, Engine
from tests.gateway.test_faults import KEY_ENV, UPSTREAM_KEY, EchoKeyStatus, _profile, fault_policy
from tests.support.fault_server import FaultServer, Hang, Status, fault_server, refused_url
from tests.support.inprocess import InProcess, inprocess_gateway

COOLDOWN = 30.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    gateway: InProcess
    student: FaultServer
    frontier: FaultServer
    circuit: Circuit
    clock: Clock

    async def ask(self, model: str = "auto", *, stream: bool = False, task: str = "easy") -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": f"{task}: hi"}], "stream": stream}
        return await self.gateway.http.post("/v1/chat/completions", json=body)


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    clock = Clock()
    with fault_server("small") as student, fault_server("big") as frontier, refused_url() as dead:
        policy = fault_policy(student.base_url, frontier.base_url, dead, _profile(tmp_path / "p.json"))
        circuit = Circuit(threshold=2, cooldown=COOLDOWN, clock=clock)
        engine = Engine(policy, circuit=circuit)
        async with inprocess_gateway(engine) as gateway:
            yield Setup(gateway, student, frontier, circuit, clock)


async def _open_student(s: Setup) -> None:
    """Two failed calls (each retried once upstream), made at once, open the student's circuit."""
    s.student.script(*(EchoKeyStatus(500) for _ in range(4)))
    for answer in await asyncio.gather(s.ask(), s.ask()):
        assert answer.status_code == 200 and answer.headers["x-bitrate-target"] == "frontier"
    assert s.circuit.state("student") == "open"
    assert len(s.student.chat_requests) == 4


async def test_opens_after_n_failures_and_stops_sending(setup: Setup):
    await _open_student(setup)
    for stream in (False, True, False):
        answer = await setup.ask(stream=stream)
        assert answer.status_code == 200 and answer.headers["x-bitrate-target"] == "frontier"
        assert "'student' unavailable" in answer.headers["x-bitrate-reason"]
        if stream:
            assert answer.text.rstrip().endswith("data: [DONE]")
    assert len(setup.student.chat_requests) == 4, "an open circuit sends nothing upstream"
    assert len(setup.frontier.chat_requests) == 5


async def test_a_direct_call_fails_fast_while_open(setup: Setup):
    await _open_student(setup)
    answer = await setup.ask("student")
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "circuit_open" and "backend 'student'" in error["message"]
    assert len(setup.student.chat_requests) == 4


async def test_probes_back_after_the_cooldown(setup: Setup):
    await _open_student(setup)
    setup.clock.now += COOLDOWN
    assert setup.circuit.state("student") == "half_open"
    answer = await setup.ask()
    assert answer.status_code == 200 and answer.headers["x-bitrate-target"] == "student"
    assert setup.circuit.state("student") == "closed"
    assert (await setup.ask()).headers["x-bitrate-target"] == "student"
    assert len(setup.student.chat_requests) == 6


async def test_a_failed_probe_opens_it_again(setup: Setup):
    await _open_student(setup)
    setup.clock.now += COOLDOWN
    setup.student.script(EchoKeyStatus(500), EchoKeyStatus(500))
    answer = await setup.ask()
    assert answer.status_code == 200 and answer.headers["x-bitrate-target"] == "frontier"
    assert setup.circuit.state("student") == "open"
    assert (await setup.ask()).headers["x-bitrate-target"] == "frontier"
    assert len(setup.student.chat_requests) == 6, "one probe (retried once upstream), then nothing"


async def test_no_fallback_means_a_fast_503_naming_the_backend(setup: Setup):
    setup.frontier.script(*(Hang(30) for _ in range(4)))
    # two calls at once; task 'hard' is unsafe: frontier only, never the student
    for answer in await asyncio.gather(setup.ask(task="hard"), setup.ask(task="hard")):
        assert answer.status_code == 504 and "backend 'frontier'" in answer.json()["error"]["message"]
    assert setup.circuit.state("frontier") == "open"
    answer = await setup.ask(task="hard", stream=True)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "circuit_open"
    assert len(setup.frontier.chat_requests) == 4
    assert len(setup.student.chat_requests) == 0


async def test_caller_errors_do_not_open_it(setup: Setup):
    setup.student.script(*(Status(400, message="bad") for _ in range(3)))
    for _ in range(3):
        answer = await setup.ask("student")
        assert answer.status_code == 400, answer.text
    assert setup.circuit.state("student") == "closed"
    assert (await setup.ask("student")).status_code == 200
