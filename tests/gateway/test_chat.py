"""The gateway as an OpenAI endpoint: the official client (sync, async, streaming) against a real server.

The server is the session's ``tiny_gateway`` (uvicorn on 127.0.0.1, two tiny local models):
the sync client needs a socket, and ``test_chain.py`` reaches the same server as its upstream.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.gateway.promtext import sample
from tests.support.gateway_server import RunningServer
from tests.support.tiny_model import ANSWER

pytestmark = pytest.mark.slow

COPY = [{"role": "user", "content": "copy: abc"}]
OTHER = [{"role": "user", "content": "hi"}]


def test_route_answers_with_usage_metadata_and_headers(
    tiny_gateway: RunningServer, make_client: Callable[..., openai.OpenAI]
):
    raw = make_client(tiny_gateway).chat.completions.with_raw_response.create(
        model="auto", messages=COPY, temperature=0
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 0
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    meta = completion.model_extra["bitrate"]
    assert (meta["route"], meta["target"], meta["task"], meta["rule"]) == ("auto", "student", "copy", "pin")
    assert raw.headers["x-bitrate-route"] == "auto"
    assert raw.headers["x-bitrate-target"] == "student"
    assert raw.headers["x-bitrate-task"] == "copy"
    assert raw.headers["x-bitrate-reason"] == meta["reason"]


def test_undetected_task_goes_to_the_frontier(
    tiny_gateway: RunningServer, make_client: Callable[..., openai.OpenAI]
):
    raw = make_client(tiny_gateway).chat.completions.with_raw_response.create(
        model="auto", messages=OTHER, temperature=0, max_tokens=5
    )
    assert raw.headers["x-bitrate-target"] == "frontier"
    assert raw.headers["x-bitrate-task"] == "unknown"
    assert raw.parse().choices[0].finish_reason == "length"


def test_direct_model_name(tiny_gateway: RunningServer, make_client: Callable[..., openai.OpenAI]):
    completion = make_client(tiny_gateway).chat.completions.create(
        model="frontier", messages=OTHER, temperature=0
    )
    assert completion.choices[0].message.content == ANSWER
    assert completion.model_extra["bitrate"]["side"] == "direct"


def test_stream_with_usage_and_metadata_in_last_chunk(
    tiny_gateway: RunningServer, make_client: Callable[..., openai.OpenAI]
):
    raw = make_client(tiny_gateway).chat.completions.with_raw_response.create(
        model="auto", messages=COPY, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-bitrate-target"] == "student"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens > 0
    assert last.model_extra["bitrate"]["target"] == "student"
    assert all("bitrate" not in (c.model_extra or {}) for c in chunks[:-1])


async def test_async_client_plain_and_streaming(tiny_gateway: RunningServer):
    client = openai.AsyncOpenAI(base_url=tiny_gateway.base_url, api_key="unused", max_retries=0)
    async with client:
        completion = await client.chat.completions.create(model="student", messages=OTHER, temperature=0)
        stream = await client.chat.completions.create(
            model="student", messages=OTHER, temperature=0, stream=True
        )
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert completion.choices[0].message.content == ANSWER
    assert "".join(pieces) == ANSWER


def test_models_lists_routes_then_direct_models(
    tiny_gateway: RunningServer, make_client: Callable[..., openai.OpenAI]
):
    client = make_client(tiny_gateway)
    assert [m.id for m in client.models.list()] == ["auto", "frontier", "student"]
    assert client.models.retrieve("auto").model_extra["bitrate"] == {"kind": "route"}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_probes_and_metrics(tiny_gateway: RunningServer, make_client: Callable[..., openai.OpenAI]):
    make_client(tiny_gateway).chat.completions.create(
        model="auto", messages=COPY, temperature=0, max_tokens=4
    )
    assert httpx.get(f"{tiny_gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{tiny_gateway.url}/readyz")
    assert ready.status_code == 200
    metrics = httpx.get(f"{tiny_gateway.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert (
        sample(text, "bitrate_requests_total", route="auto", target="student", task="copy", status="200") >= 1
    )
    assert sample(text, "bitrate_cost_saved_dollars_total", route="auto", target="student") > 0
    assert sample(text, "bitrate_tokens_total", route="auto", target="student", kind="completion") >= 4
