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

Errors, ``timeout=`` and ``with_raw_response`` are the official client's: with ``openai`` installed, a
failure raises the ``openai`` exception the official client would (``RateLimitError``,
``APITimeoutError``...), which is also the ``sdk.errors`` class it was (``sdk.openai_compat``);
``timeout=`` (seconds, or an ``httpx.Timeout``; per call or on the client) bounds the call, and for a
stream each wait for a chunk; ``client.chat.completions.with_raw_response.create(...)`` returns the
headers (``x-request-id``, ``x-bitrate-*``) with ``.parse()`` for the answer. Each call has a request id
(``extra_headers={"x-request-id": ...}`` or a new one) sent upstream by the ``openai`` backend, and a
span when tracing is on (``sdk.tracing``).

Talking to a remote gateway needs no bitrate client: the gateway is OpenAI-compatible, so use
``openai.OpenAI(base_url="http://host:8000/v1", api_key=...)``; each answer's decision is in
``completion.model_extra["bitrate"]`` (and in the ``x-bitrate-*`` response headers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import ValidationError

from sdk import tracing
from sdk.client_stream import AsyncStream, BackgroundLoop, Stream, raise_as_openai, within
from sdk.decision import Decision
from sdk.engine import Engine
from sdk.errors import BitrateError, InvalidRequest
from sdk.headers import REQUEST_ID_HEADER, TASK_HEADER, route_headers
from sdk.openai_compat import RawResponse
from sdk.policy import Policy, default_policy, load_policy
from sdk.protocol import ChatCompletion, ChatRequest
from sdk.request_context import REQUEST_ID, request_id_from

__all__ = [
    "AsyncChat",
    "AsyncClient",
    "AsyncCompletions",
    "AsyncCompletionsWithRawResponse",
    "AsyncStream",
    "Chat",
    "Client",
    "Completions",
    "CompletionsWithRawResponse",
    "RoutedCompletion",
    "Stream",
    "build_request",
]


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


def _seconds(value: Any, default: float | None) -> float | None:
    """``timeout=`` in seconds: a number, ``None`` (no bound), an ``httpx.Timeout`` (its read
    timeout: the longest wait for an answer) or the openai client's "not given" (``default``)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hasattr(value, "read"):
        read = value.read
        return float(read) if isinstance(read, int | float) else None
    if not value:  # openai.NOT_GIVEN and openai.omit are falsy
        return default
    raise InvalidRequest("timeout: expected seconds, None or an httpx.Timeout", param="timeout")


@dataclass(frozen=True, slots=True)
class _CallOptions:
    """What ``create``'s keyword arguments say about the call rather than the request."""

    hint: str | None
    request_id: str
    timeout: float | None

    @classmethod
    def pop_from(cls, params: dict[str, Any], default_timeout: float | None) -> _CallOptions:
        """Take ``extra_headers`` (task hint, request id) and ``timeout`` out of ``params``."""
        headers = {k.lower(): v for k, v in (params.pop("extra_headers", None) or {}).items()}
        timeout = _seconds(params.pop("timeout", default_timeout), default_timeout)
        return cls(headers.get(TASK_HEADER), request_id_from(headers.get(REQUEST_ID_HEADER)), timeout)


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


Answer = RoutedCompletion | AsyncStream


class AsyncCompletions:
    """``client.chat.completions``: the openai client's ``create``, routed in-process."""

    def __init__(self, client: AsyncClient):
        self._client = client
        self.with_raw_response = AsyncCompletionsWithRawResponse(self)
        """``with_raw_response.create(...)``: the answer with its headers, as in the openai client."""

    @overload
    async def create(
        self, *, model: str, messages: Any, stream: Literal[False] = False, **params: Any
    ) -> RoutedCompletion: ...

    @overload
    async def create(
        self, *, model: str, messages: Any, stream: Literal[True], **params: Any
    ) -> AsyncStream: ...

    @overload
    async def create(self, *, model: str, messages: Any, stream: bool, **params: Any) -> Answer: ...

    async def create(self, *, model: str, messages: Any, stream: bool = False, **params: Any) -> Answer:
        """Route and answer a chat request. ``extra_headers={"x-bitrate-task": ...}`` passes a task
        hint; ``timeout=`` bounds the call (see the module docstring)."""
        return (await self._create(model, messages, stream, params))[0]

    async def _create(
        self, model: str, messages: Any, stream: bool, params: dict[str, Any]
    ) -> tuple[Answer, dict[str, str]]:
        """The answer and its headers, the call's request id and span set while it runs."""
        options = _CallOptions.pop_from(params, self._client.timeout)
        token = REQUEST_ID.set(options.request_id)
        span = tracing.start_request(server=False, request_id=options.request_id)
        if span is not None:
            span.enter()
        try:
            answer = await self._answer(model, messages, stream, params, options, span)
        except BitrateError as exc:
            if span is not None:
                span.end(error=exc)
            raise_as_openai(exc, options.request_id)
        finally:
            if span is not None:
                span.leave()
            REQUEST_ID.reset(token)
        return answer, {**route_headers(answer.bitrate), REQUEST_ID_HEADER: options.request_id}

    async def _answer(
        self,
        model: str,
        messages: Any,
        stream: bool,
        params: dict[str, Any],
        options: _CallOptions,
        span: tracing.RequestSpan | None,
    ) -> Answer:
        request = build_request(model, messages, stream, params)
        if span is not None:
            span.requested(request)
        engine = await self._client._started()
        if stream:
            routed = await within(engine.stream(request, options.hint), options.timeout, model)
            return AsyncStream(routed, timeout=options.timeout, request_id=options.request_id, span=span)
        call = engine.complete(request, options.hint)
        completion, decision = await within(call, options.timeout, model)
        if span is not None:
            span.end(decision, attributes=tracing.completion_attributes(completion))
        return RoutedCompletion.of(completion, decision)


class AsyncCompletionsWithRawResponse:
    """``client.chat.completions.with_raw_response``."""

    def __init__(self, completions: AsyncCompletions):
        self._completions = completions

    @overload
    async def create(
        self, *, model: str, messages: Any, stream: Literal[False] = False, **params: Any
    ) -> RawResponse[RoutedCompletion]: ...

    @overload
    async def create(
        self, *, model: str, messages: Any, stream: Literal[True], **params: Any
    ) -> RawResponse[AsyncStream]: ...

    async def create(self, *, model: str, messages: Any, stream: bool = False, **params: Any) -> RawResponse:
        """``create``'s answer with its headers: ``.headers``, ``.parse()``."""
        answer, headers = await self._completions._create(model, messages, stream, params)
        return RawResponse(answer, headers)


class AsyncChat:
    """``client.chat``."""

    def __init__(self, client: AsyncClient):
        self.completions = AsyncCompletions(client)
        """``chat.completions.create(...)``, as in the openai client."""


class AsyncClient:
    """bitrate in-process, async. ``policy``: a file path, a :class:`Policy`, or ``None`` for the
    embedded default. ``timeout``: seconds each call may take unless it says otherwise (``None``:
    the policy's backend timeouts only). Models load on the first call (or ``await client.start()``)."""

    def __init__(
        self,
        policy: str | Path | Policy | None = None,
        *,
        engine: Engine | None = None,
        timeout: float | None = None,
    ):
        self.engine = engine or Engine(_policy_of(policy))
        """The routing engine (also answers ``explain``)."""
        self.timeout = timeout
        """Default ``timeout=`` of each call, in seconds (``None``: no bound of the client's own)."""
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


class Completions:
    """``client.chat.completions``: the openai client's ``create``, routed in-process, blocking."""

    def __init__(self, client: Client):
        self._client = client
        self.with_raw_response = CompletionsWithRawResponse(client)
        """``with_raw_response.create(...)``: the answer with its headers, as in the openai client."""

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


class CompletionsWithRawResponse:
    """``client.chat.completions.with_raw_response``, blocking."""

    def __init__(self, client: Client):
        self._client = client

    @overload
    def create(
        self, *, model: str, messages: Any, stream: Literal[False] = False, **params: Any
    ) -> RawResponse[RoutedCompletion]: ...

    @overload
    def create(
        self, *, model: str, messages: Any, stream: Literal[True], **params: Any
    ) -> RawResponse[Stream]: ...

    def create(self, *, model: str, messages: Any, stream: bool = False, **params: Any) -> RawResponse:
        """``create``'s answer with its headers: ``.headers``, ``.parse()``."""
        inner = self._client._async.chat.completions._create
        answer, headers = self._client._loop.run(inner(model, messages, stream, params))
        if isinstance(answer, AsyncStream):
            return RawResponse(Stream(answer, self._client._loop), headers)
        return RawResponse(answer, headers)


class Chat:
    """``client.chat``."""

    def __init__(self, client: Client):
        self.completions = Completions(client)
        """``chat.completions.create(...)``, as in the openai client."""


class Client:
    """bitrate in-process, blocking; same arguments as :class:`AsyncClient`."""

    def __init__(
        self,
        policy: str | Path | Policy | None = None,
        *,
        engine: Engine | None = None,
        timeout: float | None = None,
    ):
        self._async = AsyncClient(policy, engine=engine, timeout=timeout)
        self._loop = BackgroundLoop()
        self.engine = self._async.engine
        """The routing engine (also answers ``explain``)."""
        self.chat = Chat(self)
        """``chat.completions.create(...)``, as in the openai client."""

    @property
    def timeout(self) -> float | None:
        """Default ``timeout=`` of each call, in seconds."""
        return self._async.timeout

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
