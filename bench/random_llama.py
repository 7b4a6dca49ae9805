"""Random-weight Llama chat models for throughput benchmarks, built locally (no download).

The weights are seeded noise, so answers are gibberish, but every token costs what it
would in a trained model of the same shape. The tokenizer is the embedded student's
(103 tokens, character level, with a chat template). The output row of the end-of-text
token is zero, so its logit is exactly 0 while the other 102 are noise around 0: a greedy
answer never ends early, and every stream runs to its token limit.

Shapes (``SHAPES``):

- ``tiny``: about 87k parameters, for proving a benchmark script runs (tests do);
- ``cpu-17m``: about 17M parameters (hidden 512, 4 layers), the CPU benchmark's model;
- ``cpu-24x128``: 3.6M parameters in 24 thin layers, so a forward pass is mostly Python
  launching small operations, as on a GPU: the interpreter lock is what batching and the
  gateway compete for;
- ``qwen2.5-0.5b``: Qwen2.5-0.5B's shape (hidden 896, 24 layers, GQA 14/2) with the small
  vocabulary: about 358M parameters, the GPU check's model.

    .venv/bin/python bench/random_llama.py OUT_DIR [--shape cpu-17m]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "sdk" / "embedded" / "student"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

SHAPES: dict[str, dict[str, int]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    },
    "cpu-17m": {
        "hidden_size": 512,
        "intermediate_size": 2304,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
    },
    "cpu-24x128": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 24,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    },
    "qwen2.5-0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
    },
}
"""Model shapes by name (the rest of the config is shared: context 2048, untied output)."""

CONTEXT = 2048


def build_random_llama(
    out_dir: str | Path, shape: str = "cpu-17m", seed: int = 0, dtype: str = "float32"
) -> Path:
    """Save a seeded random-weight Llama of ``shape`` with the embedded tokenizer to ``out_dir``,
    its weights stored as ``dtype``."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(TOKENIZER / name, out / name)
    tok_config = out / "tokenizer_config.json"
    tok_config.write_text(json.dumps({**json.loads(tok_config.read_text()), "model_max_length": CONTEXT}))
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=CONTEXT,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        **SHAPES[shape],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id].zero_()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.to(getattr(torch, dtype)).save_pretrained(out)
    return out


def n_params(model_dir: str | Path) -> int:
    """Parameters of the model saved in ``model_dir`` (from its config, without loading weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    import torch

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="directory to write the model to")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="cpu-17m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    args = parser.parse_args()
    out = build_random_llama(args.out, args.shape, args.seed, args.dtype)
    print(f"{out} params={n_params(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
