"""The openai backend against a real local server that fails on cue, over both transports."""

from __future__ import annotations

import asyncio
import time

import pytest

from sdk.backends import make_backend
from sdk.backends.config import OpenAIConfig
from sdk.backends.openai_http import OpenAIBackend
from sdk.backends.retry import ExponentialBackoff, RetryPolicy
from sdk.backends.transports import TRANSPORTS as TRANSPORT_FACTORIES
from sdk.backends.transports import make_transport
from sdk.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError, UpstreamStatusError
from sdk.protocol import ChatRequest
from tests.support.fault_server import (
    Drop,
    Hang,
    Malformed,
    Ok,
    ResetMidBody,
    Status,
    WrongContentType,
    refused_url,
)
from tests.support.fault_server.exchange import DEFAULT_TEXT

KEY = "sk-test-7f3a9c-secret"
TRANSPORTS = sorted(TRANSPORT_FACTORIES)


def build(base_url: str, **config) -> OpenAIBackend:
    """A backend with fast backoff (real sleeps, so Retry-After is really waited for)."""
    values = {"api_key_env": "FAULT_API_KEY", "timeout": 0.5, "max_retries": 2, **config}
    cfg = OpenAIConfig(backend="openai", base_url=base_url, model="upstream-model", **values)
    policy = RetryPolicy.from_config(cfg, backoff=ExponentialBackoff(initial=0.01, maximum=0.05, jitter=0.01))
    return OpenAIBackend("frontier", cfg, retry=policy)


def chat(**fields) -> ChatRequest:
    return ChatRequest(model="auto", messages=[{"role": "user", "content": "hello"}], **fields)


async def test_complete_sends_key_model_and_unknown_fields(backend, server):
    answer = await backend.complete(chat(temperature=0.1, reasoning_effort="low", bitrate={"task": "qa"}))
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert answer.model_extra == {"system_fingerprint": "fp_fault"}
    [seen] = server.chat_requests
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.json == {
        "model": "upstream-model",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.1,
        "reasoning_effort": "low",
        "stream": False,
    }


async def test_one_pooled_connection_for_sequential_calls(backend, server):
    for _ in range(5):
        await backend.complete(chat())
    assert server.connections == 1


async def test_max_connections_bounds_concurrency(server, transport):
    async with build(server.base_url, transport=transport, max_connections=2) as small:
        answers = await asyncio.gather(*(small.complete(chat()) for _ in range(12)))
    assert len(answers) == 12
    assert server.max_open <= 2


async def test_503_retry_after_is_waited_for(backend, server):
    server.script(Status(503, retry_after=1))
    start = time.monotonic()
    answer = await backend.complete(chat())
    assert time.monotonic() - start >= 0.9
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert len(server.chat_requests) == 2


async def test_retry_after_above_the_cap_is_capped(server):
    server.script(Status(503, retry_after=30))
    async with build(server.base_url, retry_after_cap=0.2) as capped:
        start = time.monotonic()
        await capped.complete(chat())
    assert 0.15 <= time.monotonic() - start < 5
    assert len(server.chat_requests) == 2


async def test_429_then_ok(backend, server):
    server.script(Status(429, message="slow down"))
    assert (await backend.complete(chat())).choices[0].message.content == DEFAULT_TEXT
    assert len(server.chat_requests) == 2


async def test_500_500_then_ok_takes_three_requests(backend, server):
    server.script(Status(500), Status(500), Ok(text="third time"))
    assert (await backend.complete(chat())).choices[0].message.content == "third time"
    assert len(server.chat_requests) == 3


async def test_400_is_the_callers_fault_and_not_retried(backend, server):
    server.script(Status(400, message="messages[0].content is too long"))
    with pytest.raises(UpstreamStatusError) as info:
        await backend.complete(chat())
    error = info.value
    assert error.is_caller_fault and error.upstream_status == 400
    assert error.request_id == "req-1"
    assert error.backend == "frontier"
    assert "messages[0].content is too long" in str(error)
    assert len(server.chat_requests) == 1


async def test_hang_past_the_timeout_is_retried_once_then_times_out(backend, server):
    server.script(Hang(10), Hang(10), Hang(10))
    start = time.monotonic()
    with pytest.raises(BackendTimeout, match="no answer within 0.5s"):
        await backend.complete(chat())
    assert time.monotonic() - start < 3.0  # two tries of 0.5 s plus backoff
    assert len(server.chat_requests) == 2


LOSSES = [Drop(), Drop(reset=True), ResetMidBody()]


@pytest.mark.parametrize("fault", LOSSES, ids=["close", "reset", "mid-body"])
async def test_lost_connection_is_retried_then_unavailable(backend, server, fault):
    server.script(fault, fault, fault)
    with pytest.raises(BackendUnavailable, match="connection lost") as info:
        await backend.complete(chat())
    assert info.value.status == 503
    assert len(server.chat_requests) == 3


async def test_lost_connection_then_ok(backend, server):
    server.script(Drop(), ResetMidBody())
    assert (await backend.complete(chat())).choices[0].message.content == DEFAULT_TEXT


async def test_refused_connection_is_unavailable(transport):
    with refused_url() as url:
        async with build(url, transport=transport) as nowhere:
            with pytest.raises(BackendUnavailable, match="cannot connect"):
                await nowhere.complete(chat())
            assert await nowhere.health() is False


@pytest.mark.parametrize("fault", [Malformed(), WrongContentType()], ids=["bad-json", "html"])
async def test_malformed_answer_is_not_retried(backend, server, fault):
    server.script(fault)
    with pytest.raises(BackendError, match="malformed response") as info:
        await backend.complete(chat())
    assert info.value.code == "bad_upstream_response"
    assert len(server.chat_requests) == 1


async def test_the_key_never_shows(backend, server):
    server.script(Status(401, message=f"Incorrect API key provided: {KEY}."))
    with pytest.raises(UpstreamStatusError) as info:
        await backend.complete(chat())
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value) and KEY not in str(info.value.to_body())
    assert KEY not in repr(backend)
    assert not info.value.is_caller_fault  # a refused key is the gateway's fault, not the caller's


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("FAULT_API_KEY")
    with pytest.raises(ConfigError, match="FAULT_API_KEY"):
        build("http://127.0.0.1:9/v1")


def test_make_backend_builds_it_and_rejects_a_bad_url():
    cfg = OpenAIConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m")
    assert isinstance(make_backend("frontier", cfg), OpenAIBackend)
    with pytest.raises(ConfigError, match="base_url"):
        make_backend("frontier", cfg.model_copy(update={"base_url": "127.0.0.1:9/v1"}))


async def test_health(backend, server):
    assert await backend.health() is True
    assert server.requests[-1].path == "/v1/models"
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    server.script(Status(500), Hang(10), route="models")
    assert await backend.health() is False
    start = time.monotonic()
    assert await backend.health() is False
    assert time.monotonic() - start < 3.0


async def test_close_is_idempotent_and_the_backend_reopens(backend):
    await backend.close()
    await backend.close()
    assert (await backend.complete(chat())).choices[0].message.content == DEFAULT_TEXT


def test_transport_choice_is_one_registry():
    assert TRANSPORTS == ["aiohttp", "httpx"]
    assert OpenAIConfig.model_fields["transport"].default == "aiohttp"
    unknown = OpenAIConfig.model_construct(transport="h3")  # past validation, which rejects it
    with pytest.raises(ConfigError, match="unknown transport 'h3'"):
        make_transport(unknown)
