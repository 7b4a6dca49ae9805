"""The fault matrix: every upstream fault x {json, stream} x {student, frontier} through the gateway.

A case runs on a bench: a gateway (in-process, :mod:`tests.support.inprocess`) over two
real fault servers on 127.0.0.1 (``student`` and ``frontier``) and a port where nothing
listens (``dead``). Route ``auto`` picks the side from the task in the prompt (a rule
per category of a small profile):

=================  ===========  ================================================
side (test id)     category     policy
=================  ===========  ================================================
``student``        ``easy``     safe -> student; ``student_error: frontier``
``frontier_safe``  ``mid``      uncertain -> frontier; ``frontier_error: student``
``frontier_pinned`` ``hard``    unsafe -> frontier; never falls back to the student
=================  ===========  ================================================

:data:`ROWS` is the one source of truth: what each fault does to one call, from
which :func:`expected` derives the outcome on each side; ``docs/FAULTS.md`` prints
the same table (:func:`markdown_table`; a test keeps the two equal). Every case
also checks that the call ended within its time budget, that both models still
answer a direct call afterwards, and that nothing the gateway logged or answered
holds the upstream API key or the prompt.

A case mostly waits (timeouts, Retry-After, slow upstreams), so the module runs every case
once, up front, on :data:`BENCHES` benches at once, each bench one case at a time
(:func:`run_matrix`); each ``test_fault`` case then checks what its call did.

Run ``python -m tests.gateway.test_faults`` to print the table for the doc.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from profiles.summary import summarize
from sdk.engine import Circuit, Engine
from sdk.policy import Policy
from sdk.profile import ModelIdentity, Profile, SuiteInfo, Tolerance
from tests.support.fault_server import (
    Drip,
    Exchange,
    Fault,
    FaultServer,
    Hang,
    Malformed,
    ResetMidBody,
    Status,
    StreamError,
    Truncated,
    WrongContentType,
    completion,
    fault_server,
    refused_url,
    stream_events,
)
from tests.support.inprocess import InProcess, inprocess_gateway

DOC = Path(__file__).resolve().parents[2] / "docs" / "FAULTS.md"

KEY_ENV = "BITRATE_FAULTS_UPSTREAM_KEY"
UPSTREAM_KEY = "sk-upstream-SECRET-5e1f0c7a"
"""The upstream API key; upstream error bodies echo it, the gateway must never show it."""
CANARY = "canary-9b2d71e4"
"""Put in every prompt; must appear in no log line, metric or error body."""

TIMEOUT = 1.0
"""The backends' read timeout, in seconds (``max_retries: 1``, ``retry_after_cap: 1``)."""

# --------------------------------------------------------------------------- faults of our own


@dataclass
class EchoKeyStatus(Status):
    """An error status whose message echoes the Authorization header, as some APIs do."""

    async def respond(self, ex: Exchange) -> bool:
        self.message = f"scripted failure (you sent {ex.request.headers.get('authorization')})"
        return await super().respond(ex)


@dataclass
class EchoKeyStreamError(StreamError):
    """An error event mid-stream whose message echoes the Authorization header."""

    async def respond(self, ex: Exchange) -> bool:
        auth = ex.request.headers.get("authorization")
        self.error = {"message": f"engine overloaded (key {auth})", "type": "server_error"}
        return await super().respond(ex)


@dataclass
class SlowJson(Fault):
    """A good JSON answer sent in ``pieces`` parts, ``delay`` seconds apart (each gap < the timeout)."""

    delay: float = 0.3
    pieces: int = 5

    async def respond(self, ex: Exchange) -> bool:
        body = json.dumps(completion(ex.model)).encode()
        await ex.head(200, "application/json", length=len(body))
        step = -(-len(body) // self.pieces)
        for start in range(0, len(body), step):
            ex.writer.write(body[start : start + step])
            await ex.writer.drain()
            await asyncio.sleep(self.delay)
        return True


@dataclass
class ResetMidStream(Fault):
    """SSE: ``after`` good events, then a TCP reset."""

    after: int = 2

    async def respond(self, ex: Exchange) -> bool:
        await ex.head(200, "text/event-stream")
        for event in stream_events(ex.model)[: self.after]:
            await ex.chunk(event)
        await asyncio.sleep(0.05)
        ex.reset()
        return False


@dataclass
class MalformedEvent(Fault):
    """SSE: ``after`` good events, then an event whose data is not JSON."""

    after: int = 2

    async def respond(self, ex: Exchange) -> bool:
        await ex.head(200, "text/event-stream")
        for event in stream_events(ex.model)[: self.after]:
            await ex.chunk(event)
        await ex.chunk(b'data: {"id": "chatcmpl-x", "choices": [ {oops\n\n')
        await ex.end_chunks()
        return True


# --------------------------------------------------------------------------- the table

Mode = Literal["json", "stream"]
Kind = Literal["ok", "before", "mid"]
Leg = Literal["student", "frontier_safe", "frontier_pinned"]
LEGS: tuple[Leg, ...] = ("student", "frontier_safe", "frontier_pinned")


@dataclass(frozen=True)
class Row:
    """What one fault does to one call of one backend (the matrix derives each side from it)."""

    fault: str
    """Name of the fault (the test id)."""
    mode: Mode
    """``json`` (``stream: false``) or ``stream``."""
    make: Callable[[], Fault] | None
    """The scripted fault, or ``None`` for a refused connection (the ``dead`` model)."""
    tries: int
    """Requests the faulty upstream receives: 1, or 2 when the backend retries (``max_retries: 1``)."""
    kind: Kind
    """``ok`` (answered), ``before`` (failed before the first byte), ``mid`` (broke mid-stream)."""
    status: int = 200
    """Status of the failure: the HTTP status (``before``) or the error event's (``mid``)."""
    code: str | None = None
    """The ``code`` of the error body or event."""
    seconds: float = 4.0
    """Upper bound on the whole call (fallback included), in seconds."""
    what: str = ""
    """The fault in words, for the doc."""
    secret_echo: bool = field(default=False)
    """The upstream's error message echoes the API key."""
    at_least: float = 0.0
    """Lower bound on the call, in seconds: waits that must have happened (Retry-After, timeouts)."""


def _both(
    fault: str, make: Callable[[], Fault] | None, tries: int, status: int, code: str, **kw: Any
) -> list[Row]:
    """The same failure before the first byte for a JSON call and a stream."""
    return [Row(fault, mode, make, tries, "before", status, code, **kw) for mode in ("json", "stream")]


def _rows() -> list[Row]:
    return [
        *_both("status_500", lambda: EchoKeyStatus(500), 2, 502, "upstream_status", seconds=5,
               what="500 (the message echoes the API key)", secret_echo=True),
        *_both("status_503_retry_after", lambda: EchoKeyStatus(503, retry_after=1), 2, 502,
               "upstream_status", seconds=5, what="503 with Retry-After: 1", secret_echo=True,
               at_least=0.95),
        *_both("status_429", lambda: EchoKeyStatus(429, retry_after=0.2), 2, 502, "upstream_status",
               seconds=5, what="429 with Retry-After: 0.2", secret_echo=True),
        *_both("refused", None, 0, 503, "backend_unavailable", seconds=5, what="connection refused"),
        *_both("hang", lambda: Hang(30), 2, 504, "backend_timeout", seconds=7,
               what="reads the request, answers nothing for 30 s", at_least=1.95),
        *_both("wrong_content_type", WrongContentType, 1, 502, "bad_upstream_response", seconds=4,
               what="200 text/html"),
        Row("reset_mid_body", "json", ResetMidBody, 2, "before", 503, "backend_unavailable", 5,
            "200, part of the JSON body, then TCP reset"),
        Row("reset_mid_body", "stream", ResetMidStream, 1, "mid", 503, "backend_unavailable", 4,
            "2 SSE events, then TCP reset"),
        Row("slow_drip", "json", lambda: SlowJson(0.3), 1, "ok", seconds=6,
            what="body in 5 parts 0.3 s apart (under the timeout)"),
        Row("slow_drip", "stream", lambda: Drip(0.3), 1, "ok", seconds=7,
            what="one SSE event every 0.3 s (under the timeout)"),
        Row("stall_mid_stream", "json", lambda: Drip(1.6), 2, "before", 504, "backend_timeout", 7,
            "SSE events 1.6 s apart: the body stalls past the timeout"),
        Row("stall_mid_stream", "stream", lambda: Drip(1.6), 1, "mid", 504, "backend_timeout", 6,
            "SSE events 1.6 s apart: the stream stalls past the timeout"),
        Row("malformed_json", "json", Malformed, 1, "before", 502, "bad_upstream_response", 4,
            "200 application/json that is not JSON"),
        Row("malformed_json", "stream", MalformedEvent, 1, "mid", 502, "bad_upstream_response", 4,
            "2 SSE events, then one that is not JSON"),
        Row("truncated_sse", "json", Truncated, 1, "before", 502, "bad_upstream_response", 4,
            "an SSE body to a JSON request"),
        Row("truncated_sse", "stream", Truncated, 1, "mid", 502, "stream_truncated", 4,
            "2 SSE events, then the end without [DONE]"),
        Row("truncated_sse_empty", "stream", lambda: Truncated(chunks=0), 1, "before", 502,
            "stream_truncated", 4, "SSE headers, then the end: no event, no [DONE]"),
        Row("error_event", "json", EchoKeyStreamError, 1, "before", 502, "bad_upstream_response", 4,
            "an SSE body to a JSON request", True),
        Row("error_event", "stream", EchoKeyStreamError, 1, "mid", 502, "upstream_stream_error", 4,
            "2 SSE events, then data: {\"error\": ...} (echoes the key)", True),
        Row("error_event_first", "stream", lambda: EchoKeyStreamError(after=0), 1, "before", 502,
            "upstream_stream_error", 4, "an error event before any chunk (echoes the key)", True),
    ]  # fmt: skip


ROWS: list[Row] = _rows()


@dataclass(frozen=True)
class Expected:
    """The outcome of one case."""

    status: int
    """HTTP status of the answer."""
    answered_by: str | None
    """The model that answered (``x-bitrate-target``), ``None`` for an error status."""
    fell_back: bool
    """The other side answered after the chosen one failed."""
    stream_end: Literal["done", "error"] | None
    """How a stream ends: ``[DONE]`` or an error event (``None`` for JSON or an error status)."""


def faulty_model(row: Row, side: Leg) -> str:
    """The policy model the fault hits."""
    if row.make is None:
        return "dead"
    return "student" if side == "student" else "frontier"


def other_model(side: Leg) -> str:
    """The policy model on the other side of the route."""
    return "frontier" if side == "student" else "student"


def expected(row: Row, side: Leg) -> Expected:
    """The outcome of ``row`` on ``side``, from the policy's fallback rules."""
    stream = row.mode == "stream"
    if row.kind == "ok":
        return Expected(200, faulty_model(row, side), False, "done" if stream else None)
    if row.kind == "mid":  # the first byte is out: no fallback, the stream ends with an error event
        return Expected(200, faulty_model(row, side), False, "error")
    if side == "frontier_pinned":
        return Expected(row.status, None, False, None)
    return Expected(200, other_model(side), True, "done" if stream else None)


def describe(row: Row, side: Leg) -> str:
    """One cell of the doc table."""
    exp = expected(row, side)
    if exp.status != 200:
        return f"{exp.status} `{row.code}` naming `{faulty_model(row, side)}`"
    who = "other side" if exp.fell_back else "same side"
    if exp.stream_end == "error":
        return f"200, chunks, then error event `{row.code}` ({row.status}), no [DONE]"
    return f"200 from the {who}" + (" (fallback)" if exp.fell_back else "")


def markdown_table() -> str:
    """The matrix as the Markdown table in ``docs/FAULTS.md``."""
    head = [
        "| fault | mode | upstream does | tries | fault on student (safe task) "
        "| fault on frontier, task not unsafe | fault on frontier, unsafe task | takes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines = [
        f"| {r.fault} | {r.mode} | {r.what or r.fault} | {r.tries or '-'} | "
        + " | ".join(describe(r, s) for s in LEGS)
        + f" | {f'{r.at_least:g}-' if r.at_least else '< '}{r.seconds:g} s |"
        for r in ROWS
    ]
    return "\n".join(head + lines) + "\n"


# --------------------------------------------------------------------------- the gateway


def _profile(path: Path) -> Path:
    tol = {"max_loss": 0.05, "confidence": 0.9}
    categories = {
        "easy": summarize([1] * 200, [1] * 200, **tol),
        "mid": summarize([1] * 9 + [0], [1] * 10, **tol),
        "hard": summarize([0] * 50, [1] * 50, **tol),
    }
    assert [c.verdict for c in categories.values()] == ["safe", "uncertain", "unsafe"]
    profile = Profile(
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        method="import",
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["faults"], sha256="0" * 64, n_items=260),
        tolerance=Tolerance(**tol),
        categories=categories,
    )
    return profile.save(path)


def fault_policy(student_url: str, frontier_url: str, dead_url: str, profile: Path, **server: Any) -> Policy:
    """Models ``student``, ``frontier``, ``dead``; routes ``auto``, ``dead_student``, ``dead_frontier``."""

    def model(url: str, name: str) -> dict[str, Any]:
        return {
            "backend": "openai",
            "base_url": url,
            "model": name,
            "api_key_env": KEY_ENV,
            "timeout": TIMEOUT,
            "connect_timeout": TIMEOUT,
            "max_retries": 1,
            "retry_after_cap": 1.0,
        }

    def route(student: str, frontier: str) -> dict[str, Any]:
        return {
            "student": student,
            "frontier": frontier,
            "profile": str(profile),
            "tolerance": {"max_loss": 0.05, "confidence": 0.9},
            "tasks": {
                "detect": ["rules"],
                "rules": [{"match": f"^{c}:", "task": c} for c in ("easy", "mid", "hard")],
            },
            "fallback": {"student_error": "frontier", "frontier_error": "student"},
        }

    return Policy.model_validate(
        {
            "version": 1,
            "models": {
                "student": model(student_url, "small"),
                "frontier": model(frontier_url, "big"),
                "dead": model(dead_url, "dead"),
            },
            "routes": {
                "auto": route("student", "frontier"),
                "dead_student": route("dead", "frontier"),
                "dead_frontier": route("student", "dead"),
            },
            "server": {"request_timeout": 15.0, **server},
        }
    )


CASE: ContextVar[str | None] = ContextVar("fault_case", default=None)
"""The matrix case a task is running (log records are filed under it)."""


class LogCapture(logging.Handler):
    """Every log record of the process, formatted as the gateway would write it, filed under the
    matrix case whose task (or a task it started) logged it; ``None`` for any other."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[tuple[str | None, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((CASE.get(), self.format(record)))

    def of(self, case: str) -> str:
        """The lines logged for ``case``, and those logged outside every case."""
        return "\n".join(line for owner, line in self.lines if owner in (case, None))


@contextmanager
def capturing_logs() -> Iterator[LogCapture]:
    """Capture every record (``bitrate`` at DEBUG, the rest at INFO) while the block runs."""
    logs, root, ours = LogCapture(), logging.getLogger(), logging.getLogger("bitrate")
    levels = root.level, ours.level
    root.addHandler(logs)
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    try:
        yield logs
    finally:
        root.removeHandler(logs)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


@dataclass
class Bench:
    """A gateway (in-process) and its two upstreams (real fault servers on 127.0.0.1)."""

    gateway: InProcess
    servers: dict[str, FaultServer]


@asynccontextmanager
async def bench_on(profile: Path, **server: Any) -> AsyncIterator[Bench]:
    """Two fault servers (``student``, ``frontier``), a refused port (``dead``), and a gateway
    over them; ``server`` overrides the policy's ``server`` settings. The upstream key must be set."""
    with fault_server("small") as student, fault_server("big") as frontier, refused_url() as dead:
        policy = fault_policy(student.base_url, frontier.base_url, dead, profile, **server)
        # A case checks one call at a time: no circuit may open between cases
        # (test_faults_circuit.py covers the breaker).
        engine = Engine(policy, circuit=Circuit(threshold=10**6))
        async with inprocess_gateway(engine) as gateway:
            yield Bench(gateway, {"student": student, "frontier": frontier})


@pytest.fixture
async def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bench]:
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    async with bench_on(_profile(tmp_path / "profile.json")) as bench:
        yield bench


@dataclass
class Answer:
    """What the caller got."""

    status: int
    headers: httpx.Headers
    text: str
    events: list[str]
    """``data`` payloads of a stream, in order."""

    def error(self) -> dict[str, Any]:
        """The OpenAI error object of an error status (checks the shape)."""
        body = json.loads(self.text)
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        return body["error"]


async def call(gateway: InProcess, body: dict[str, Any]) -> Answer:
    """POST a chat completion; a stream is read to its end (a minute at most)."""
    async with asyncio.timeout(60):
        response = await gateway.http.post("/v1/chat/completions", json=body)
    events = []
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    return Answer(response.status_code, response.headers, response.text, events)


def _unscript(bench: Bench) -> None:
    # A case that consumed fewer faults than scripted must not leak them into the next case
    # (it fails on its own counts anyway).
    for server in bench.servers.values():
        server.unscript()


CATEGORY = {"student": "easy", "frontier_safe": "mid", "frontier_pinned": "hard"}
DEAD_ROUTE = {"student": "dead_student", "frontier_safe": "dead_frontier", "frontier_pinned": "dead_frontier"}


def _check_stream_end(answer: Answer, row: Row, exp: Expected) -> None:
    assert "[DONE]" not in answer.events[:-1]
    if exp.stream_end == "done":
        assert answer.events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in answer.events[:-1]]
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
        assert text == "Hello from the fault server."
        return
    assert "[DONE]" not in answer.events, "a broken stream must not end as if it succeeded"
    # Chunks are forwarded as they arrive: a stream that stalls after its first chunk shows the
    # caller at least the error event after a 200 (and the first chunk, when it got out in time).
    assert len(answer.events) >= (1 if row.fault == "stall_mid_stream" else 2), answer.events
    error = json.loads(answer.events[-1])["error"]
    assert error["code"] == row.code, error
    assert set(error) == {"message", "type", "param", "code"}


def _check_answer(answer: Answer, row: Row, side: Leg) -> None:
    exp = expected(row, side)
    assert answer.status == exp.status, answer.text
    if exp.status != 200:
        error = answer.error()
        assert error["code"] == row.code, error
        assert f"backend '{faulty_model(row, side)}'" in error["message"]
        return
    assert answer.headers["x-bitrate-target"] == exp.answered_by
    if exp.fell_back:
        assert "fallback" in answer.headers["x-bitrate-reason"]
    if row.mode == "stream":
        _check_stream_end(answer, row, exp)
    else:
        assert json.loads(answer.text)["choices"][0]["message"]["content"]


def _seen(bench: Bench) -> dict[str, int]:
    return {name: len(server.chat_requests) for name, server in bench.servers.items()}


def _leaks(text: str) -> list[str]:
    return [secret for secret in (UPSTREAM_KEY, CANARY) if secret in text]


# --------------------------------------------------------------------------- the matrix

BENCHES = 16
"""Benches the matrix runs on at once (a case waits on timeouts and Retry-After, not on the CPU)."""


def case_id(row: Row, side: Leg) -> str:
    return f"{row.fault}-{row.mode}-{side}"


@dataclass
class Outcome:
    """What one case did: the call, what reached each upstream, and the gateway afterwards."""

    answer: Answer | None = None
    elapsed: float = 0.0
    """Seconds the call took."""
    tries: dict[str, int] = field(default_factory=dict)
    """Requests each upstream (``student``, ``frontier``) received during the call."""
    healthy: list[Answer] = field(default_factory=list)
    """A direct call to each model after the case."""
    failure: Exception | None = None
    """What went wrong running the case (re-raised by its test)."""


async def run_case(bench: Bench, row: Row, side: Leg) -> Outcome:
    """One case on ``bench``: script the fault, make the call, then call both models directly."""
    outcome = Outcome()
    if row.make is not None:
        bench.servers[faulty_model(row, side)].script(*(row.make() for _ in range(row.tries)))
    model = "auto" if row.make is not None else DEAD_ROUTE[side]
    prompt = f"{CATEGORY[side]}: {CANARY} say hello"
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": row.mode == "stream"}
    seen = _seen(bench)
    try:
        started = time.perf_counter()
        outcome.answer = await call(bench.gateway, body)
        outcome.elapsed = time.perf_counter() - started
        outcome.tries = {name: n - seen[name] for name, n in _seen(bench).items()}
        _unscript(bench)
        for name in ("student", "frontier"):  # the gateway keeps serving
            hi = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
            outcome.healthy.append(await call(bench.gateway, hi))
    except Exception as exc:  # noqa: BLE001 - reported by the case's own test
        outcome.failure = exc
    finally:
        _unscript(bench)
    return outcome


async def run_matrix(profile: Path, cases: list[tuple[Row, Leg]]) -> dict[str, Outcome]:
    """Every case, on :data:`BENCHES` benches at once: each bench runs one case at a time, the
    slowest first; the cases a task runs file their log records under their id."""
    todo = sorted(cases, key=lambda case: (case[0].at_least, case[0].seconds))
    outcomes: dict[str, Outcome] = {}

    async def work() -> None:
        async with bench_on(profile) as bench:
            while todo:
                row, side = todo.pop()
                token = CASE.set(case_id(row, side))
                try:
                    outcomes[case_id(row, side)] = await run_case(bench, row, side)
                finally:
                    CASE.reset(token)

    await asyncio.gather(*(work() for _ in range(BENCHES)))
    return outcomes


@dataclass
class Matrix:
    outcomes: dict[str, Outcome]
    logs: LogCapture


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """Every case of :data:`ROWS` x :data:`LEGS`, run once for the module (see :func:`run_matrix`)."""
    profile = _profile(tmp_path_factory.mktemp("faults") / "profile.json")
    with pytest.MonkeyPatch.context() as env, capturing_logs() as logs:
        env.setenv(KEY_ENV, UPSTREAM_KEY)
        outcomes = asyncio.run(run_matrix(profile, [(row, side) for row in ROWS for side in LEGS]))
    return Matrix(outcomes, logs)


CASES = [pytest.param(row, side, id=case_id(row, side)) for row in ROWS for side in LEGS]


@pytest.mark.parametrize(("row", "side"), CASES)
def test_fault(matrix: Matrix, row: Row, side: Leg):
    outcome = matrix.outcomes[case_id(row, side)]
    if outcome.failure is not None:
        raise outcome.failure
    assert outcome.answer is not None
    faulty, other = faulty_model(row, side), other_model(side)
    _check_answer(outcome.answer, row, side)
    assert row.at_least <= outcome.elapsed < row.seconds, (
        f"took {outcome.elapsed:.2f}s, budget {row.seconds:g}s"
    )
    if faulty in outcome.tries:
        assert outcome.tries[faulty] == row.tries
    assert outcome.tries[other] == (1 if expected(row, side).fell_back else 0)
    assert not _leaks(outcome.answer.text), "an answer leaked the key or the prompt"
    for healthy in outcome.healthy:
        assert healthy.status == 200, healthy.text
    logged = matrix.logs.of(case_id(row, side))
    assert not _leaks(logged), f"the logs leaked {_leaks(logged)}"


# --------------------------------------------------------------------------- one gateway, more calls


async def test_a_hanging_backend_does_not_hold_up_other_requests(bench: Bench):
    bench.servers["student"].script(Hang(30), Hang(30))
    before = _seen(bench)["student"]
    hanging = asyncio.create_task(
        call(bench.gateway, {"model": "student", "messages": [{"role": "user", "content": "hi"}]})
    )
    try:
        async with asyncio.timeout(10):
            while _seen(bench)["student"] == before:
                await asyncio.sleep(0.01)  # until the hanging call reached its upstream
        for _ in range(10):
            answer = await call(
                bench.gateway, {"model": "frontier", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert answer.status == 200
        assert not hanging.done(), "ten answers came back while the hanging call was still waiting"
        async with asyncio.timeout(20):
            hung = await hanging
    finally:
        hanging.cancel()
        _unscript(bench)
    assert hung.status == 504 and hung.error()["code"] == "backend_timeout"


async def test_request_timeout_caps_the_whole_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    profile = _profile(tmp_path / "p.json")

    async def timed(bench: Bench, body: dict[str, Any]) -> tuple[Answer, float]:
        started = time.perf_counter()
        answer = await call(bench.gateway, body)
        return answer, time.perf_counter() - started

    hi = {"model": "auto", "messages": [{"role": "user", "content": "easy: hi"}]}
    async with (
        bench_on(profile, request_timeout=2.0) as hanging,
        bench_on(profile, request_timeout=2.0) as dripping,
    ):
        hanging.servers["student"].script(Hang(30), Hang(30))
        hanging.servers["frontier"].script(Hang(30), Hang(30))
        dripping.servers["student"].script(Drip(0.4))  # ~3.6 s of stream: cut at 2 s
        (answer, elapsed), (streamed, streamed_elapsed) = await asyncio.gather(
            timed(hanging, hi), timed(dripping, {**hi, "stream": True})
        )
    assert answer.status == 504 and answer.error()["code"] == "backend_timeout"
    assert 1.9 < elapsed < 4, elapsed
    assert streamed.status == 200 and "[DONE]" not in streamed.events
    assert json.loads(streamed.events[-1])["error"]["code"] == "backend_timeout"
    assert 1.9 < streamed_elapsed < 4, streamed_elapsed


async def test_metrics_hold_no_key_and_no_prompt(bench: Bench):
    bench.servers["student"].script(EchoKeyStatus(500), EchoKeyStatus(500))
    prompt = f"easy: {CANARY}"
    answer = await call(bench.gateway, {"model": "auto", "messages": [{"role": "user", "content": prompt}]})
    assert answer.status == 200 and answer.headers["x-bitrate-target"] == "frontier"
    metrics = await bench.gateway.http.get("/metrics")
    assert metrics.status_code == 200 and "bitrate_fallbacks_total" in metrics.text
    assert not _leaks(metrics.text)


def test_the_doc_prints_this_table():
    assert markdown_table() in DOC.read_text(), (
        "run: python -m tests.gateway.test_faults > table; update docs/FAULTS.md"
    )


if __name__ == "__main__":
    print(markdown_table(), end="")
