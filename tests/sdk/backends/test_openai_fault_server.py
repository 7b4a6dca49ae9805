"""The fault server itself, checked with the official ``openai`` client: it must look like the real API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.fault_server import FaultServer, Ok, Raw, Status, fault_server
from tests.support.fault_server.exchange import DEFAULT_TEXT

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server(model_id="served-model") as running:
        yield running


@pytest.fixture
def client(server: FaultServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-fault", max_retries=0, timeout=5) as opened:
        yield opened


def test_official_client_completion_stream_and_models(client, server):
    answer = client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.choices[0].message.content == DEFAULT_TEXT
    chunks = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    assert chunks[-1].usage.total_tokens == 10
    assert [m.id for m in client.models.list()] == ["served-model"]
    assert [r.route for r in server.requests] == ["chat", "chat", "models"]
    assert server.requests[0].headers["authorization"] == "Bearer sk-fault"


def test_scripted_errors_reach_the_official_client_as_its_own_classes(client, server):
    server.script(Status(429, message="slow down", retry_after=7), Status(400, message="bad field"))
    with pytest.raises(openai.RateLimitError, match="slow down") as limited:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.request_id == "req-1"
    with pytest.raises(openai.BadRequestError, match="bad field"):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_queues_are_per_route_and_unknown_paths_404(server):
    server.script(Status(500), route="models").script(Ok(text="chat is fine"))
    base = server.base_url
    assert httpx.get(f"{base}/models").status_code == 500
    assert httpx.post(f"{base}/chat/completions", json={"model": "m"}).json()["choices"][0]["message"] == {
        "role": "assistant",
        "content": "chat is fine",
    }
    assert httpx.get(f"{base}/nothing").status_code == 404


def test_raw_bytes_and_connection_counting(server):
    # Raw closes its connection, so the answer says so: a pooled client must not reuse it
    server.script(Raw(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"))
    with httpx.Client() as http:
        assert http.post(f"{server.base_url}/chat/completions", json={}).status_code == 204
        assert http.post(f"{server.base_url}/chat/completions", json={}).status_code == 200
    assert server.connections == 2  # Raw closes its connection
