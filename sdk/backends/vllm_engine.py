"""The ``vllm`` backend: a local model served by vLLM's in-process async engine (GPU).

Needs ``bitrate[gpu]``. The engine (``vllm.AsyncLLMEngine``, which is ``AsyncLLM``
in vLLM's V1 engine) is built with the backend; requests go through
``engine.generate(prompt, sampling_params, request_id)``, an async generator of
``RequestOutput``. The prompt is rendered with the model's own chat template and
tokenized here (the same way as the transformers backend, so both count prompt
tokens alike) and passed as token ids. Sampling parameters come from the same
:func:`~sdk.backends.sampling.sampling_spec`; outputs are asked as deltas. Leaving a
stream early aborts the request in the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sdk.backends.base import Backend
from sdk.backends.config import VLLMConfig
from sdk.backends.local_answer import Finished, Piece, complete_from, stream_from
from sdk.backends.sampling import GenerationDefaults, SamplingSpec, check_text_only, sampling_spec
from sdk.embedded import resolve_model_path
from sdk.errors import (
    BackendError,
    BackendUnavailable,
    BitrateError,
    ConfigError,
    DependencyMissing,
    InvalidRequest,
)
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest, TokenLogprob, TopLogprob, text_of

__all__ = ["VLLMBackend"]


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise DependencyMissing("vllm", "gpu") from exc
    return vllm


def sampling_params(vllm: Any, spec: SamplingSpec) -> Any:
    """vLLM's ``SamplingParams`` for ``spec``: deltas out, stop strings excluded from the text."""
    from vllm.sampling_params import RequestOutputKind

    return vllm.SamplingParams(
        n=spec.n,
        temperature=0.0 if spec.greedy else spec.temperature,
        top_p=1.0 if spec.greedy else spec.top_p,
        top_k=spec.top_k if spec.top_k and not spec.greedy else -1,
        max_tokens=spec.max_new_tokens,
        stop=list(spec.stop) or None,
        seed=spec.seed,
        logprobs=spec.top_logprobs if spec.logprobs else None,
        skip_special_tokens=True,
        include_stop_str_in_output=False,
        output_kind=RequestOutputKind.DELTA,
    )


class VLLMBackend(Backend):
    """A local model on vLLM's async engine. Use it from one event loop."""

    def __init__(self, name: str, config: VLLMConfig):
        vllm = _import_vllm()
        from transformers import AutoTokenizer, GenerationConfig

        path = Path(resolve_model_path(config.model))
        if not path.is_dir():
            raise ConfigError(f"model directory '{path}' does not exist", key="model")
        self.name = name
        self.config = config
        self._vllm = vllm
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        try:
            generation = GenerationConfig.from_pretrained(path, local_files_only=True)
        except OSError:  # no generation_config.json: vLLM's own defaults
            generation = None
        self._defaults = GenerationDefaults.from_generation_config(generation)
        args = vllm.AsyncEngineArgs(
            model=str(path),
            dtype=config.dtype,
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_model_len=config.max_model_len,
            tensor_parallel_size=config.tensor_parallel_size,
        )
        try:
            self._engine = vllm.AsyncLLMEngine.from_engine_args(args)
        except (ValueError, OSError, RuntimeError) as exc:
            raise ConfigError(f"vLLM could not load '{path}': {exc}", key="model") from exc
        model_config = getattr(self._engine, "model_config", None)
        self._context = config.max_model_len or getattr(model_config, "max_model_len", None)

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        prompt, spec = self._prepare(request)
        events = self._events(prompt, spec)
        return await complete_from(
            events, n=spec.n, model=self.name, prompt_tokens=len(prompt), logprobs=spec.logprobs
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        prompt, spec = self._prepare(request)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        chunks = stream_from(
            self._events(prompt, spec),
            model=self.name,
            prompt_tokens=len(prompt),
            include_usage=include_usage,
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    async def health(self) -> bool:
        try:
            await self._engine.check_health()
        except Exception:  # noqa: BLE001 - health() never raises, whatever the engine throws
            return False
        return not getattr(self._engine, "errored", False)

    async def close(self) -> None:
        shutdown = getattr(self._engine, "shutdown", None)
        if shutdown is not None:
            shutdown()

    # -------------------------------------------------------------- private

    def _prepare(self, request: ChatRequest) -> tuple[list[int], SamplingSpec]:
        import jinja2

        check_text_only(request, self.name)
        messages = [{"role": m.role, "content": text_of(m)} for m in request.messages]
        try:
            text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except jinja2.TemplateError as exc:
            raise InvalidRequest(f"the model's chat template refused the messages: {exc}") from exc
        prompt = list(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        spec = sampling_spec(
            request,
            defaults=self._defaults,
            default_max_tokens=self.config.max_new_tokens,
            prompt_tokens=len(prompt),
            context=self._context,
        )
        return prompt, spec

    async def _events(self, prompt: list[int], spec: SamplingSpec) -> AsyncIterator[Piece | Finished]:
        """Engine outputs as events; leaving early aborts the request in the engine."""
        request_id = f"bitrate-{uuid.uuid4().hex}"
        tokens = [0] * spec.n
        generator = self._engine.generate(
            {"prompt_token_ids": prompt}, sampling_params(self._vllm, spec), request_id
        )
        try:
            async with contextlib.aclosing(self._guard(generator)) as outputs:
                async for output in outputs:
                    for completion in output.outputs:
                        tokens[completion.index] += len(completion.token_ids)
                        for event in self._to_events(completion, spec, tokens):
                            yield event
        except (GeneratorExit, asyncio.CancelledError):
            # vLLM's generate() aborts on close too; this keeps the contract explicit.
            await self._engine.abort(request_id)
            raise

    async def _guard(self, generator: AsyncIterator[Any]) -> AsyncIterator[Any]:
        # The one boundary where vLLM's errors become bitrate errors.
        try:
            async with contextlib.aclosing(generator):
                async for output in generator:
                    yield output
        except BitrateError:
            raise
        except Exception as exc:  # noqa: BLE001 - boundary, see above
            names = {cls.__name__ for cls in type(exc).__mro__}
            if isinstance(exc, ValueError) or "VLLMClientError" in names:  # vLLM's input validation
                raise InvalidRequest(f"vLLM refused the request: {exc}") from exc
            if names & {"EngineDeadError", "AsyncEngineDeadError"}:
                raise BackendUnavailable(f"the vLLM engine died: {exc}", backend=self.name) from exc
            raise BackendError(f"vLLM failed: {exc!r}", backend=self.name) from exc

    def _to_events(self, completion: Any, spec: SamplingSpec, tokens: list[int]) -> list[Piece | Finished]:
        logprobs = self._logprobs(completion, spec) if spec.logprobs else None
        events: list[Piece | Finished] = []
        if completion.text or logprobs:
            events.append(Piece(completion.index, completion.text, logprobs))
        reason = completion.finish_reason
        if reason is not None:
            if reason not in ("stop", "length"):
                raise BackendError(f"generation ended with '{reason}'", backend=self.name)
            events.append(Finished(completion.index, reason, tokens[completion.index]))
        return events

    def _logprobs(self, completion: Any, spec: SamplingSpec) -> list[TokenLogprob]:
        entries = []
        for token_id, alternatives in zip(completion.token_ids, completion.logprobs or [], strict=False):
            chosen = alternatives[token_id]
            ranked = sorted(alternatives.items(), key=lambda kv: kv[1].logprob, reverse=True)
            top = [self._top(t, lp.logprob, lp.decoded_token) for t, lp in ranked[: spec.top_logprobs]]
            entry = self._top(token_id, chosen.logprob, chosen.decoded_token)
            entries.append(TokenLogprob(**entry.model_dump(), top_logprobs=top))
        return entries

    def _top(self, token_id: int, logprob: float, text: str | None) -> TopLogprob:
        text = text if text is not None else self._tokenizer.decode([token_id])
        return TopLogprob(token=text, logprob=max(logprob, -9999.0), bytes=list(text.encode("utf-8")))
