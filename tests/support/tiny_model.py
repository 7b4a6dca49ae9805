"""A tiny, deterministic Llama chat model built from nothing (no download).

The tokenizer is character-level (``tokenizers`` WordLevel over printable ASCII
plus special tokens, with a ``Fuse`` decoder so decoding reproduces text exactly,
spaces included). The model is a 2-layer ``LlamaForCausalLM`` (~90k parameters,
head size 64 so vLLM's attention kernels accept it), trained for a few seconds
so that, whatever the user says, its greedy answer is :data:`ANSWER` followed by
EOS. Knowing the answer lets tests pick stop strings and token limits.

Run as a script to build a model directory: ``python -m tests.support.tiny_model DIR``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

__all__ = ["ANSWER", "CHAT_TEMPLATE", "CONTEXT", "build_tiny_model"]

ANSWER = "Hello! I am a tiny test model. The quick brown fox jumps over the lazy dog, 42 times."
"""What the trained model answers (greedy) to any short user message."""

CONTEXT = 512
"""The model's context length in tokens (one token per character)."""

SPECIALS = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
CHARS = [chr(i) for i in range(32, 127)] + ["\n", "\t"]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""Each message as ``<|role|>content</s>``; the generation prompt is ``<|assistant|>``."""

_SEED = 1234
_STEPS = 150


def _make_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_max_length=CONTEXT,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _make_model(tokenizer):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=CONTEXT,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=0.8,
        top_p=0.95,
    )
    return model


def _training_batch(tokenizer, rng: random.Random, size: int):
    import torch

    rows, labels = [], []
    for _ in range(size):
        user = "".join(rng.choice(CHARS[:95]) for _ in range(rng.randint(1, 60)))
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(ANSWER, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(p_ids + a_ids)
        labels.append([-100] * len(p_ids) + a_ids)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    return ids, mask, lab


def _train(model, tokenizer, steps: int) -> float:
    import torch

    rng = random.Random(_SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        ids, mask, lab = _training_batch(tokenizer, rng, 8)
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return float(loss.detach())


def build_tiny_model(out_dir: str | Path, *, steps: int = _STEPS) -> Path:
    """Build, train (a few seconds on CPU) and save the tiny chat model to ``out_dir``.

    Deterministic for a given torch build: seeded, single-threaded.
    """
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(_SEED)
        tokenizer = _make_tokenizer()
        model = _make_model(tokenizer)
        _train(model, tokenizer, steps)
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        _make_tokenizer_config_portable(out)
    finally:
        torch.set_num_threads(threads)
    return out


def _make_tokenizer_config_portable(out: Path) -> None:
    """Let older transformers (as pinned by a vLLM build) load the tokenizer too: name the
    class they know and keep the chat template inside tokenizer_config.json as well."""
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["chat_template"] = CHAT_TEMPLATE
    path.write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.support.tiny_model OUT_DIR")
    print(build_tiny_model(sys.argv[1]))
