"""What a chat request asks of a local generator, shared by the transformers and vLLM backends.

- :func:`sampling_spec` turns a :class:`~sdk.protocol.ChatRequest` into a
  :class:`SamplingSpec` (temperature 0 means greedy, ``None`` takes the model's
  generation defaults, the token limit is clamped to the context);
- :class:`StopMatcher` cuts a growing text at the first stop string and holds
  back any tail that could still become one, so a stream never shows stop text;
- :class:`IncrementalDecoder` turns token ids into text pieces without splitting
  a multi-byte character.

Nothing here imports torch: the vLLM backend builds its ``SamplingParams`` from
the same spec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sdk.errors import InvalidRequest, Unsupported
from sdk.protocol import ChatRequest

__all__ = [
    "GenerationDefaults",
    "IncrementalDecoder",
    "SamplingSpec",
    "StopMatcher",
    "check_text_only",
    "sampling_spec",
]


@dataclass(frozen=True)
class GenerationDefaults:
    """A model's own sampling defaults (its ``generation_config.json``)."""

    do_sample: bool = True
    """Sample (``True``) or decode greedily."""
    temperature: float = 1.0
    """Default temperature when sampling."""
    top_p: float = 1.0
    """Default nucleus mass."""
    top_k: int = 0
    """Default top-k cut (0: none)."""

    @classmethod
    def from_generation_config(cls, config: object | None) -> GenerationDefaults:
        """Read the defaults from a ``transformers.GenerationConfig`` (or ``None``)."""
        if config is None:
            return cls()
        return cls(
            do_sample=bool(getattr(config, "do_sample", True)),
            temperature=float(getattr(config, "temperature", None) or 1.0),
            top_p=float(getattr(config, "top_p", None) or 1.0),
            top_k=int(getattr(config, "top_k", None) or 0),
        )


@dataclass(frozen=True)
class SamplingSpec:
    """How to generate one request's choices."""

    greedy: bool
    """Pick the most likely token at every step."""
    temperature: float
    """Logit divisor when sampling (ignored when greedy)."""
    top_p: float
    """Nucleus mass when sampling."""
    top_k: int
    """Keep only the k most likely tokens when sampling (0: all); always the model's default."""
    max_new_tokens: int
    """Most tokens per choice, already clamped to the context."""
    stop: tuple[str, ...]
    """Stop strings; the text is cut before the first one found."""
    seed: int | None
    """Sampling seed (choice ``i`` uses ``seed + i``)."""
    n: int
    """Number of choices."""
    logprobs: bool
    """Return the chosen tokens' log-probabilities."""
    top_logprobs: int
    """Alternatives per position returned with ``logprobs``."""


def check_text_only(request: ChatRequest, backend: str) -> None:
    """Refuse what a text-only local model cannot serve, non-text parts and tools, as
    :class:`~sdk.errors.Unsupported` (on a route, the other side is asked instead)."""
    if request.tools:
        msg = f"model '{backend}' is a local text model and cannot call tools"
        raise Unsupported(msg, need="tools", param="tools")
    for i, message in enumerate(request.messages):
        if isinstance(message.content, list):
            for part in message.content:
                if part.type != "text":
                    raise Unsupported(
                        f"model '{backend}' is a local text model and cannot read '{part.type}' parts",
                        need="vision",
                        param=f"messages[{i}].content",
                    )


def sampling_spec(
    request: ChatRequest,
    *,
    defaults: GenerationDefaults,
    default_max_tokens: int,
    prompt_tokens: int,
    context: int | None,
) -> SamplingSpec:
    """The spec for ``request``; raises ``Unsupported`` (need ``context``) when the prompt leaves no room."""
    limit = request.token_limit or default_max_tokens
    if context is not None:
        room = context - prompt_tokens
        if room < 1:
            raise Unsupported(
                f"the prompt is {prompt_tokens} tokens, but the model's context is {context} tokens",
                need="context",
                param="messages",
                code="context_length_exceeded",
            )
        limit = min(limit, room)
    if request.temperature is None:
        greedy = not defaults.do_sample
        temperature = defaults.temperature
    else:
        greedy = request.temperature == 0.0
        temperature = request.temperature
    if request.top_logprobs and not request.logprobs:
        raise InvalidRequest("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    return SamplingSpec(
        greedy=greedy,
        temperature=temperature,
        top_p=request.top_p if request.top_p is not None else defaults.top_p,
        top_k=defaults.top_k,
        max_new_tokens=limit,
        stop=tuple(s for s in request.stop_list if s),
        seed=request.seed,
        n=request.n,
        logprobs=bool(request.logprobs),
        top_logprobs=request.top_logprobs or 0,
    )


class StopMatcher:
    """Feed text pieces; get back what is safe to show and whether a stop string was hit.

    Held back: the longest tail of the text that is a prefix of some stop string.
    A stop string can therefore only ever appear inside the held-back buffer.
    """

    def __init__(self, stops: Sequence[str]):
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False
        """True once a stop string was found (feed nothing more after that)."""

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that may be shown now."""
        if not self._stops:
            return piece
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = self._held_tail(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The held-back text, once generation ended without a stop string."""
        held, self._held = self._held, ""
        return held

    def _held_tail(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[len(text) - k :]):
                    longest = k
                    break
        return longest


class IncrementalDecoder:
    """Token ids in, text pieces out; waits while a multi-byte character is incomplete."""

    def __init__(self, decode: Callable[[list[int]], str]):
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, token_id: int) -> str:
        """Add one token; return the new text it completes (maybe empty)."""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""
