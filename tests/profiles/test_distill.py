"""``bitrate student distill`` on the embedded pair: a few steps make a model directory that the
``transformers`` backend serves as it is; an interrupted run resumes from its checkpoint; LoRA is
merged; bad data is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitrate_cli import build_app
from profiles.distill import DistillConfig, distill, read_chat_jsonl
from profiles.distill.data import IGNORE, tokenise
from sdk.backends import TransformersConfig, make_backend
from sdk.errors import ConfigError
from sdk.protocol import ChatRequest

pytestmark = pytest.mark.slow

PAIRS = [("sort: dcba", "abcd"), ("double: ab", "aabb"), ("uppercase: abc", "ABC"), ("sort: zyx", "xyz")]


def _data(path: Path) -> Path:
    lines = [
        json.dumps({"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}]})
        for p, a in PAIRS * 4
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _answer(model_dir: Path, prompt: str) -> str:
    backend = make_backend(
        "next", TransformersConfig(backend="transformers", model=str(model_dir), threads=1)
    )
    try:
        request = ChatRequest(model="next", messages=[{"role": "user", "content": prompt}], max_tokens=8)
        completion = await backend.complete(request)
    finally:
        await backend.close()
    return completion.choices[0].message.content or ""


async def test_a_few_steps_make_a_model_directory_the_backend_serves(tmp_path):
    data, out = _data(tmp_path / "train.jsonl"), tmp_path / "next"
    args = [
        "student",
        "distill",
        "--data",
        str(data),
        "--base",
        "embedded:student",
        "--out",
        str(out),
        "--teacher",
        "embedded:teacher",
        "--max-steps",
        "3",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    assert "steps=3 " in result.output and "device=cpu" in result.output
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "checkpoints").exists()  # removed once the model is saved
    assert isinstance(await _answer(out, "sort: cba"), str)  # loads and answers through the backend


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    data, out = _data(tmp_path / "train.jsonl"), tmp_path / "next"
    base = {
        "data": data,
        "base": "embedded:student",
        "out": out,
        "batch_size": 4,
        "save_steps": 2,
        "lr": 1e-3,
    }
    first = distill(DistillConfig(**base, max_steps=2, keep_checkpoints=True), emit=lambda _: None)
    assert (first.steps, first.resumed_from) == (2, None)
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    with pytest.raises(ConfigError, match="--resume continues it"):
        distill(DistillConfig(**base, max_steps=4), emit=lambda _: None)
    lines: list[str] = []
    second = distill(DistillConfig(**base, max_steps=4, resume=True), emit=lines.append)
    assert (second.steps, second.resumed_from) == (4, 2)
    assert any("resuming from step 2" in line for line in lines)
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        distill(DistillConfig(**base, max_steps=4, resume=True), emit=lambda _: None)


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # peft's call
def test_lora_is_merged_into_a_plain_model_directory(tmp_path):
    pytest.importorskip("peft")
    data, out = _data(tmp_path / "train.jsonl"), tmp_path / "lora"
    result = distill(
        DistillConfig(
            data=data,
            base="embedded:student",
            out=out,
            lora=True,
            lora_rank=4,
            max_steps=2,
            batch_size=4,
            lr=1e-3,
        ),
        emit=lambda _: None,
    )
    assert result.steps == 2
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()


def test_only_the_assistant_tokens_carry_labels(tmp_path):
    from transformers import AutoTokenizer

    from sdk.embedded import model_dir

    tokenizer = AutoTokenizer.from_pretrained(model_dir("student"))
    data = tokenise(read_chat_jsonl(_data(tmp_path / "t.jsonl"))[:1], tokenizer, max_length=None)
    ids, labels = data.input_ids[0], data.labels[0]
    answer = [i for i, label in zip(ids, labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(answer) == "abcd<|end|>"  # the answer and its end-of-turn token
    assert tokenise(read_chat_jsonl(tmp_path / "t.jsonl"), tokenizer, max_length=5).dropped == 16


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"messages": [{"role": "user", "content": "x"}]}', "last message must be the assistant"),
        ('{"prompt": "x"}', "needs a non-empty 'messages' list"),
        ("not json", "not JSON"),
    ],
)
def test_bad_training_data_names_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n' + line
    )
    with pytest.raises(ConfigError, match=message) as caught:
        read_chat_jsonl(path)
    assert f"{path}:2" in str(caught.value)
