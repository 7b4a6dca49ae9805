"""Sequences that decode together: one padded KV cache, one forward pass per step.

Row ``r`` of a :class:`Rows` block is one sequence. Its keys and values sit in the
columns of one tensor per layer (``[rows, kv_heads, columns, head_dim]``, transformers'
``DynamicCache``), and ``mask[r, c]`` says whether column ``c`` holds one of its tokens:

- **join**: new prompts are prefilled together, left-padded to the longest; a block that
  joins a batch is left-padded to the batch's width, or the batch to the block's;
- **step**: every row gets one new column; a row that sits the step out (its reader is
  behind) gets a masked column and keeps its logits;
- **leave**: rows are dropped, then every column no remaining row uses, so the width
  stays that of the longest sequence present (plus the gaps of rows that sat steps out);
  a row taken out alone is compacted to exactly its tokens.

Positions are per row (``next_pos``), so padding and gaps never move a token: a row's
logits are the ones it gets alone, up to the rounding of a wider matrix product (float32:
within 1e-5 of the largest logit, so greedy answers are the same unless two top logits are
that close; half precision: within 2**-4; tests/sdk/backends/test_hf_batch.py holds both).
A model with sliding-window attention counts its window in columns, as transformers' own
padded ``generate`` does. Imported only by the transformers backend (it imports torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from transformers import DynamicCache

__all__ = ["Rows", "prefill"]

KV = list[tuple[torch.Tensor, torch.Tensor]]


class Forward(Protocol):
    """One forward pass over ``ids`` (``[rows, n]``) after ``cache``, which grows in place;
    returns the last position's logits as float32 ``[rows, vocab]`` (``LoadedModel.forward``)."""

    def __call__(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> torch.Tensor: ...


def _kv(cache: Any) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _cache(kv: KV) -> DynamicCache:
    return DynamicCache(ddp_cache_data=kv)


def _pad_left(t: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    """``t`` with ``columns`` zeros prepended along ``dim``."""
    if columns == 0:
        return t
    return F.pad(t, [0, 0] * (t.dim() - 1 - dim) + [columns, 0])


def _cat_padded(a: torch.Tensor, b: torch.Tensor, pad_a: int, pad_b: int) -> torch.Tensor:
    """Cache tensors of two blocks stacked by rows, each left-padded along the columns (dim 2)."""
    return torch.cat([_pad_left(a, pad_a, 2), _pad_left(b, pad_b, 2)])


@dataclass
class Rows:
    """A block of sequences sharing one padded KV cache, with each row's next-token logits."""

    cache: Any
    """transformers ``DynamicCache`` holding every row's keys and values."""
    mask: torch.Tensor
    """``[rows, columns]`` int64: 1 where the column holds the row's token."""
    next_pos: torch.Tensor
    """``[rows]`` int64: the position of each row's next token (its length so far)."""
    logits: torch.Tensor
    """``[rows, vocab]`` float32: each row's next-token logits."""

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    @property
    def width(self) -> int:
        return int(self.mask.shape[1])

    def greedy(self) -> list[int]:
        """Each row's most likely next token (one device sync for the whole block)."""
        return self.logits.argmax(-1).tolist()

    def step(self, forward: Forward, tokens: Sequence[int | None], pad_id: int) -> Rows:
        """Feed one token to every row (a row given ``None`` sits the step out unchanged); returns self."""
        device = self.mask.device
        moving = torch.tensor([t is not None for t in tokens], device=device)
        ids = torch.tensor([[pad_id if t is None else t] for t in tokens], device=device)
        self.mask = torch.cat([self.mask, moving[:, None].long()], dim=1)
        logits = forward(ids, self.mask, self.next_pos[:, None], self.cache)
        self.next_pos = self.next_pos + moving.long()
        everyone = all(t is not None for t in tokens)
        self.logits = logits if everyone else torch.where(moving[:, None], logits, self.logits)
        return self

    def select(self, rows: Sequence[int]) -> Rows:
        """These rows only, in this order, without the columns none of them uses."""
        index = torch.tensor(list(rows), device=self.mask.device, dtype=torch.long)
        kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in _kv(self.cache)]
        mask = self.mask.index_select(0, index)
        used = mask.any(0)
        if not bool(used.all()):
            columns = used.nonzero().squeeze(1)
            kv = [(k.index_select(2, columns), v.index_select(2, columns)) for k, v in kv]
            mask = mask.index_select(1, columns)
        return Rows(
            _cache(kv), mask, self.next_pos.index_select(0, index), self.logits.index_select(0, index)
        )

    @staticmethod
    def join(first: Rows, second: Rows) -> Rows:
        """``first``'s rows then ``second``'s, the narrower block left-padded to the wider."""
        width = max(first.width, second.width)
        a, b = width - first.width, width - second.width
        kv = [
            (_cat_padded(ka, kb, a, b), _cat_padded(va, vb, a, b))
            for (ka, va), (kb, vb) in zip(_kv(first.cache), _kv(second.cache), strict=True)
        ]
        return Rows(
            _cache(kv),
            torch.cat([_pad_left(first.mask, a, 1), _pad_left(second.mask, b, 1)]),
            torch.cat([first.next_pos, second.next_pos]),
            torch.cat([first.logits, second.logits]),
        )


def prefill(forward: Forward, prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> Rows:
    """Run ``prompts`` together (left-padded) and return them as a block of rows."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    cache = DynamicCache()
    logits = forward(ids, mask, positions, cache)
    return Rows(cache, mask, mask.sum(1), logits)
