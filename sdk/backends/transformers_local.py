"""The ``transformers`` backend: a local Hugging Face chat model run in-process (CPU or GPU).

The model is loaded when the backend is built (from local files only), and one
worker thread generates for every request, the concurrent ones batched into one
forward pass per token (:mod:`sdk.backends.hf_worker`); the event loop only
validates requests and turns the worker's events into wire objects. Serves text
only: image parts and tools are refused as the caller's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncGenerator, AsyncIterator
from types import ModuleType

from sdk.backends.base import Backend
from sdk.backends.config import TransformersConfig
from sdk.backends.local_answer import Failed, Finished, Piece, complete_from, stream_from
from sdk.backends.sampling import check_text_only, sampling_spec
from sdk.errors import DependencyMissing
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["TransformersBackend"]


def _import_runtime() -> tuple[ModuleType, ModuleType]:
    """The modules that run the model; they import torch, so they load when a local model is built."""
    for package in ("torch", "transformers"):
        if importlib.util.find_spec(package) is None:
            raise DependencyMissing(package, "local")
    from sdk.backends import hf_model, hf_worker

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
        self._worker = hf_worker.Worker(self._lm, name, max_active=config.max_batch_size)

    # --------------------------------------------------------------- public

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        job = self._start(request)
        return await complete_from(
            self._events(job),
            n=job.spec.n,
            model=self.name,
            prompt_tokens=len(job.prompt),
            logprobs=job.spec.logprobs,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        job = self._start(request)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        chunks = stream_from(
            self._events(job), model=self.name, prompt_tokens=len(job.prompt), include_usage=include_usage
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    async def health(self) -> bool:
        return self._worker.alive

    async def close(self) -> None:
        await asyncio.to_thread(self._worker.stop)

    @property
    def tokens_generated(self) -> int:
        """Tokens generated since the backend started, over all requests."""
        return self._worker.tokens_generated

    @property
    def forward_passes(self) -> int:
        """Forward passes run since the backend started: concurrent sequences share one per token."""
        return self._worker.forward_passes

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

    async def _events(self, job) -> AsyncGenerator[Piece | Finished, None]:
        """The job's events until every choice finished; leaving early cancels the job.
        Pieces of one choice that queued up while the reader was busy come out as one, so a
        reader that falls behind catches up in fewer, larger chunks."""
        finished, pending = 0, None
        try:
            while finished < job.spec.n:
                event, pending = pending or await self._take(job), None
                while isinstance(event, Piece) and not job.events.empty():
                    following = self._took(job, job.events.get_nowait())
                    if not (isinstance(following, Piece) and following.index == event.index):
                        pending = following
                        break
                    event = event.then(following)
                if isinstance(event, Failed):
                    raise event.error
                finished += isinstance(event, Finished)
                yield event
        finally:
            job.cancel()

    async def _take(self, job):
        return self._took(job, await job.events.get())

    def _took(self, job, event):
        """``event`` was taken off ``job``'s queue: count it, and wake the worker if that lets
        the job run again."""
        if job.read_one():
            self._worker.wake()
        return event
