"""Two gateways in a chain: the first reaches the second through its ``openai`` backend, as it
would a real frontier API (headers, streaming, usage and readiness all cross the hop).

The second gateway is a real server (the session's ``tiny_gateway``); the first runs in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sdk.policy import Policy
from tests.support.gateway_server import RunningServer
from tests.support.inprocess import InProcess, inprocess_gateway
from tests.support.tiny_model import ANSWER

pytestmark = pytest.mark.slow

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def front(tiny_gateway: RunningServer) -> AsyncIterator[InProcess]:
    """A gateway whose models are the tiny gateway's ``frontier`` and ``student``, over HTTP."""

    def remote(name: str, price: dict[str, float]) -> dict:
        return {"backend": "openai", "base_url": tiny_gateway.base_url, "model": name, "price": price}

    policy = Policy.model_validate(
        {
            "version": 1,
            "models": {
                "frontier": remote("frontier", {"input": 2.5, "output": 10}),
                "student": remote("student", {"input": 0.05, "output": 0.1}),
            },
            "routes": {"auto": {"student": "student", "frontier": "frontier", "tasks": {"detect": ["hint"]}}},
        }
    )
    async with inprocess_gateway(policy) as gateway:
        yield gateway


async def test_chained_completion_carries_the_first_gateways_metadata(front: InProcess):
    raw = await front.openai().chat.completions.with_raw_response.create(
        model="auto", messages=HI, temperature=0, extra_body={"bitrate": {"task": "chat"}}
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage.completion_tokens > 0
    assert raw.headers["x-bitrate-route"] == "auto" and raw.headers["x-bitrate-target"] == "frontier"
    assert completion.model_extra["bitrate"]["route"] == "auto"


async def test_chained_stream(front: InProcess):
    stream = await front.openai().chat.completions.create(
        model="student", messages=HI, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].model_extra["bitrate"]["route"] == "student"


async def test_chained_readiness(front: InProcess):
    assert (await front.http.get("/readyz")).status_code == 200
