"""The circuit breaker: opens after N backend failures, fails fast, probes back after the cooldown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sdk.backends import OpenAIConfig
from sdk.backends.base import Backend
from sdk.backends.circuit import CircuitBackend, CircuitBreaker, open_circuits, wrap_backends
from sdk.backends.openai_http import OpenAIBackend
from sdk.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    InvalidRequest,
    UpstreamStatusError,
)
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest
from tests.support.fault_server import Ok, Status, Truncated, fault_server

REQ = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted(Backend):
    """A backend answering from a script: an exception to raise, or ``None`` for a good answer."""

    def __init__(self, *script: BaseException | None) -> None:
        self.name = "m"
        self.script = list(script)
        self.calls = 0
        self.closed = False

    def _next(self) -> BaseException | None:
        self.calls += 1
        return self.script.pop(0) if self.script else None

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        exc = self._next()
        if exc is not None:
            raise exc
        return ChatCompletion.model_validate(
            {
                "id": "c",
                "created": 0,
                "model": "m",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                ],
            }
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        exc = self._next()
        for i in range(3):
            if exc is not None and i == 1:
                raise exc
            yield ChatCompletionChunk.model_validate(
                {"id": "c", "created": 0, "model": "m", "choices": [{"index": 0, "delta": {"content": "x"}}]}
            )

    async def health(self) -> bool:
        return True

    async def close(self) -> None:
        self.closed = True


def down(message: str = "down") -> BackendUnavailable:
    return BackendUnavailable(message, backend="m")


async def test_opens_after_threshold_consecutive_failures_and_fails_fast():
    inner = Scripted(down(), down(), down())
    backend = CircuitBackend(inner, threshold=3, cooldown=10, clock=Clock())
    for _ in range(3):
        assert backend.state == "closed"
        with pytest.raises(BackendUnavailable):
            await backend.complete(REQ)
    assert backend.state == "open" and backend.is_open
    with pytest.raises(BackendUnavailable) as caught:
        await backend.complete(REQ)
    assert caught.value.code == "circuit_open" and caught.value.backend == "m"
    assert "circuit open" in caught.value.message
    assert inner.calls == 3, "an open circuit must not call the backend"


async def test_a_success_resets_the_count():
    inner = Scripted(down(), down(), None, down(), down())
    backend = CircuitBackend(inner, threshold=3, cooldown=10, clock=Clock())
    for expected_error in (True, True, False, True, True):
        if expected_error:
            with pytest.raises(BackendUnavailable):
                await backend.complete(REQ)
        else:
            await backend.complete(REQ)
    assert backend.state == "closed" and backend.breaker.failures == 2


@pytest.mark.parametrize(
    "exc",
    [
        InvalidRequest("bad field"),
        UpstreamStatusError("bad request", backend="m", upstream_status=400),
        UpstreamStatusError("not found", backend="m", upstream_status=404),
    ],
)
async def test_caller_faults_never_open_it(exc: Exception):
    inner = Scripted(*[exc] * 5)
    backend = CircuitBackend(inner, threshold=2, cooldown=10, clock=Clock())
    for _ in range(5):
        with pytest.raises(type(exc)):
            await backend.complete(REQ)
    assert backend.state == "closed" and inner.calls == 5


@pytest.mark.parametrize(
    "exc",
    [
        BackendTimeout("slow", backend="m"),
        UpstreamStatusError("busy", backend="m", upstream_status=429),
        UpstreamStatusError("boom", backend="m", upstream_status=500),
        BackendError("malformed response", backend="m"),
    ],
)
async def test_every_backend_error_counts(exc: Exception):
    backend = CircuitBackend(Scripted(exc, exc), threshold=2, cooldown=10, clock=Clock())
    for _ in range(2):
        with pytest.raises(type(exc)):
            await backend.complete(REQ)
    assert backend.is_open


async def test_half_open_probe_success_closes():
    clock = Clock()
    inner = Scripted(down(), down())
    backend = CircuitBackend(inner, threshold=2, cooldown=10, clock=clock)
    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            await backend.complete(REQ)
    clock.now += 9.9
    assert backend.state == "open" and backend.breaker.retry_in() == pytest.approx(0.1)
    clock.now += 0.2
    assert backend.state == "half_open" and not backend.is_open
    await backend.complete(REQ)
    assert backend.state == "closed" and inner.calls == 3


async def test_half_open_probe_failure_reopens_for_a_full_cooldown():
    clock = Clock()
    inner = Scripted(down(), down(), down())
    backend = CircuitBackend(inner, threshold=2, cooldown=10, clock=clock)
    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            await backend.complete(REQ)
    clock.now += 10
    with pytest.raises(BackendUnavailable) as caught:
        await backend.complete(REQ)
    assert caught.value.code != "circuit_open", "the probe reached the backend"
    assert backend.state == "open" and backend.breaker.retry_in() == pytest.approx(10)
    clock.now += 10
    await backend.complete(REQ)
    assert backend.state == "closed" and inner.calls == 4


class Gate(Scripted):
    """Each call waits for ``release`` before answering well."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        await self.release.wait()
        return await super().complete(request)


async def test_only_one_probe_at_a_time():
    clock = Clock()
    breaker = CircuitBreaker(1, 5, clock=clock)
    breaker.acquire()
    breaker.record(True)
    clock.now += 5
    inner = Gate()
    backend = CircuitBackend(inner, breaker)
    probe = asyncio.create_task(backend.complete(REQ))
    await asyncio.sleep(0)
    assert backend.is_open, "a probe is in flight: others fail fast"
    with pytest.raises(BackendUnavailable, match="a probe is in flight"):
        await backend.complete(REQ)
    inner.release.set()
    await probe
    assert backend.state == "closed"


async def test_a_cancelled_probe_frees_the_slot():
    clock = Clock()
    breaker = CircuitBreaker(1, 5, clock=clock)
    breaker.acquire()
    breaker.record(True)
    clock.now += 5
    backend = CircuitBackend(Gate(), breaker)
    probe = asyncio.create_task(backend.complete(REQ))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert backend.state == "half_open", "neither success nor failure: the next call probes"


async def test_stream_failing_mid_way_counts_and_a_full_stream_closes():
    clock = Clock()
    inner = Scripted(down(), down(), None)
    backend = CircuitBackend(inner, threshold=2, cooldown=1, clock=clock)
    for _ in range(2):
        with pytest.raises(BackendUnavailable):
            [c async for c in backend.stream(REQ)]
    assert backend.is_open
    with pytest.raises(BackendUnavailable, match="circuit open"):
        [c async for c in backend.stream(REQ)]
    clock.now += 1
    assert len([c async for c in backend.stream(REQ)]) == 3
    assert backend.state == "closed"


async def test_a_stream_closed_early_counts_as_neither():
    backend = CircuitBackend(Scripted(), threshold=1, cooldown=1, clock=Clock())
    stream = backend.stream(REQ)
    await anext(stream)
    await stream.aclose()
    assert backend.state == "closed" and backend.breaker.failures == 0


async def test_wrap_and_open_circuits_and_close():
    a, b = Scripted(down()), Scripted()
    wrapped = wrap_backends({"a": a, "b": b}, threshold=1, cooldown=5, clock=Clock())
    assert wrap_backends(wrapped)["a"] is wrapped["a"], "wrapping twice keeps one circuit"
    assert open_circuits(wrapped) == frozenset()
    with pytest.raises(BackendUnavailable):
        await wrapped["a"].complete(REQ)
    assert open_circuits(wrapped) == {"a"}
    assert await wrapped["a"].health() is True, "health is the backend's, not the circuit's"
    await wrapped["a"].close()
    assert a.closed and "state='open'" in repr(wrapped["a"])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1)
    with pytest.raises(ValueError):
        CircuitBreaker(1, -1)


async def test_against_a_real_upstream_stops_sending_then_probes_back():
    clock = Clock()
    with fault_server() as upstream:
        upstream.script(Status(500), Status(500), Truncated(), Ok())
        config = OpenAIConfig(backend="openai", base_url=upstream.base_url, model="m", max_retries=0)
        backend = CircuitBackend(OpenAIBackend("student", config), threshold=3, cooldown=30, clock=clock)
        try:
            for _ in range(2):
                with pytest.raises(UpstreamStatusError):
                    await backend.complete(REQ)
            with pytest.raises(BackendError, match="truncated"):
                [c async for c in backend.stream(REQ)]
            assert backend.is_open
            for _ in range(5):
                with pytest.raises(BackendUnavailable, match="circuit open"):
                    await backend.complete(REQ)
            assert len(upstream.chat_requests) == 3, "the upstream saw nothing while the circuit was open"
            clock.now += 30
            answer = await backend.complete(REQ)
            assert answer.choices[0].message.content and backend.state == "closed"
            assert len(upstream.chat_requests) == 4
        finally:
            await backend.close()
