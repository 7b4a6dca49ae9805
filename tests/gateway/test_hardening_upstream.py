"""A hostile or misconfigured upstream, through a real gateway, called with the official client.

Two real fault servers on 127.0.0.1 (``student`` and ``frontier``) behind a real gateway
(uvicorn, in a thread). Route ``auto``: ``easy:`` prompts are pinned to the student,
``mid:`` ones go to the frontier (no profile: uncertain); each side falls back to the
other; the student's answer must be non-empty (else it escalates). Both models send
the upstream key :data:`KEY`, which must never show, not even 8 characters of it,
in an answer or a log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from sdk.backends.scrub import MAX_MESSAGE
from sdk.engine import Circuit, Engine
from sdk.policy import Policy
from tests.support.fault_server import FaultServer, Status, fault_server
from tests.support.fault_server.exchange import completion
from tests.support.gateway_server import RunningServer, running_gateway
from tests.support.secrets import fake_key, key_fragments

KEY_ENV = "HARDENING_GATEWAY_UPSTREAM_KEY"
KEY = fake_key("gateway hardening")
"""The upstream key (51 characters)."""
PAD = "x" * (MAX_MESSAGE - 15)
"""Upstream text before the key: the 300-character cut falls 15 characters into the key."""


def fragments(text: str) -> list[str]:
    """The runs of 8 characters of :data:`KEY` that ``text`` holds."""
    return key_fragments(KEY, text)


def hardening_policy(student: str, frontier: str, **options: Any) -> Policy:
    def model(url: str, name: str) -> dict[str, Any]:
        return {"backend": "openai", "base_url": url, "model": name, "api_key_env": KEY_ENV,
                "timeout": 5.0, "max_retries": 0, **options}  # fmt: skip

    route = {
        "student": "student",
        "frontier": "frontier",
        "tasks": {"detect": ["rules"], "rules": [{"match": f"^{t}:", "task": t} for t in ("easy", "mid")]},
        "pin": {"easy": "student"},
        "fallback": {"student_error": "frontier", "frontier_error": "student"},
        "escalate": [{"check": "non_empty"}],
    }
    models = {"student": model(student, "small"), "frontier": model(frontier, "big")}
    return Policy.model_validate({"version": 1, "models": models, "routes": {"auto": route}})


class Lines(logging.Handler):
    """Every record, formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def captured_logs() -> Iterator[Lines]:
    """Every record of the root logger (``bitrate`` at DEBUG) and of uvicorn's own loggers (which do
    not propagate), while the block runs. Enter it once the gateway is up: uvicorn configures
    its loggers when it starts."""
    lines, ours = Lines(), logging.getLogger("bitrate")
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.access")]
    level = ours.level
    ours.setLevel(logging.DEBUG)
    for logger in loggers:
        logger.addHandler(lines)
    try:
        yield lines
    finally:
        for logger in loggers:
            logger.removeHandler(lines)
        ours.setLevel(level)


@dataclass
class Bench:
    student: FaultServer
    frontier: FaultServer
    gateway: RunningServer
    client: openai.OpenAI
    logs: Lines


@contextmanager
def bench_with(circuit: Circuit | None = None, **options: Any) -> Iterator[Bench]:
    with fault_server("small") as student, fault_server("big") as frontier:
        policy = hardening_policy(student.base_url, frontier.base_url, **options)
        engine = Engine(policy, circuit=circuit or Circuit(threshold=10**6))
        with (
            running_gateway(engine) as gateway,
            openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as client,
            captured_logs() as logs,
        ):
            yield Bench(student, frontier, gateway, client, logs)


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def bench() -> Iterator[Bench]:
    with bench_with() as made:
        yield made


@dataclass
class Reply:
    """What the caller got: the status, the ``x-bitrate-*`` headers, the body."""

    status: int
    headers: dict[str, str]
    text: str

    @property
    def error(self) -> dict[str, Any]:
        return json.loads(self.text)["error"]

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads(self.text)["bitrate"]


def ask(client: openai.OpenAI, model: str, prompt: str = "hi") -> Reply:
    """One call with the official client; an error status is caught and returned."""
    messages = [{"role": "user", "content": prompt}]
    try:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    except openai.APIStatusError as exc:
        return Reply(exc.status_code, dict(exc.response.headers), exc.response.text)
    return Reply(raw.status_code, dict(raw.headers), raw.http_response.text)


# --------------------------------------------------------------------------- the key never shows


@pytest.mark.parametrize(("upstream", "answered"), [(500, 502), (400, 400)])
def test_a_key_straddling_the_cut_never_shows_in_a_body_or_a_log(upstream: int, answered: int):
    with bench_with(max_retries=1) as bench:
        message = PAD + KEY + " (check your key)"
        bench.frontier.script(Status(upstream, message=message), Status(upstream, message=message))
        reply = ask(bench.client, "frontier")
    assert reply.status == answered and "backend 'frontier'" in reply.error["message"]
    assert not fragments(reply.text), reply.text
    if upstream == 500:
        assert "retrying after backend 'frontier'" in bench.logs.text
    assert not fragments(bench.logs.text)


def test_a_key_echoed_in_the_request_id_never_shows(bench: Bench):
    bench.frontier.request_id_format = "req-{n} {authorization}"
    bench.frontier.script(Status(500, message="engine overloaded"))
    reply = ask(bench.client, "frontier")
    assert reply.status == 502 and "Bearer ***)" in reply.error["message"]
    assert not fragments(reply.text) and not fragments(bench.logs.text)


# --------------------------------------------------------------------------- whose fault a 4xx is


@pytest.mark.parametrize("upstream", [401, 403, 404])
def test_upstream_auth_or_not_found_is_a_502_naming_the_backend(bench: Bench, upstream: int):
    bench.frontier.script(Status(upstream, message="Incorrect API key provided: sk-...abcd"))
    reply = ask(bench.client, "frontier")
    assert reply.status == 502, reply.text
    assert reply.error["type"] == "upstream_error" and reply.error["code"] == "upstream_status"
    assert reply.error["message"].startswith(f"backend 'frontier': upstream answered {upstream}")


@pytest.mark.parametrize("upstream", [401, 403, 404])
@pytest.mark.parametrize(("prompt", "failing", "other"), [("easy: hi", "student", "frontier"),
                                                          ("mid: hi", "frontier", "student")])  # fmt: skip
def test_upstream_auth_or_not_found_falls_back_to_the_other_side(
    bench: Bench, upstream: int, prompt: str, failing: str, other: str
):
    getattr(bench, failing).script(Status(upstream))
    reply = ask(bench.client, "auto", prompt)
    assert reply.status == 200, reply.text
    assert reply.headers["x-bitrate-target"] == other
    assert reply.meta["fallback_from"] == failing
    assert len(getattr(bench, other).chat_requests) == 1


def test_the_circuit_counts_upstream_auth_failures():
    with bench_with(circuit=Circuit(threshold=2, cooldown=600)) as bench:
        bench.student.script(Status(401), Status(401), Status(401))
        statuses = [ask(bench.client, "student").status for _ in range(2)]
        third = ask(bench.client, "student")
        routed = ask(bench.client, "auto", "easy: hi")
    assert statuses == [502, 502]
    assert third.status == 503 and third.error["code"] == "circuit_open"
    assert len(bench.student.chat_requests) == 2, "an open circuit sends nothing upstream"
    assert routed.status == 200 and routed.headers["x-bitrate-target"] == "frontier"


@pytest.mark.parametrize("upstream", [400, 413, 422])
def test_a_bad_request_stays_the_callers_and_never_moves(upstream: int):
    with bench_with(circuit=Circuit(threshold=2, cooldown=600)) as bench:
        bench.student.script(*(Status(upstream, message="messages[0] is too long") for _ in range(3)))
        replies = [ask(bench.client, "auto", "easy: hi") for _ in range(3)]
    assert [r.status for r in replies] == [upstream] * 3
    assert replies[0].error["type"] == "invalid_request_error"
    assert "messages[0] is too long" in replies[0].error["message"]
    assert len(bench.student.chat_requests) == 3, "the circuit does not count the caller's errors"
    assert not bench.frontier.chat_requests, "the caller's error never moves to the other side"


# --------------------------------------------------------------------------- escalation


def test_an_answer_with_no_choices_escalates(bench: Bench):
    empty = {**completion("small"), "choices": []}
    bench.student.script(Status(200, body=json.dumps(empty).encode()))
    reply = ask(bench.client, "auto", "easy: hi")
    assert reply.status == 200, reply.text
    assert reply.headers["x-bitrate-target"] == "frontier" and reply.meta["escalated"] is True
    assert json.loads(reply.text)["choices"][0]["message"]["content"]
    assert len(bench.student.chat_requests) == 1 and len(bench.frontier.chat_requests) == 1
