"""Encoding chat examples to token ids, batching them, and the probe suite file.

The fast encoder maps characters straight to ids; ``ChatCodec.check`` proves it
renders exactly what ``tokenizer.apply_chat_template`` renders.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tasks import CATEGORIES, Example

__all__ = ["ChatCodec", "make_suite", "pad_batch", "write_suite"]


class ChatCodec:
    """Prompt and answer token ids in the chat template's format, without Jinja per call."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.vocab = tokenizer.get_vocab()
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id
        self.user = self.vocab["<|user|>"]
        self.assistant = self.vocab["<|assistant|>"]

    def prompt(self, text: str) -> list[int]:
        """``<|user|>text<|end|><|assistant|>`` as ids."""
        return [self.user, *(self.vocab[c] for c in text), self.eos, self.assistant]

    def answer(self, text: str) -> list[int]:
        """``text<|end|>`` as ids."""
        return [*(self.vocab[c] for c in text), self.eos]

    def decode(self, ids: list[int]) -> str:
        """The answer text (special tokens dropped)."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def check(self, texts: list[str]) -> None:
        """Raise if the fast path disagrees with the tokenizer's own chat template."""
        for text in texts:
            msgs = [{"role": "user", "content": text}]
            ref = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True)
            ref = ref["input_ids"] if hasattr(ref, "keys") else ref
            if list(ref) != self.prompt(text):
                raise AssertionError(f"chat template mismatch for {text!r}")
            if self.tokenizer.decode(self.tokenizer.encode(text)) != text:
                raise AssertionError(f"tokenizer round trip fails for {text!r}")


def pad_batch(seqs: list[list[int]], pad: int):
    """Right-padded ``[B, L]`` long tensor."""
    import torch

    width = max(len(s) for s in seqs)
    return torch.tensor([s + [pad] * (width - len(s)) for s in seqs])


def make_suite(rng: random.Random, per_category: int) -> list[Example]:
    """``per_category`` distinct examples of every category."""
    items: list[Example] = []
    for cat in CATEGORIES:
        seen: set[str] = set()
        while len(seen) < per_category:
            prompt, answer = cat.make(rng)
            if prompt not in seen:
                seen.add(prompt)
                items.append(Example(cat.name, prompt, answer))
    return items


def write_suite(items: list[Example], path: Path) -> None:
    """The probe suite as JSONL: id, category, messages, reference, grader."""
    path.parent.mkdir(parents=True, exist_ok=True)
    counters: dict[str, int] = {}
    lines = []
    for ex in items:
        counters[ex.category] = counters.get(ex.category, 0) + 1
        row = {
            "id": f"{ex.category}-{counters[ex.category]:04d}",
            "category": ex.category,
            "messages": [{"role": "user", "content": ex.prompt}],
            "reference": ex.answer,
            "grader": "exact",
        }
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
