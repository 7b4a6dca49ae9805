"""From a local generator's events to wire objects, shared by the transformers and vLLM backends.

A generator reports, per choice, :class:`Piece` (new text, already cut at stop
strings) and one :class:`Finished` (why it ended, how many tokens). The two
functions here assemble those into a :class:`~sdk.protocol.ChatCompletion` or a
stream of :class:`~sdk.protocol.ChatCompletionChunk`: a first chunk with role
``assistant`` per choice, one chunk per piece, a last chunk with
``finish_reason``, and a usage chunk when asked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from sdk.errors import BitrateError
from sdk.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    ResponseMessage,
    TokenLogprob,
    Usage,
    new_completion_id,
)

__all__ = ["Failed", "Finished", "Piece", "complete_from", "stream_from"]


@dataclass
class Piece:
    """New text of choice ``index``, with the log-probabilities of the tokens it covers."""

    index: int
    text: str
    logprobs: list[TokenLogprob] | None = None

    def then(self, later: Piece) -> Piece:
        """This piece followed by ``later`` (of the same choice) as one."""
        logprobs = None if self.logprobs is None else self.logprobs + (later.logprobs or [])
        return Piece(self.index, self.text + later.text, logprobs)


@dataclass
class Finished:
    """Choice ``index`` ended: ``reason`` is ``stop`` or ``length``; ``tokens`` were generated."""

    index: int
    reason: str
    tokens: int


@dataclass
class Failed:
    """Generation failed; ``error`` is raised to the caller."""

    error: BitrateError


Event = Piece | Finished


def usage(prompt: int, completion: int) -> Usage:
    """Token counts with their total."""
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


async def complete_from(
    events: AsyncGenerator[Event, None], *, n: int, model: str, prompt_tokens: int, logprobs: bool
) -> ChatCompletion:
    """Collect every choice's events into one answer."""
    texts: list[list[str]] = [[] for _ in range(n)]
    token_logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
    finish: dict[int, Finished] = {}
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, Piece):
                texts[event.index].append(event.text)
                token_logprobs[event.index].extend(event.logprobs or [])
            else:
                finish[event.index] = event
    choices = [
        Choice(
            index=i,
            message=ResponseMessage(content="".join(texts[i])),
            finish_reason=finish[i].reason,
            logprobs=ChoiceLogprobs(content=token_logprobs[i]) if logprobs else None,
        )
        for i in range(n)
    ]
    completion = sum(f.tokens for f in finish.values())
    return ChatCompletion(model=model, choices=choices, usage=usage(prompt_tokens, completion))


async def stream_from(
    events: AsyncGenerator[Event, None], *, model: str, prompt_tokens: int, include_usage: bool
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """Turn events into chunks as they come; closing this iterator closes ``events``."""
    cid = new_completion_id()
    started: set[int] = set()
    completion = 0
    async with contextlib.aclosing(events):
        async for event in events:
            if event.index not in started:
                started.add(event.index)
                first = ChunkChoice(index=event.index, delta=Delta(role="assistant", content=""))
                yield ChatCompletionChunk(id=cid, model=model, choices=[first])
            if isinstance(event, Piece):
                lp = ChoiceLogprobs(content=event.logprobs) if event.logprobs is not None else None
                choice = ChunkChoice(index=event.index, delta=Delta(content=event.text), logprobs=lp)
            else:
                completion += event.tokens
                choice = ChunkChoice(index=event.index, delta=Delta(), finish_reason=event.reason)
            yield ChatCompletionChunk(id=cid, model=model, choices=[choice])
    if include_usage:
        yield ChatCompletionChunk(id=cid, model=model, choices=[], usage=usage(prompt_tokens, completion))
