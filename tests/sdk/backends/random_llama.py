"""A small random-weight Llama for the batching tests, with the tiny test model's tokenizer.

Untrained, so each prompt gets its own (gibberish) greedy answer, unlike the trained tiny
model's one sentence. Its end-of-text output row is zero, so its logit is exactly 0 among
noise: a greedy answer never ends early and runs to its token limit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def build_random_llama(tokenizer_dir: Path, out: Path, *, seed: int = 0) -> Path:
    """Save a seeded 2-layer Llama (GQA: 4 query heads, 2 key/value heads) to ``out``."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, out / name)
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.normal_(std=0.5)  # logits spread wide: no near-ties for rounding to flip
        model.lm_head.weight[tokenizer.eos_token_id].zero_()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(out)
    return out
