"""The two architectures, saving in the shipped layout, and a batched greedy decoder.

Both models are ``GPT2LMHeadModel`` (learned absolute positions, which learn
these tasks far more readily than RoPE at this size, and an architecture vLLM
serves; head size 32 in both, which vLLM's attention kernels accept). The
student has fewer and narrower layers: under a quarter of the
teacher's parameters and at least twice its tokens per second.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STUDENT", "TEACHER", "Decoded", "ModelSpec", "greedy", "make_model", "n_params", "save_model"]

MAX_POSITIONS = 128


@dataclass(frozen=True)
class ModelSpec:
    """Size of one GPT-2-style model."""

    n_layer: int
    n_embd: int
    n_head: int


TEACHER = ModelSpec(n_layer=4, n_embd=128, n_head=4)
STUDENT = ModelSpec(n_layer=1, n_embd=64, n_head=2)


@dataclass
class Decoded:
    """A greedy answer: token ids (EOS included when reached) and, optionally, the
    logits that chose each of them (``[len(tokens), vocab]``)."""

    tokens: list[int]
    logits: object | None = None


def make_model(spec: ModelSpec, tokenizer, seed: int):
    """A freshly initialised model of size ``spec`` for ``tokenizer``'s vocabulary."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=MAX_POSITIONS,
        n_embd=spec.n_embd,
        n_layer=spec.n_layer,
        n_head=spec.n_head,
        n_inner=4 * spec.n_embd,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def n_params(model) -> int:
    """Number of parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def save_model(model, tokenizer, out_dir: Path, max_new_tokens: int = 32) -> None:
    """``save_pretrained`` (safetensors), a greedy generation config, the tokenizer."""
    from tokenizer import save_tokenizer
    from transformers import GenerationConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    model.save_pretrained(str(out_dir), safe_serialization=True)
    save_tokenizer(tokenizer, out_dir)


def greedy(
    model,
    prompts: list[list[int]],
    eos_id: int,
    max_new: int,
    *,
    batch_size: int = 256,
    keep_logits: bool = False,
) -> list[Decoded]:
    """Greedy answers for token-id ``prompts``, batched by equal prompt length (no padding)."""
    import torch

    results: list[Decoded | None] = [None] * len(prompts)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    model.eval()
    with torch.inference_mode():
        for idxs in by_len.values():
            for start in range(0, len(idxs), batch_size):
                chunk = idxs[start : start + batch_size]
                batch = torch.tensor([prompts[i] for i in chunk])
                for i, dec in zip(
                    chunk, _greedy_batch(model, batch, eos_id, max_new, keep_logits), strict=True
                ):
                    results[i] = dec
    return results  # type: ignore[return-value]


def _cache_kw(model) -> str:
    # transformers 5.2x renamed the cache argument; accept both spellings
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _greedy_batch(model, batch, eos_id: int, max_new: int, keep_logits: bool) -> list[Decoded]:
    import torch

    kw = _cache_kw(model)
    out = model(input_ids=batch, use_cache=True)
    past, logits = getattr(out, kw), out.logits[:, -1, :]
    steps_tok, steps_logits = [], []
    done = torch.zeros(batch.shape[0], dtype=torch.bool)
    for _ in range(max_new):
        nxt = logits.argmax(-1)
        steps_tok.append(nxt)
        if keep_logits:
            steps_logits.append(logits.to(torch.float16))
        done |= nxt == eos_id
        if bool(done.all()):
            break
        out = model(input_ids=nxt[:, None], use_cache=True, **{kw: past})
        past, logits = getattr(out, kw), out.logits[:, -1, :]
    toks = torch.stack(steps_tok, 1).tolist()
    lg = torch.stack(steps_logits, 1) if keep_logits else None
    decoded = []
    for row, seq in enumerate(toks):
        n = seq.index(eos_id) + 1 if eos_id in seq else len(seq)
        decoded.append(Decoded(seq[:n], lg[row, :n].clone() if lg is not None else None))
    return decoded
