"""Loading a local Hugging Face chat model and the token-level steps the worker runs.

Imported only by the transformers backend (it imports torch at module level).
The generation loop is hand-written (prefill, then one token at a time with the KV
cache, many sequences per forward pass: :mod:`sdk.backends.hf_batch`) rather than
``model.generate``: it streams, stops on strings, lets sequences join and leave
between any two tokens, and stops on cancel, with no streamer thread.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sdk.backends.config import TransformersConfig
from sdk.backends.sampling import GenerationDefaults, SamplingSpec
from sdk.embedded import resolve_model_path
from sdk.errors import ConfigError, InvalidRequest
from sdk.protocol import ChatRequest, TokenLogprob, TopLogprob, text_of

__all__ = ["LoadedModel", "load_model"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model and tokenizer ready to generate, with what the backend needs to know of them."""

    model: Any
    tokenizer: Any
    device: torch.device
    context: int | None
    eos_ids: frozenset[int]
    defaults: GenerationDefaults
    pad_id: int = 0
    """Token fed to rows that sit a step out (masked, so any id will do)."""
    cache_arg: str = "past_key_values"
    """The forward() keyword for the KV cache (``cache`` in newer transformers)."""

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        """The chat-templated prompt, tokenized (special tokens come from the template)."""
        import jinja2

        messages = [{"role": m.role, "content": text_of(m)} for m in request.messages]
        try:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except jinja2.TemplateError as exc:
            raise InvalidRequest(f"the model's chat template refused the messages: {exc}") from exc
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids`` without special tokens."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @torch.inference_mode()
    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> torch.Tensor:
        """Run ``ids`` (``[rows, n]``) after ``cache`` (which grows in place) with the attention
        ``mask`` over every column so far and each token's position; return the last position's
        next-token logits, float32 ``[rows, vocab]``."""
        kwargs = {self.cache_arg: cache}
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        return out.logits[:, -1].float()

    def token_logprob(self, logits: torch.Tensor, token: int, top: int) -> TokenLogprob:
        """The chosen token's log-probability under the raw model distribution, with ``top`` alternatives."""
        logp = torch.log_softmax(logits, dim=-1)
        alts = []
        if top:
            values, ids = torch.topk(logp, min(top, logp.shape[-1]))
            alts = [self._top(int(i), float(v)) for v, i in zip(values, ids, strict=True)]
        entry = self._top(token, float(logp[token]))
        return TokenLogprob(token=entry.token, logprob=entry.logprob, bytes=entry.bytes, top_logprobs=alts)

    def _top(self, token: int, logprob: float) -> TopLogprob:
        text = self.tokenizer.decode([token])
        return TopLogprob(token=text, logprob=logprob, bytes=list(text.encode("utf-8")))


def new_generator(spec: SamplingSpec, index: int, device: torch.device) -> torch.Generator | None:
    """A generator for choice ``index``: ``seed + index`` when seeded, else fresh entropy."""
    if spec.greedy:
        return None
    seed = spec.seed + index if spec.seed is not None else random.SystemRandom().getrandbits(63)
    return torch.Generator(device=device).manual_seed(seed)


def pick(logits: torch.Tensor, spec: SamplingSpec, generator: torch.Generator | None) -> int:
    """The next token: argmax when greedy, else temperature, top-k and top-p sampling."""
    if spec.greedy or generator is None:
        return int(torch.argmax(logits))
    scaled = logits / max(spec.temperature, 1e-5)
    if spec.top_k:
        kth = torch.topk(scaled, min(spec.top_k, scaled.shape[-1])).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if spec.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= spec.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def load_model(config: TransformersConfig) -> LoadedModel:
    """Load ``config.model`` from local files only; ``ConfigError`` when it is not a chat model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a server's log is no place for weight-loading progress bars
    path = Path(resolve_model_path(config.model))
    if not path.is_dir():
        raise ConfigError(f"model directory '{path}' does not exist", key="model")
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=_DTYPES[config.dtype])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"'{path}' is not a loadable causal-LM directory: {exc}", key="model") from exc
    if not tokenizer.chat_template:
        raise ConfigError(f"the tokenizer in '{path}' has no chat template", key="model")
    try:
        device = torch.device(config.device)
        model.to(device).eval()  # type: ignore[arg-type]  # transformers' stub of .to() drops self
    except (RuntimeError, AssertionError) as exc:
        raise ConfigError(f"cannot use device '{config.device}': {exc}", key="device") from exc
    eos = model.generation_config.eos_token_id if model.generation_config else None
    eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        context=getattr(model.config, "max_position_embeddings", None),
        eos_ids=frozenset(eos_ids),
        defaults=GenerationDefaults.from_generation_config(model.generation_config),
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0),
        cache_arg="cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values",
    )
