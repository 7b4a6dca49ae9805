"""The ``transformers`` backend: a local Hugging Face chat model run in-process (CPU or GPU).

The model is loaded when the backend is built (from local files only), and one
worker thread generates for every request (:mod:`sdk.backends.hf_worker`); the
event loop only validates requests and turns the worker's events into wire
objects. Serves text only: image parts and tools are refused as the caller's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sdk.backends.base import Backend
from sdk.backends.config import TransformersConfig
from sdk.backends.sampling import check_text_only, sampling_spec
from sdk.errors import DependencyMissing
from sdk.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    ResponseMessage,
    TokenLogprob,
    Usage,
    new_completion_id,
)

__all__ = ["TransformersBackend"]


def _import_runtime():
    try:
        from sdk.backends import hf_model, hf_worker
    except ImportError as exc:  # torch or transformers absent
        raise DependencyMissing(exc.name or "transformers", "local") from exc
    return hf_model, hf_worker


class TransformersBackend(Backend):
    """A local model served by a worker thread. Build it once; it is safe to share
    across event loops and concurrent requests."""

    def __init__(self, name: str, config: TransformersConfig):
        hf_model, hf_worker = _import_runtime()
        self.name = name
        self.config = config
        self._lm = hf_model.load_model(config)
        self._job_cls = hf_worker.Job
        self._events = hf_worker
        self._worker = hf_worker.Worker(self._lm, name)

    # --------------------------------------------------------------- public

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        job = self._start(request)
        texts: dict[int, list[str]] = {i: [] for i in range(job.spec.n)}
        logprobs: dict[int, list[TokenLogprob]] = {i: [] for i in range(job.spec.n)}
        finish: dict[int, str] = {}
        completion_tokens = 0
        try:
            while len(finish) < job.spec.n:
                event = await self._next(job)
                if isinstance(event, self._events.Piece):
                    texts[event.index].append(event.text)
                    logprobs[event.index].extend(event.logprobs or [])
                else:
                    finish[event.index] = event.reason
                    completion_tokens += event.tokens
        finally:
            job.cancel()
        choices = [
            Choice(
                index=i,
                message=ResponseMessage(content="".join(texts[i])),
                finish_reason=finish[i],
                logprobs=ChoiceLogprobs(content=logprobs[i]) if request.logprobs else None,
            )
            for i in range(job.spec.n)
        ]
        usage = _usage(len(job.prompt), completion_tokens)
        return ChatCompletion(model=self.name, choices=choices, usage=usage)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        job = self._start(request)
        cid = new_completion_id()
        started: set[int] = set()
        finished = completion_tokens = 0
        try:
            while finished < job.spec.n:
                event = await self._next(job)
                if event.index not in started:
                    started.add(event.index)
                    first = ChunkChoice(index=event.index, delta=Delta(role="assistant", content=""))
                    yield self._chunk(cid, first)
                if isinstance(event, self._events.Piece):
                    lp = ChoiceLogprobs(content=event.logprobs) if event.logprobs is not None else None
                    choice = ChunkChoice(index=event.index, delta=Delta(content=event.text), logprobs=lp)
                else:
                    finished += 1
                    completion_tokens += event.tokens
                    choice = ChunkChoice(index=event.index, delta=Delta(), finish_reason=event.reason)
                yield self._chunk(cid, choice)
        finally:
            job.cancel()
        if request.stream_options and request.stream_options.include_usage:
            usage = _usage(len(job.prompt), completion_tokens)
            yield ChatCompletionChunk(id=cid, model=self.name, choices=[], usage=usage)

    async def health(self) -> bool:
        return self._worker.alive

    async def close(self) -> None:
        await asyncio.to_thread(self._worker.stop)

    @property
    def tokens_generated(self) -> int:
        """Tokens generated since the backend started, over all requests."""
        return self._worker.tokens_generated

    @property
    def active_sequences(self) -> int:
        """Choices being generated right now."""
        return self._worker.active_sequences

    # -------------------------------------------------------------- private

    def _prepare(self, request: ChatRequest):
        check_text_only(request, self.name)
        prompt = self._lm.prompt_ids(request)
        spec = sampling_spec(
            request,
            defaults=self._lm.defaults,
            default_max_tokens=self.config.max_new_tokens,
            prompt_tokens=len(prompt),
            context=self._lm.context,
        )
        return self._job_cls(prompt, spec, asyncio.get_running_loop())

    def _start(self, request: ChatRequest):
        job = self._prepare(request)
        self._worker.submit(job)
        return job

    async def _next(self, job):
        """The job's next ``Piece`` or ``Finished``; a ``Failed`` event raises its error."""
        event = await job.events.get()
        job.read_one()
        self._worker.wake()
        if isinstance(event, self._events.Failed):
            raise event.error
        return event

    def _chunk(self, cid: str, choice: ChunkChoice) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=cid, model=self.name, choices=[choice])


def _usage(prompt: int, completion: int) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
