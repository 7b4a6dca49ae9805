"""In-process clients with the ``openai`` client's shape: ``client.chat.completions.create(...)``.

::

    import sdk

    with sdk.Client(policy="policy.yaml") as client:        # or Client() for the embedded pair
        answer = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
        print(answer.choices[0].message.content, answer.bitrate.reason)

``create`` returns a :class:`RoutedCompletion` (a :class:`~sdk.protocol.ChatCompletion`, same
fields as the openai client's) whose declared ``bitrate`` field is the :class:`~sdk.decision.Decision`; with
``stream=True`` it returns a stream of chunks whose ``bitrate`` attribute is the decision,
and whose last chunk carries it too. ``AsyncClient`` is the same with ``await``/``async for``;
``Client`` runs an event loop in a background thread, so it also works where a loop is
already running (Jupyter).

Talking to a remote gateway needs no bitrate client: the gateway is OpenAI-compatible, so use
``openai.OpenAI(base_url="http://host:8000/v1", api_key=...)``; each answer's decision is in
``completion.model_extra["bitrate"]`` (and in the ``x-bitrate-*`` response headers).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from pydantic import ValidationError

from sdk.decision import Decision
from sdk.engine import Engine
from sdk.engine_stream import RoutedStream
from sdk.errors import InvalidRequest
from sdk.headers import TASK_HEADER
from sdk.policy import Policy, default_policy, load_policy
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = [
    "AsyncChat",
    "AsyncClient",
    "AsyncCompletions",
    "AsyncStream",
    "Chat",
    "Client",
    "Completions",
    "RoutedCompletion",
    "Stream",
    "build_request",
]

T = TypeVar("T")


def _policy_of(policy: str | Path | Policy | None) -> Policy:
    if policy is None:
        return default_policy()
    if isinstance(policy, Policy):
        return policy
    return load_policy(policy)


def build_request(model: str, messages: Any, stream: bool, params: Mapping[str, Any]) -> ChatRequest:
    """A validated request from ``create``'s arguments (``extra_body`` is merged in, as the
    openai client does). An invalid field raises ``InvalidRequest`` naming it."""
    body = {"model": model, "messages": list(messages), "stream": stream, **params}
    body.update(body.pop("extra_body", None) or {})
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in err["loc"])
        raise InvalidRequest(f"{param}: {err['msg']}", param=param) from exc


def _hint(params: dict[str, Any]) -> str | None:
    headers = {k.lower(): v for k, v in (params.pop("extra_headers", None) or {}).items()}
    params.pop("timeout", None)  # accepted for openai compatibility; the policy's timeouts apply
    return headers.get(TASK_HEADER)


class RoutedCompletion(ChatCompletion):
    """A chat completion with the routing decision that produced it."""

    bitrate: Decision
    """Where the answer comes from and why (also in the JSON as the ``bitrate`` object)."""

    @classmethod
    def of(cls, completion: ChatCompletion, decision: Decision) -> RoutedCompletion:
        """``completion`` with ``decision`` attached (no re-validation)."""
        data = dict(completion)
        data["bitrate"] = decision
        return cls.model_construct(_fields_set={*completion.model_fields_set, "bitrate"}, **data)


class AsyncStream:
    """A streaming answer: ``async for chunk in stream``; ``stream.bitrate`` is the decision."""

    def __init__(self, routed: RoutedStream):
        self._routed = routed
        self.bitrate: Decision = routed.decision
        """Where the answer comes from and why."""

    async def __aiter__(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        async for chunk in self._routed:
            if "bitrate" in (chunk.model_extra or {}):
                setattr(chunk, "bitrate", self.bitrate)  # noqa: B010 - an extra field; as assignment, marks it set
            yield chunk

    async def close(self) -> None:
        """Stop early and cancel the generation."""
        await self._routed.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncCompletions:
    """``client.chat.completions``: the openai client's ``create``, routed in-process."""

    def __init__(self, client: AsyncClient):
        self._client = client

    @overload
    async def create(
        self, *, model: str, messages: Any, stream: Literal[False] = False, **params: Any
    ) -> RoutedCompletion: ...

    @overload
    async def create(
        self, *, model: str, messages: Any, stream: Literal[True], **params: Any
    ) -> AsyncStream: ...

    @overload
    async def create(
        self, *, model: str, messages: Any, stream: bool, **params: Any
    ) -> RoutedCompletion | AsyncStream: ...

    async def create(
        self, *, model: str, messages: Any, stream: bool = False, **params: Any
    ) -> RoutedCompletion | AsyncStream:
        """Route and answer a chat request. ``extra_headers={"x-bitrate-task": ...}`` passes a task hint."""
        hint = _hint(params)
        request = build_request(model, messages, stream, params)
        engine = await self._client._started()
        if stream:
            return AsyncStream(await engine.stream(request, hint))
        completion, decision = await engine.complete(request, hint)
        return RoutedCompletion.of(completion, decision)


class AsyncChat:
    """``client.chat``."""

    def __init__(self, client: AsyncClient):
        self.completions = AsyncCompletions(client)
        """``chat.completions.create(...)``, as in the openai client."""


class AsyncClient:
    """bitrate in-process, async. ``policy``: a file path, a :class:`Policy`, or ``None`` for the
    embedded default. Models load on the first call (or ``await client.start()``)."""

    def __init__(self, policy: str | Path | Policy | None = None, *, engine: Engine | None = None):
        self.engine = engine or Engine(_policy_of(policy))
        """The routing engine (also answers ``explain``)."""
        self.chat = AsyncChat(self)
        """``chat.completions.create(...)``, as in the openai client."""
        self._started_flag = False
        self._lock: asyncio.Lock | None = None

    async def start(self) -> None:
        """Build the backends now rather than on the first call."""
        await self._started()

    async def _started(self) -> Engine:
        if not self._started_flag:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if not self._started_flag:
                    await self.engine.start()
                    self._started_flag = True
        return self.engine

    async def close(self) -> None:
        """Close the backends."""
        await self.engine.aclose()
        self._started_flag = False

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Loop:
    """An event loop running in a daemon thread; ``run`` executes a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bitrate-client", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class Stream:
    """A streaming answer: ``for chunk in stream``; ``stream.bitrate`` is the decision."""

    def __init__(self, inner: AsyncStream, loop: _Loop):
        self._inner, self._loop = inner, loop
        self._iter = aiter(inner)
        self.bitrate: Decision = inner.bitrate
        """Where the answer comes from and why."""

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        while True:
            try:
                yield self._loop.run(anext(self._iter))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        """Stop early and cancel the generation."""
        self._loop.run(self._inner.close())

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Completions:
    """``client.chat.completions``: the openai client's ``create``, routed in-process, blocking."""

    def __init__(self, client: Client):
        self._client = client

    @overload
    def create(
        self, *, model: str, messages: Any, stream: Literal[False] = False, **params: Any
    ) -> RoutedCompletion: ...

    @overload
    def create(self, *, model: str, messages: Any, stream: Literal[True], **params: Any) -> Stream: ...

    @overload
    def create(
        self, *, model: str, messages: Any, stream: bool, **params: Any
    ) -> RoutedCompletion | Stream: ...

    def create(
        self, *, model: str, messages: Any, stream: bool = False, **params: Any
    ) -> RoutedCompletion | Stream:
        """Route and answer a chat request (see ``AsyncClient``)."""
        inner = self._client._async.chat.completions.create
        result = self._client._loop.run(inner(model=model, messages=messages, stream=stream, **params))
        return Stream(result, self._client._loop) if isinstance(result, AsyncStream) else result


class Chat:
    """``client.chat``."""

    def __init__(self, client: Client):
        self.completions = Completions(client)
        """``chat.completions.create(...)``, as in the openai client."""


class Client:
    """bitrate in-process, blocking; same arguments as :class:`AsyncClient`."""

    def __init__(self, policy: str | Path | Policy | None = None, *, engine: Engine | None = None):
        self._async = AsyncClient(policy, engine=engine)
        self._loop = _Loop()
        self.engine = self._async.engine
        """The routing engine (also answers ``explain``)."""
        self.chat = Chat(self)
        """``chat.completions.create(...)``, as in the openai client."""

    def start(self) -> None:
        """Build the backends now rather than on the first call."""
        self._loop.run(self._async.start())

    def close(self) -> None:
        """Close the backends and stop the background loop."""
        if self._loop.thread.is_alive():
            self._loop.run(self._async.close())
            self._loop.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
