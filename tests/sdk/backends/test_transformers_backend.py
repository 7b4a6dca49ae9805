"""The transformers backend beyond the shared conformance cases: loading errors, n, logprobs,
sampling defaults, cancellation and closing. Uses the tiny model (tests/support/tiny_model.py)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdk.backends import TransformersConfig, make_backend
from sdk.errors import BackendUnavailable, ConfigError, InvalidRequest
from sdk.protocol import ChatRequest
from tests.support.tiny_model import ANSWER


def req(text: str = "hi", **fields) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "tiny", "messages": [{"role": "user", "content": text}], **fields}
    )


def config(model: str, **fields) -> TransformersConfig:
    return TransformersConfig(backend="transformers", model=model, threads=1, **fields)


async def wait_idle(backend, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while backend.active_sequences and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert backend.active_sequences == 0


def test_missing_directory_is_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        make_backend("tiny", config(str(tmp_path / "absent")))


def test_directory_without_a_model_is_config_error(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match="not a loadable"):
        make_backend("tiny", config(str(tmp_path)))


def test_model_without_chat_template_is_config_error(tiny_model_dir: Path, tmp_path: Path):
    model = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink()
    tok_config = json.loads((model / "tokenizer_config.json").read_text())
    tok_config.pop("chat_template")
    (model / "tokenizer_config.json").write_text(json.dumps(tok_config))
    with pytest.raises(ConfigError, match="no chat template"):
        make_backend("tiny", config(str(model)))


def test_without_torch_the_error_names_the_extra(tiny_model_dir: Path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from sdk.backends import make_backend, TransformersConfig\n"
        "from sdk.errors import DependencyMissing\n"
        "try:\n"
        f"    make_backend('t', TransformersConfig(backend='transformers', model={str(tiny_model_dir)!r}))\n"
        "except DependencyMissing as exc:\n"
        "    print(exc.extra, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("local "), out.stdout + out.stderr
    assert "pip install 'bitrate[local]'" in out.stdout


async def test_trained_tiny_model_answers_its_sentence_and_stops_on_eos(tiny_backend):
    out = await tiny_backend.complete(req(temperature=0, max_tokens=200))
    assert out.choices[0].message.content == ANSWER
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.completion_tokens == len(ANSWER) + 1, "one token per character, plus EOS"
    assert await tiny_backend.health()


async def test_n_choices_each_finish_and_usage_sums(tiny_backend):
    out = await tiny_backend.complete(req(temperature=1.0, seed=3, max_tokens=8, n=3))
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert all(c.finish_reason in ("stop", "length") for c in out.choices)
    assert out.usage.completion_tokens <= 3 * 8
    chunks = [ch async for ch in tiny_backend.stream(req(temperature=1.0, seed=3, max_tokens=8, n=3))]
    for choice in out.choices:
        text = "".join(c.delta.content or "" for ch in chunks for c in ch.choices if c.index == choice.index)
        assert text == choice.message.content, "seeded choices stream as they complete"


async def test_logprobs_cover_every_generated_token(tiny_backend):
    out = await tiny_backend.complete(req(temperature=0, max_tokens=6, logprobs=True, top_logprobs=3))
    entries = out.choices[0].logprobs.content
    assert len(entries) == out.usage.completion_tokens == 6
    assert "".join(e.token for e in entries) == out.choices[0].message.content
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token, "greedy picks the most likely token"
    plain = await tiny_backend.complete(req(temperature=0, max_tokens=6))
    assert plain.choices[0].logprobs is None


async def test_streamed_logprobs_match_complete(tiny_backend):
    whole = await tiny_backend.complete(req(temperature=0, max_tokens=10, logprobs=True))
    chunks = [ch async for ch in tiny_backend.stream(req(temperature=0, max_tokens=10, logprobs=True))]
    streamed = [e for ch in chunks for c in ch.choices if c.logprobs for e in c.logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in whole.choices[0].logprobs.content]


async def test_tools_are_refused(tiny_backend):
    with pytest.raises(InvalidRequest, match="cannot call tools"):
        await tiny_backend.complete(req(tools=[{"type": "function", "function": {"name": "f"}}]))


async def test_closing_a_stream_stops_generation(tiny_backend):
    await wait_idle(tiny_backend)
    before = tiny_backend.tokens_generated
    stream = tiny_backend.stream(req(temperature=0, max_tokens=200, stream=True))
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.aclose()
    await wait_idle(tiny_backend)
    generated = tiny_backend.tokens_generated - before
    assert generated < len(ANSWER) // 2, f"generated {generated} tokens after the reader left"


async def test_cancelling_the_reading_task_stops_generation(tiny_backend):
    await wait_idle(tiny_backend)
    before = tiny_backend.tokens_generated
    first = asyncio.Event()

    async def read() -> None:
        async for _ in tiny_backend.stream(req(temperature=0, max_tokens=200, stream=True)):
            first.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(read())
    await asyncio.wait_for(first.wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_idle(tiny_backend)
    assert tiny_backend.tokens_generated - before < len(ANSWER) // 2


async def test_closed_backend_is_unhealthy_and_refuses_requests(tiny_model_dir: Path):
    backend = make_backend("tiny", config(str(tiny_model_dir)))
    assert await backend.health()
    await backend.close()
    assert not await backend.health()
    with pytest.raises(BackendUnavailable):
        await backend.complete(req(max_tokens=2))


async def test_max_batch_size_caps_running_sequences(tiny_model_dir: Path):
    backend = make_backend("tiny", config(str(tiny_model_dir), max_batch_size=2))
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(backend.active_sequences)
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    try:
        outs = await asyncio.gather(
            *(backend.complete(req(p, temperature=0, max_tokens=20)) for p in "abcde")
        )
    finally:
        watcher.cancel()
        await backend.close()
    assert max(seen) <= 2
    assert {o.choices[0].message.content for o in outs} == {ANSWER[:20]}


async def test_a_reader_that_falls_behind_catches_up_in_larger_chunks(tiny_backend):
    await wait_idle(tiny_backend)
    stream = tiny_backend.stream(req(temperature=0, max_tokens=40, stream=True, logprobs=True))
    chunks = [await anext(stream), await anext(stream)]  # the role chunk and the first piece
    await asyncio.sleep(0.3)  # meanwhile the worker runs a window ahead of the reader
    chunks += [chunk async for chunk in stream]
    pieces = [c for ch in chunks for c in ch.choices if c.delta.content]
    assert "".join(c.delta.content for c in pieces) == ANSWER[:40]
    assert len(pieces) < 40, "the queued pieces came out together"
    assert [e.token for c in pieces for e in c.logprobs.content] == list(ANSWER[:40])
