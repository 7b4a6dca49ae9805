"""The fault matrix again, with an upstream that echoes the API key everywhere it can: no
8-character run of the key appears in any answer or any log line.

Every row of :data:`tests.gateway.test_faults.ROWS` on every side of
:data:`~tests.gateway.test_faults.LEGS`, through a real gateway (uvicorn, in a thread) over
real fault servers, with the same policy (``fault_policy``), the key a 51-character
``sk-...`` string. The fault servers put it in every answer's ``x-request-id``
(``Bearer <key>``), and each fault that produces text echoes it, bare, across the
300-character cut of upstream error text (error statuses and mid-stream error events).

Each answer (status line aside: headers and body) is checked on its own; the log lines of
the whole run (the root logger with ``bitrate`` at DEBUG, and uvicorn's loggers, which do
not propagate) are checked together. The matrix's own expectations (statuses, fallbacks,
timings) are ``test_faults.py``'s; here only the status is checked, so that a case that went
wrong does not pass for want of text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sdk.backends.scrub import MAX_MESSAGE
from sdk.engine import Circuit, Engine
from tests.gateway.test_faults import (
    CATEGORY,
    DEAD_ROUTE,
    KEY_ENV,
    LEGS,
    ROWS,
    Leg,
    Row,
    _profile,
    expected,
    fault_policy,
    faulty_model,
)
from tests.gateway.test_hardening_upstream import Lines, captured_logs
from tests.support.fault_server import (
    Exchange,
    Fault,
    FaultServer,
    Status,
    StreamError,
    fault_server,
    refused_url,
)
from tests.support.gateway_server import running_gateway
from tests.support.secrets import fake_key, key_fragments

KEY = fake_key("gateway fault matrix")
"""The upstream key (51 characters)."""
PAD = "y" * (MAX_MESSAGE - 15)
"""Echoed text before the key: the 300-character cut falls 15 characters into it."""
BENCHES = 6
"""Gateways the matrix runs on at once, one case at a time each."""


def fragments(text: str) -> list[str]:
    """The runs of 8 characters of :data:`KEY` that ``text`` holds."""
    return key_fragments(KEY, text)


def _sent_key(ex: Exchange) -> str:
    return ex.request.headers.get("authorization", "").removeprefix("Bearer ")


@dataclass
class EchoingStatus(Status):
    """An error status whose message echoes the key it was sent, across the cut."""

    async def respond(self, ex: Exchange) -> bool:
        self.message = f"{PAD}{_sent_key(ex)} is not a valid key"
        return await Status.respond(self, ex)


@dataclass
class EchoingStreamError(StreamError):
    """An error event whose message echoes the key it was sent, across the cut."""

    async def respond(self, ex: Exchange) -> bool:
        self.error = {"message": f"{PAD}{_sent_key(ex)} is not a valid key", "type": "server_error"}
        return await StreamError.respond(self, ex)


def echoing(fault: Fault) -> Fault:
    """``fault``, echoing the key wherever it produces text."""
    if isinstance(fault, Status):
        return EchoingStatus(fault.status, retry_after=fault.retry_after, headers=fault.headers)
    if isinstance(fault, StreamError):
        return EchoingStreamError(after=fault.after)
    return fault


@dataclass
class Bench:
    servers: dict[str, FaultServer]
    http: httpx.AsyncClient


@contextmanager
def bench_on(profile: Path) -> Iterator[Bench]:
    """Two echoing fault servers, a refused port and a real gateway over them."""
    with fault_server("small") as student, fault_server("big") as frontier, refused_url() as dead:
        for server in (student, frontier):
            server.request_id_format = "req-{n} {authorization}"
        engine = Engine(
            fault_policy(student.base_url, frontier.base_url, dead, profile), circuit=Circuit(threshold=10**6)
        )
        with running_gateway(engine) as gateway:
            yield Bench({"student": student, "frontier": frontier}, httpx.AsyncClient(base_url=gateway.url))


@dataclass(frozen=True)
class Seen:
    """What the caller got in one case."""

    status: int
    text: str
    """The headers and the body."""


async def run_case(bench: Bench, row: Row, side: Leg) -> Seen:
    if row.make is not None:
        bench.servers[faulty_model(row, side)].script(*(echoing(row.make()) for _ in range(row.tries)))
    model = "auto" if row.make is not None else DEAD_ROUTE[side]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"{CATEGORY[side]}: say hello"}],
        "stream": row.mode == "stream",
    }
    try:
        async with asyncio.timeout(60):
            response = await bench.http.post("/v1/chat/completions", json=body, timeout=None)
    finally:
        for server in bench.servers.values():
            server.unscript()
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return Seen(response.status_code, f"{headers}\n\n{response.text}")


async def run_matrix(benches: list[Bench], cases: list[tuple[Row, Leg]]) -> dict[str, Seen]:
    todo, seen = list(cases), {}

    async def work(bench: Bench) -> None:
        async with bench.http:
            while todo:
                row, side = todo.pop()
                seen[case_id(row, side)] = await run_case(bench, row, side)

    await asyncio.gather(*(work(bench) for bench in benches))
    return seen


def case_id(row: Row, side: Leg) -> str:
    return f"{row.fault}-{row.mode}-{side}"


@dataclass
class Matrix:
    seen: dict[str, Seen]
    logs: Lines


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    profile = _profile(tmp_path_factory.mktemp("secrets") / "profile.json")
    with pytest.MonkeyPatch.context() as env, ExitStack() as stack:
        env.setenv(KEY_ENV, KEY)
        benches = [stack.enter_context(bench_on(profile)) for _ in range(BENCHES)]
        logs = stack.enter_context(captured_logs())  # after every uvicorn configured its loggers
        seen = asyncio.run(run_matrix(benches, [(row, side) for row in ROWS for side in LEGS]))
    return Matrix(seen, logs)


CASES = [pytest.param(row, side, id=case_id(row, side)) for row in ROWS for side in LEGS]


@pytest.mark.parametrize(("row", "side"), CASES)
def test_no_part_of_the_key_in_the_answer(matrix: Matrix, row: Row, side: Leg):
    seen = matrix.seen[case_id(row, side)]
    assert seen.status == expected(row, side).status, seen.text
    assert not fragments(seen.text), seen.text


def test_no_part_of_the_key_in_any_log_line(matrix: Matrix):
    assert len(matrix.seen) == len(CASES)
    assert "upstream answered" in matrix.logs.text, "the run logged the upstream's errors"
    leaked = [line for line in matrix.logs.lines if fragments(line)]
    assert not leaked, leaked[:3]


def test_every_fault_of_the_matrix_that_echoes_the_key_echoes_it_across_the_cut():
    echoes = [row for row in ROWS if row.secret_echo]
    assert echoes
    for row in echoes:
        assert row.make is not None
        assert isinstance(echoing(row.make()), (EchoingStatus, EchoingStreamError)), row.fault
