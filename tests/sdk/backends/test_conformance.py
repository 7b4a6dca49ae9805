"""The same behaviour, asked of every backend that can run here.

- ``transformers``: the tiny model in-process;
- ``openai``: ``OpenAIBackend`` against tests/support/model_server.py serving the tiny model;
- ``vllm``: ``OpenAIBackend`` against ``$BITRATE_VLLM_URL`` (``bitrate student serve`` of the
  tiny model, see ``make check-vllm-cpu``), else the in-process ``VLLMBackend`` where vLLM can
  run (a CUDA build with a GPU, or the CPU build: ``make check-vllm-cpu-inprocess``), else skipped.

Expected texts are never hard-coded: each case first asks the backend for its greedy
answer, then checks the other behaviours against it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from sdk.backends.base import Backend
from sdk.errors import BitrateError, RequestError, UpstreamStatusError
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest
from tests.sdk.backends.test_vllm_backend import vllm_engine_or_skip
from tests.support.tiny_model import CONTEXT

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Case:
    """A backend under test and the model directory whose tokenizer it uses."""

    backend: Backend
    model_dir: Path | None


def _openai(name: str, base_url: str, model: str) -> Backend:
    from sdk.backends.config import OpenAIConfig
    from sdk.backends.openai_http import OpenAIBackend

    return OpenAIBackend(name, OpenAIConfig(backend="openai", base_url=base_url, model=model, max_retries=0))


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["transformers", "openai", "vllm"])
async def case(request: pytest.FixtureRequest, tiny_model_dir: Path, tiny_backend: Backend):
    if request.param == "transformers":
        yield Case(tiny_backend, tiny_model_dir)
    elif request.param == "openai":
        from tests.support.model_server import serve_backend

        with serve_backend(tiny_backend) as url:
            backend = _openai("served", url, "tiny")
            yield Case(backend, tiny_model_dir)
            await backend.close()
    elif url := os.environ.get("BITRATE_VLLM_URL"):
        backend = _openai("vllm-server", url, os.environ.get("BITRATE_VLLM_MODEL", "tiny"))
        model_dir = os.environ.get("BITRATE_VLLM_MODEL_DIR")
        yield Case(backend, Path(model_dir) if model_dir else None)
        await backend.close()
    else:
        backend = vllm_engine_or_skip(tiny_model_dir)
        yield Case(backend, tiny_model_dir)
        await backend.close()


def req(text: str = "hi", **fields) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "tiny", "messages": [{"role": "user", "content": text}], **fields}
    )


async def collect(backend: Backend, request: ChatRequest) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in backend.stream(request)]


def streamed_text(chunks: list[ChatCompletionChunk], index: int = 0) -> str:
    return "".join(c.delta.content or "" for ch in chunks for c in ch.choices if c.index == index)


def finish_of(chunks: list[ChatCompletionChunk]) -> str | None:
    reasons = [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason]
    assert len(reasons) == 1, f"expected one finish_reason, got {reasons}"
    return reasons[0]


async def greedy(backend: Backend, text: str = "hi", **fields) -> ChatCompletion:
    return await backend.complete(req(text, temperature=0, max_tokens=120, **fields))


def is_caller_error(exc: BitrateError) -> bool:
    return isinstance(exc, RequestError) or (isinstance(exc, UpstreamStatusError) and exc.is_caller_fault)


async def test_greedy_stream_equals_complete(case: Case):
    whole = await greedy(case.backend)
    chunks = await collect(case.backend, req("hi", temperature=0, max_tokens=120, stream=True))
    assert whole.choices[0].message.content, "the tiny model answers something"
    assert streamed_text(chunks) == whole.choices[0].message.content
    assert finish_of(chunks) == whole.choices[0].finish_reason
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({ch.id for ch in chunks}) == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_string_cuts_before_it(case: Case, stream: bool):
    answer = (await greedy(case.backend)).choices[0].message.content
    assert len(answer) > 12, f"need a longer answer to pick a stop string from: {answer!r}"
    stop = answer[8:11]
    expected = answer[: answer.find(stop)]
    request = req("hi", temperature=0, max_tokens=120, stop=[stop, "\x07never"])
    if stream:
        chunks = await collect(case.backend, request.model_copy(update={"stream": True}))
        text, reason = streamed_text(chunks), finish_of(chunks)
    else:
        out = await case.backend.complete(request)
        text, reason = out.choices[0].message.content, out.choices[0].finish_reason
    assert (text, reason) == (expected, "stop")


async def test_max_tokens_gives_length(case: Case):
    out = await case.backend.complete(req("hi", temperature=0, max_tokens=5))
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 5
    full = (await greedy(case.backend)).choices[0].message.content
    assert full.startswith(out.choices[0].message.content)


async def test_usage_counts_templated_prompt(case: Case):
    if case.model_dir is None:
        pytest.skip("set BITRATE_VLLM_MODEL_DIR to the served model to count its prompt tokens")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(case.model_dir, local_files_only=True)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "count me in"}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    request = ChatRequest(model="tiny", messages=messages, temperature=0, max_tokens=120)
    out = await case.backend.complete(request)
    usage = out.usage
    assert usage.prompt_tokens == expected_prompt
    generated = len(tok(out.choices[0].message.content, add_special_tokens=False)["input_ids"])
    eos = 1 if out.choices[0].finish_reason == "stop" else 0
    assert usage.completion_tokens == generated + eos
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_include_usage_chunk_matches_complete(case: Case):
    chunks = await collect(
        case.backend,
        req("hi", temperature=0, max_tokens=30, stream=True, stream_options={"include_usage": True}),
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    whole = await case.backend.complete(req("hi", temperature=0, max_tokens=30))
    # OpenAI's usage may carry ``*_tokens_details`` or leave them out; null and absent are the
    # same answer (vLLM sends null in a completion and nothing in the usage chunk).
    assert last.usage.model_dump(exclude_none=True) == whole.usage.model_dump(exclude_none=True)


async def test_prompt_longer_than_context_is_caller_error(case: Case):
    with pytest.raises(BitrateError) as info:
        await case.backend.complete(req("x" * (CONTEXT + 10), max_tokens=5))
    assert is_caller_error(info.value), info.value


async def test_image_part_is_caller_error(case: Case):
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    request = ChatRequest(model="tiny", messages=[{"role": "user", "content": content}], max_tokens=5)
    with pytest.raises(BitrateError) as info:
        await case.backend.complete(request)
    assert is_caller_error(info.value), info.value


async def test_seed_reproduces_sampling(case: Case):
    request = req("hi", temperature=1.5, seed=11, max_tokens=25)
    first, second = await case.backend.complete(request), await case.backend.complete(request)
    assert first.choices[0].message.content == second.choices[0].message.content


async def test_concurrent_answers_equal_sequential(case: Case):
    prompts = ["hi", "What is 2+2?", "Tell me a story", "ok"]
    sequential = [(await greedy(case.backend, p)).choices[0].message.content for p in prompts]
    together = await asyncio.gather(*(greedy(case.backend, p) for p in prompts))
    assert [o.choices[0].message.content for o in together] == sequential
