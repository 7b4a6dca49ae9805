"""The vllm backend: its install hint everywhere; on a CUDA machine with vllm, the engine itself.

The shared behaviour (greedy, stop, limits, usage, seeds, concurrency) is checked by
test_conformance.py's ``vllm`` case; this module covers what is vLLM-specific.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from sdk.backends import VLLMConfig, make_backend
from sdk.backends.sampling import GenerationDefaults, sampling_spec
from sdk.errors import ConfigError
from sdk.protocol import ChatRequest

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


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
    assert greedy.temperature == 0.0 and greedy.max_tokens == 7 and greedy.n == 2 and greedy.seed == 5
    assert list(greedy.stop) == ["x", "yz"] and not greedy.include_stop_str_in_output
    assert greedy.logprobs == 2
    assert params(max_tokens=500).max_tokens == 95, "clamped to the context"
    assert params(temperature=0.5, top_p=0.8).top_p == 0.8


@pytest.mark.gpu
async def test_engine_serves_logprobs_and_n(tiny_model_dir: Path):
    if not HAVE_VLLM:
        pytest.skip("vllm is not installed")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    backend = make_backend(
        "student", VLLMConfig(backend="vllm", model=str(tiny_model_dir), gpu_memory_utilization=0.2)
    )
    try:
        assert await backend.health()
        out = await backend.complete(req(temperature=0, max_tokens=6, logprobs=True, top_logprobs=2))
        entries = out.choices[0].logprobs.content
        assert len(entries) == out.usage.completion_tokens
        assert "".join(e.token for e in entries) == out.choices[0].message.content
        many = await backend.complete(req(temperature=1.0, seed=1, max_tokens=5, n=3))
        assert [c.index for c in many.choices] == [0, 1, 2]
    finally:
        await backend.close()
