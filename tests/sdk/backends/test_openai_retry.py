"""Retry strategy objects, and the backend's retry loop over httpx.MockTransport with an instant sleep."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from sdk.backends.config import OpenAIConfig
from sdk.backends.openai_http import OpenAIBackend
from sdk.backends.retry import ExponentialBackoff, RetryOn, RetryPolicy, parse_retry_after
from sdk.errors import BackendError, BackendTimeout, BackendUnavailable, UpstreamStatusError
from sdk.protocol import ChatRequest

NOW = 1_700_000_000.0
REQUEST = ChatRequest(model="auto", messages=[{"role": "user", "content": "hi"}])
OK_BODY = {
    "id": "x",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": " 0.5 "}, 0.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers, now=lambda: NOW) == expected


def test_backoff_doubles_with_bounded_jitter_and_a_ceiling():
    no_jitter = ExponentialBackoff(initial=0.5, maximum=3.0, jitter=0.25, rng=lambda: 0.0)
    full_jitter = ExponentialBackoff(initial=0.5, maximum=3.0, jitter=0.25, rng=lambda: 0.999)
    assert [no_jitter(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert all(0 < full_jitter(n) - no_jitter(n) < 0.25 for n in (1, 2, 3))
    assert full_jitter(10) == 3.0


def status(code: int) -> UpstreamStatusError:
    return UpstreamStatusError("x", backend="b", upstream_status=code)


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (status(408), True),
        (status(429), True),
        (status(500), True),
        (status(503), True),
        (status(400), False),
        (status(401), False),
        (status(404), False),
        (status(422), False),
        (BackendUnavailable("refused", backend="b"), True),
        (BackendError("malformed response", backend="b"), False),
        (ValueError("a bug"), False),
    ],
)
def test_retry_on(error, retried):
    assert RetryOn().should_retry(error) is retried


def test_timeouts_are_retried_once_per_call():
    rule = RetryOn(max_timeout_retries=1)
    timeout = BackendTimeout("slow", backend="b")
    assert [rule.should_retry(timeout) for _ in range(3)] == [True, False, False]


class Scripted:
    """A MockTransport handler answering from a list; records what it saw."""

    def __init__(self, *answers: httpx.Response | Exception):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def backend(handler: Scripted, sleeps: list[float], **config) -> OpenAIBackend:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    cfg = OpenAIConfig(backend="openai", base_url="http://upstream.test/v1", model="m", **config)
    policy = RetryPolicy.from_config(cfg, backoff=ExponentialBackoff(0.5, 8.0, 0.0), sleep=sleep)
    return OpenAIBackend("front", cfg, retry=policy, transport=httpx.MockTransport(handler))


async def test_retry_after_is_honoured_and_capped_backoff_otherwise():
    handler = Scripted(
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(429, headers={"Retry-After": "120"}),
        httpx.Response(500),
        httpx.Response(200, json=OK_BODY),
    )
    sleeps: list[float] = []
    answer = await backend(handler, sleeps, max_retries=3, retry_after_cap=5.0).complete(REQUEST)
    assert answer.choices[0].message.content == "fine"
    assert sleeps == [2.0, 5.0, 2.0]  # Retry-After, Retry-After capped, backoff for try 3


async def test_gives_up_after_max_retries_with_the_last_error():
    handler = Scripted(*[httpx.Response(502, json={"error": {"message": "bad gateway"}})] * 3)
    sleeps: list[float] = []
    with pytest.raises(UpstreamStatusError, match="bad gateway") as info:
        await backend(handler, sleeps, max_retries=2).complete(REQUEST)
    assert info.value.upstream_status == 502
    assert len(handler.requests) == 3
    assert sleeps == [0.5, 1.0]


async def test_caller_fault_is_not_retried():
    handler = Scripted(httpx.Response(422, json={"error": {"message": "bad field"}}))
    with pytest.raises(UpstreamStatusError) as info:
        await backend(handler, []).complete(REQUEST)
    assert info.value.is_caller_fault
    assert len(handler.requests) == 1


async def test_read_timeout_retried_once_connect_error_until_max():
    timeouts = Scripted(*[httpx.ReadTimeout("slow")] * 3)
    with pytest.raises(BackendTimeout):
        await backend(timeouts, [], max_retries=2).complete(REQUEST)
    assert len(timeouts.requests) == 2

    refused = Scripted(*[httpx.ConnectError("refused")] * 4)
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        await backend(refused, [], max_retries=3).complete(REQUEST)
    assert len(refused.requests) == 4


async def test_no_retries_when_max_retries_is_zero():
    handler = Scripted(httpx.Response(503))
    with pytest.raises(UpstreamStatusError):
        await backend(handler, [], max_retries=0).complete(REQUEST)
    assert len(handler.requests) == 1
