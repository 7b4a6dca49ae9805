"""The tiny model behind tests/support/model_server.py, called by the official ``openai`` client:
the server speaks the API faithfully (JSON, SSE, errors, models) and a client that hangs up
stops the generation."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import openai
import pytest

from sdk.backends.base import Backend
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest
from tests.support.model_server import serve_backend
from tests.support.tiny_model import ANSWER, CONTEXT


@pytest.fixture(scope="module")
def base_url(tiny_backend):
    with serve_backend(tiny_backend) as url:
        yield url


@pytest.fixture
async def client(base_url: str):
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as c:
        yield c


MESSAGES = [{"role": "user", "content": "hi"}]


async def test_models_lists_the_backend(client: openai.AsyncOpenAI):
    models = await client.models.list()
    assert [m.id for m in models.data] == ["tiny"]


async def test_json_and_sse_answers_agree(client: openai.AsyncOpenAI):
    whole = await client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0)
    assert whole.choices[0].message.content == ANSWER
    assert whole.usage.completion_tokens == len(ANSWER) + 1
    stream = await client.chat.completions.create(
        model="tiny", messages=MESSAGES, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


async def test_caller_errors_keep_their_status(client: openai.AsyncOpenAI):
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x" * CONTEXT}]
        )
    assert "context" in info.value.message
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="tiny", messages=MESSAGES, stream=True, n=0)


class Paced(Backend):
    """Streams the wrapped backend's chunks at most one per ``delay`` seconds, like a slow network."""

    def __init__(self, inner: Backend, delay: float):
        self.name, self.inner, self.delay = inner.name, inner, delay

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        return await self.inner.complete(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        async with contextlib.aclosing(self.inner.stream(request)) as chunks:
            async for chunk in chunks:
                yield chunk
                await asyncio.sleep(self.delay)

    async def health(self) -> bool:
        return await self.inner.health()


async def test_client_hanging_up_stops_generation(tiny_backend):
    """The reader is slow, so the worker is held a few tokens ahead; after the client hangs up
    it must stop there instead of finishing the answer."""
    before = tiny_backend.tokens_generated
    with serve_backend(Paced(tiny_backend, 0.05)) as url:
        async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="tiny", messages=MESSAGES, temperature=0, stream=True, max_tokens=200
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            await stream.close()
            deadline = time.monotonic() + 20
            while tiny_backend.active_sequences and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
    assert tiny_backend.active_sequences == 0
    assert tiny_backend.tokens_generated - before < len(ANSWER) // 2
