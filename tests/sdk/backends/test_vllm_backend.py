"""The vllm backend: its install hint everywhere; where vLLM can run, the engine itself.

vLLM runs on its CUDA build with a GPU, or on its CPU build in its own virtualenv
(``make check-vllm-cpu-inprocess``); elsewhere the engine tests skip. The shared behaviour
(greedy, stop, limits, usage, seeds, concurrency) is checked by test_conformance.py's ``vllm``
case; this module covers what is vLLM-specific.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sdk.backends import VLLMConfig, make_backend
from sdk.backends.sampling import GenerationDefaults, sampling_spec
from sdk.backends.vllm_engine import VLLMBackend
from sdk.errors import ConfigError
from sdk.protocol import ChatRequest

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def vllm_engine_or_skip(model_dir: Path) -> VLLMBackend:
    """The in-process engine on ``model_dir``; skips where vLLM cannot run here.

    On the CPU build the KV cache gets an explicit 1 GiB (``VLLM_CPU_KVCACHE_SPACE``) unless set:
    without it the worker reserves ``gpu_memory_utilization`` of the whole machine's memory and
    refuses to start when other processes hold some of it. Building the engine imports parts of
    torch that warn of their own deprecations; those are torch's to fix, not ours to fail on.
    """
    if not HAVE_VLLM:
        pytest.skip("vllm is not installed (make check-vllm-cpu-inprocess runs this on vLLM's CPU build)")
    from vllm.platforms import current_platform

    device = current_platform.device_type
    if device not in ("cuda", "cpu"):
        pytest.skip(f"vLLM has no device it can run on here ({device or 'none found'})")
    if device == "cpu":
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    config = VLLMConfig(backend="vllm", model=str(model_dir), gpu_memory_utilization=0.2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        return VLLMBackend("student", config)


def req(**fields) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "s", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_importing_the_backend_module_loads_no_vllm_or_torch():
    code = (
        "import sys, sdk.backends.vllm_engine\n"
        "print(','.join(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.skipif(HAVE_VLLM, reason="vllm is installed here")
def test_without_vllm_the_error_names_the_gpu_extra(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        make_backend("student", VLLMConfig(backend="vllm", model=str(tmp_path)))
    assert info.value.code == "dependency_missing"
    assert "pip install 'bitrate[gpu]'" in info.value.message


@pytest.mark.skipif(not HAVE_VLLM, reason="vllm is not installed")
def test_sampling_params_follow_the_spec():
    import vllm

    from sdk.backends.vllm_engine import sampling_params

    def params(**fields):
        spec = sampling_spec(
            req(**fields), defaults=GenerationDefaults(), default_max_tokens=64, prompt_tokens=5, context=100
        )
        return sampling_params(vllm, spec)

    greedy = params(temperature=0, stop=["x", "yz"], max_tokens=7, n=2, seed=5, logprobs=True, top_logprobs=2)
    assert greedy.temperature == 0.0 and greedy.max_tokens == 7 and greedy.seed == 5
    assert greedy.n == 1, "vLLM refuses n > 1 when greedy: the backend copies the one answer"
    assert params(temperature=0.5, n=3).n == 3
    assert list(greedy.stop) == ["x", "yz"] and not greedy.include_stop_str_in_output
    assert greedy.logprobs == 2
    assert params(max_tokens=500).max_tokens == 95, "clamped to the context"
    assert params(temperature=0.5, top_p=0.8).top_p == 0.8


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tiny_model_dir: Path) -> AsyncIterator[VLLMBackend]:
    backend = vllm_engine_or_skip(tiny_model_dir)
    yield backend
    await backend.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_engine_serves_logprobs_and_n(engine: VLLMBackend):
    assert await engine.health()
    out = await engine.complete(req(temperature=0, max_tokens=6, logprobs=True, top_logprobs=2))
    entries = out.choices[0].logprobs.content
    assert len(entries) == out.usage.completion_tokens
    assert "".join(e.token for e in entries) == out.choices[0].message.content
    assert all(len(e.top_logprobs) == 2 and e.logprob == e.top_logprobs[0].logprob for e in entries)
    many = await engine.complete(req(temperature=1.0, seed=1, max_tokens=5, n=3))
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert 3 <= many.usage.completion_tokens <= 15, "counted over the three choices"


@pytest.mark.asyncio(loop_scope="module")
async def test_greedy_n_gives_the_greedy_answer_n_times(engine: VLLMBackend):
    alone = await engine.complete(req(temperature=0, max_tokens=8))
    copies = await engine.complete(req(temperature=0, max_tokens=8, n=2))
    assert [c.message.content for c in copies.choices] == [alone.choices[0].message.content] * 2
    assert [c.index for c in copies.choices] == [0, 1]
    assert copies.usage.completion_tokens == 2 * alone.usage.completion_tokens


@pytest.mark.asyncio(loop_scope="module")
async def test_leaving_a_stream_early_aborts_it_in_the_engine(engine: VLLMBackend):
    stream = engine.stream(req(temperature=0, max_tokens=120, stream=True))
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                break
    assert engine._engine.get_num_unfinished_requests() == 0
    again = await engine.complete(req(temperature=0, max_tokens=120))
    assert again.choices[0].finish_reason == "stop", "the engine still serves after an abort"
