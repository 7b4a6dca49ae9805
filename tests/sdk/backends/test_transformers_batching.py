"""The transformers backend's continuous batching, end to end: concurrent requests share
forward passes, join and leave between tokens, and each gets the answer it gets alone;
a slow reader holds nobody back; a failure stays with the jobs it touched.

On a random-weight Llama (tests/sdk/backends/random_llama.py): every prompt has its own
greedy answer, and answers run to their token limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sdk.backends import TransformersConfig, make_backend
from sdk.errors import BackendError
from sdk.protocol import ChatRequest
from tests.sdk.backends.random_llama import build_random_llama

PROMPTS = ["hi", "What is 2+2?", "Tell me a story about a fox and a dog", "ok", "Name three colours."]


@pytest.fixture(scope="module")
def random_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_llama(tiny_model_dir, tmp_path_factory.mktemp("random-llama"))


@pytest.fixture
async def backend(random_dir: Path) -> AsyncIterator:
    built = make_backend("rnd", TransformersConfig(backend="transformers", model=str(random_dir), threads=1))
    yield built
    await built.close()


def req(text: str, max_tokens: int = 20, **fields) -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "rnd",
            "messages": [{"role": "user", "content": text}],
            "max_tokens": max_tokens,
            "temperature": 0,
            **fields,
        }
    )


async def answer(backend, request: ChatRequest) -> str:
    return (await backend.complete(request)).choices[0].message.content


async def test_concurrent_requests_share_forward_passes(backend):
    before = backend.forward_passes
    outs = await asyncio.gather(*(backend.complete(req(p, 24)) for p in PROMPTS[:4]))
    assert all(o.usage.completion_tokens == 24 for o in outs)
    passes = backend.forward_passes - before
    assert passes < 2 * 24, f"{passes} forward passes for 4 x 24 tokens: not batched"


async def test_requests_joining_midway_answer_as_alone(backend):
    limits = [30, 12, 25, 8, 18]
    alone = [await answer(backend, req(p, n)) for p, n in zip(PROMPTS, limits, strict=True)]
    assert len(set(alone)) > 1, "the random model answers each prompt its own way"

    async def staggered(i: int) -> str:
        await asyncio.sleep(0.01 * i)  # arrive while the others are mid-answer
        return await answer(backend, req(PROMPTS[i], limits[i]))

    together = await asyncio.gather(*(staggered(i) for i in range(len(PROMPTS))))
    assert list(together) == alone


async def test_seeded_sampling_is_the_same_alone_or_together(backend):
    sampled = req("hi", 20, temperature=1.0, seed=5)
    alone = await answer(backend, sampled)
    together = await asyncio.gather(answer(backend, sampled), *(answer(backend, req(p, 20)) for p in PROMPTS))
    assert together[0] == alone


async def test_a_stalled_reader_holds_nobody_back_and_keeps_its_answer(backend):
    slow_request = req(PROMPTS[2], 60, stream=True)
    expected = await answer(backend, slow_request)
    slow = backend.stream(slow_request)
    pieces = [c.delta.content or "" async for chunk in _take(slow, 2) for c in chunk.choices]
    # the slow reader stops reading while another answer runs far past the window (it parks)
    other = await answer(backend, req(PROMPTS[0], 120))
    assert len(other) > 0
    pieces += [c.delta.content or "" async for chunk in slow for c in chunk.choices]
    assert "".join(pieces) == expected


async def _take(stream, n: int) -> AsyncIterator:
    for _ in range(n):
        yield await anext(stream)


async def test_a_failure_in_one_job_fails_that_job_only(backend, monkeypatch: pytest.MonkeyPatch):
    lm = backend._lm

    def broken(*args, **kwargs):
        raise RuntimeError("logprobs broke")

    monkeypatch.setattr(lm, "token_logprob", broken)
    failing = backend.complete(req("hi", 10, logprobs=True))
    fine = backend.complete(req("ok", 10))
    results = await asyncio.gather(failing, fine, return_exceptions=True)
    assert isinstance(results[0], BackendError)
    assert results[1].usage.completion_tokens == 10


async def test_a_failed_forward_pass_fails_its_batch_and_the_worker_goes_on(backend, monkeypatch):
    lm = backend._lm
    real = lm.forward

    def flaky(ids, *args):
        if ids.shape == (2, 1):  # the first step both requests share
            raise RuntimeError("device lost")
        return real(ids, *args)

    monkeypatch.setattr(lm, "forward", flaky)
    results = await asyncio.gather(
        *(backend.complete(req(p, 50)) for p in PROMPTS[:2]), return_exceptions=True
    )
    assert all(isinstance(r, BackendError) for r in results), results
    monkeypatch.setattr(lm, "forward", real)
    assert (await backend.complete(req("hi", 5))).usage.completion_tokens == 5
    assert await backend.health()


async def test_a_lone_slow_reader_gets_its_answer(backend):
    """Its row is the whole batch: while it sits out, no step runs at all."""
    request = req(PROMPTS[1], 50, stream=True)
    expected = await answer(backend, request)
    stream = backend.stream(request)
    pieces = [c.delta.content or "" async for chunk in _take(stream, 2) for c in chunk.choices]
    await asyncio.sleep(0.3)  # the worker runs a window ahead, then waits
    assert backend.active_sequences == 1
    pieces += [c.delta.content or "" async for chunk in stream for c in chunk.choices]
    assert "".join(pieces) == expected
