"""Streams through the gateway: a failure mid-stream, and a client that goes away.

The gateway runs in-process, except for the client that walks away mid-stream: that
needs a real connection to close (uvicorn on 127.0.0.1). The upstream is a real fault server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.gateway.conftest import upstream_policy
from tests.gateway.promtext import sample
from tests.support.fault_server import Drip, FaultServer, Status, StreamError, fault_server
from tests.support.gateway_server import running_gateway
from tests.support.inprocess import inprocess_gateway

BODY = {"model": "student", "messages": [{"role": "user", "content": "hi"}], "stream": True}
CHAT = "/v1/chat/completions"


@pytest.fixture
def upstream() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


def _events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


async def test_failure_mid_stream_sends_an_error_event_and_no_done(upstream: FaultServer):
    async with inprocess_gateway(upstream_policy(upstream.base_url)) as gateway:
        upstream.script(StreamError(after=2))
        response = await gateway.http.post(CHAT, json=BODY)
        events = _events(response.text)
        upstream.script(StreamError(after=2))
        with pytest.raises(openai.APIError, match="engine overloaded"):
            async for _ in await gateway.openai().chat.completions.create(**BODY):
                pass
        metrics = (await gateway.http.get("/metrics")).text
    assert response.status_code == 200
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert "'student'" in error["message"] and "engine overloaded" in error["message"]
    assert all("choices" in json.loads(e) for e in events[:-1])
    assert sample(
        metrics, "bitrate_requests_total", route="student", target="student", task="unknown", status="502"
    )


async def test_failure_before_the_first_chunk_is_a_status(upstream: FaultServer):
    async with inprocess_gateway(upstream_policy(upstream.base_url)) as gateway:
        upstream.script(Status(503))
        response = await gateway.http.post(CHAT, json=BODY)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"


async def test_clean_stream_ends_with_done_and_counts_time_to_first_token(upstream: FaultServer):
    async with inprocess_gateway(upstream_policy(upstream.base_url)) as gateway:
        events = _events((await gateway.http.post(CHAT, json=BODY)).text)
        metrics = (await gateway.http.get("/metrics")).text
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["bitrate"]["target"] == "student"
    assert (
        sample(metrics, "bitrate_time_to_first_token_seconds_count", route="student", target="student") == 1
    )


def test_client_disconnect_cancels_the_upstream_generation(upstream: FaultServer):
    with running_gateway(upstream_policy(upstream.base_url)) as gateway:
        upstream.script(Drip(delay=0.3, text="one two three four five six seven eight nine ten"))
        with httpx.stream("POST", f"{gateway.base_url}/chat/completions", json=BODY) as response:
            next(response.iter_lines())  # the first event is out: walk away
        deadline = time.monotonic() + 10
        while not upstream.streams_abandoned and time.monotonic() < deadline:
            time.sleep(0.05)
        metrics = httpx.get(f"{gateway.url}/metrics").text
    assert len(upstream.streams_abandoned) == 1
    assert sample(
        metrics, "bitrate_requests_total", route="student", target="student", task="unknown", status="499"
    )
