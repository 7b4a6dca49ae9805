"""The ``openai`` backend: any OpenAI-compatible HTTP API, over one pooled HTTP client.

Serves the frontier API and a student behind ``vllm serve``. What to send and how
to read answers lives in :mod:`sdk.backends.openai_wire` (plain functions); when
and how long to retry in :mod:`sdk.backends.retry`; SSE parsing in
:mod:`sdk.backends.sse_decode`; the HTTP client (aiohttp, or httpx) in
:mod:`sdk.backends.transports`. This module only sends, and translates the client's
exceptions to :mod:`sdk.errors` at one boundary (:func:`translate_errors`):

==========================================  ==========================================
httpx / aiohttp / OS                        bitrate
==========================================  ==========================================
connect error, refused, connect or pool      ``BackendUnavailable`` (retried)
timeout, connection dropped or reset
read (or write) timeout                      ``BackendTimeout`` (retried once per call)
upstream status >= 400                       ``UpstreamStatusError`` (408/429/5xx retried)
2xx that is not the promised JSON / SSE      ``BackendError`` code ``bad_upstream_response``
==========================================  ==========================================

A stream retries only while opening (status and headers are checked before the
first chunk is yielded); once a chunk is out, a failure raises from the iterator.
Closing the iterator early closes the upstream response, which cancels the
generation upstream. The API key is read once from ``config.api_key_env`` and
never appears in errors, reprs or logs: every foreign string (an exception's text,
an upstream's message or request id) goes through :func:`sdk.backends.scrub.scrub`
before it enters an error, and a transport error's text loses the upstream's
address (errors name the backend, not its URL).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Literal

import httpx
from pydantic import SecretStr

from sdk.backends.base import Backend, flatten
from sdk.backends.config import OpenAIConfig
from sdk.backends.openai_wire import (
    PreparedRequest,
    build_headers,
    build_request,
    check_stream_headers,
    endpoint,
    error_from_status,
    malformed,
    parse_completion,
)
from sdk.backends.retry import RetryPolicy
from sdk.backends.scrub import scrub
from sdk.backends.sse_decode import iter_chunk_batches
from sdk.backends.transports import Reply, Transport, make_transport
from sdk.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["OpenAIBackend", "translate_errors"]

log = logging.getLogger("bitrate.backends.openai")

HEALTH_TIMEOUT = 3.0
"""Longest wait, in seconds, for ``GET /models`` in :meth:`OpenAIBackend.health`."""

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def read_api_key(config: OpenAIConfig) -> SecretStr | None:
    """The key from ``config.api_key_env``; ``ConfigError`` naming the variable when unset."""
    if config.api_key_env is None:
        return None
    value = os.environ.get(config.api_key_env, "")
    if not value.strip():
        raise ConfigError(
            f"environment variable {config.api_key_env} is not set; it must hold the API key",
            key="api_key_env",
        )
    return SecretStr(value.strip())


def _aiohttp_error(exc: Exception, backend: str, config: OpenAIConfig, detail: str) -> BackendError | None:
    """aiohttp's exceptions (and a bare ``TimeoutError``), most specific class first."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):  # the pool or the connect took too long
            return BackendUnavailable(f"no connection within {config.connect_timeout}s", backend=backend)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return BackendUnavailable(f"cannot connect: {detail}", backend=backend)
    if isinstance(exc, TimeoutError):  # aiohttp's read timeout is one too
        return BackendTimeout(f"no answer within {config.timeout}s", backend=backend)
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):  # dropped, reset, truncated body
        return BackendUnavailable(f"connection lost: {detail}", backend=backend)
    return None


def _httpx_error(exc: Exception, backend: str, config: OpenAIConfig, detail: str) -> BackendError | None:
    """httpx's exceptions, most specific class first."""
    if isinstance(exc, httpx.ConnectTimeout):
        return BackendUnavailable(f"no connection within {config.connect_timeout}s", backend=backend)
    if isinstance(exc, httpx.PoolTimeout):
        return BackendUnavailable(f"no free pooled connection within {config.timeout}s", backend=backend)
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeout(f"no answer within {config.timeout}s", backend=backend)
    if isinstance(exc, httpx.ConnectError):
        return BackendUnavailable(f"cannot connect: {detail}", backend=backend)
    if isinstance(exc, httpx.TransportError):
        return BackendUnavailable(f"connection lost: {detail}", backend=backend)
    if isinstance(exc, httpx.DecodingError):
        return malformed(backend, f"undecodable body ({detail})")
    if isinstance(exc, httpx.HTTPError):
        return BackendError(f"HTTP error: {detail}", backend=backend)
    return None


def _detail(exc: Exception, secret: str | None) -> str:
    """A transport exception in a few words fit for a caller: an OS error's own words without the
    address it concerned, aiohttp's message without its URL; any other URL taken out; scrubbed."""
    code = getattr(exc, "errno", None)
    message = getattr(exc, "message", None)  # aiohttp's ClientResponseError: the words without the URL
    if isinstance(code, int) and code > 0:
        text = os.strerror(code)
    else:
        text = message if isinstance(message, str) and message else str(exc)
    return scrub(_URL.sub("<url>", text), secret) or type(exc).__name__


def _translate(exc: Exception, backend: str, config: OpenAIConfig, secret: str | None) -> BackendError | None:
    """The most specific :mod:`sdk.errors` class for a transport exception; ``None`` for a foreign one."""
    detail = _detail(exc, secret)
    if isinstance(exc, httpx.HTTPError):
        return _httpx_error(exc, backend, config, detail)
    translated = _aiohttp_error(exc, backend, config, detail)
    if translated is None and isinstance(exc, OSError):
        return BackendUnavailable(f"connection lost: {detail}", backend=backend)
    return translated


class translate_errors:  # noqa: N801 - used like the function it was: ``with translate_errors(...)``
    """The one boundary where transport exceptions (aiohttp, httpx, OS) become :mod:`sdk.errors`.

    A plain class, not ``@contextmanager``: it is entered a few times per call on the hot path,
    and a generator-based manager costs several times more to enter and leave."""

    __slots__ = ("backend", "config", "secret")

    def __init__(self, backend: str, config: OpenAIConfig, secret: str | None = None):
        self.backend, self.config, self.secret = backend, config, secret

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        if not isinstance(exc, Exception):  # none, or cancellation and exits: not ours to translate
            return False
        translated = _translate(exc, self.backend, self.config, self.secret)
        if translated is None:
            return False  # a foreign exception goes on as it is
        raise translated from exc


class OpenAIBackend(Backend):
    """A model served by an OpenAI-compatible HTTP API.

    ``retry`` and ``transport`` are injectable (tests use an instant sleep and
    ``httpx.MockTransport``); by default they follow ``config``.
    """

    def __init__(
        self,
        name: str,
        config: OpenAIConfig,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        if not config.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {config.base_url!r}")
        self.name = name
        self.config = config
        self.retry = retry or RetryPolicy.from_config(config)
        self._api_key = read_api_key(config)
        self._httpx_pool = transport
        self._transport: Transport | None = None
        secret = self._secret
        self._translator = translate_errors(name, config, secret)  # stateless: one for every call
        self._headers = {  # built once; every client copies them into its own structure
            stream: build_headers(config, secret, stream=stream) for stream in (False, True)
        }

    def __repr__(self) -> str:
        cfg = self.config
        return f"OpenAIBackend(name={self.name!r}, base_url={cfg.base_url!r}, model={cfg.model!r})"

    @property
    def _secret(self) -> str | None:
        return self._api_key.get_secret_value() if self._api_key else None

    @property
    def transport(self) -> Transport:
        """The shared pooled client, created on first use (inside the running loop)."""
        if self._transport is None:
            self._transport = make_transport(self.config, self._httpx_pool)
        return self._transport

    def _prepare(self, request: ChatRequest, *, stream: bool) -> PreparedRequest:
        return build_request(self.config, request, self._secret, stream=stream, headers=self._headers[stream])

    def _errors(self) -> translate_errors:
        return self._translator

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        """Answer in one piece; retries per :mod:`sdk.backends.retry`."""
        prepared = self._prepare(request, stream=False)
        return await self.retry.call(self._complete_once, prepared)

    async def _complete_once(self, prepared: PreparedRequest) -> ChatCompletion:
        with self._errors():
            reply = await self.transport.send(prepared)
            try:
                content = await reply.read()  # reading to the end releases the connection
            finally:
                await reply.aclose()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: POST %s -> %d", self.name, prepared.url, reply.status)
        if reply.status >= 400:
            raise error_from_status(reply.status, reply.headers, content, self.name, secret=self._secret)
        return parse_completion(reply.headers, content, self.name, secret=self._secret)

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Answer as chunks. Opening (status, headers) is retried; a failure after that raises."""
        return flatten(self.stream_batches(request))

    async def stream_batches(self, request: ChatRequest) -> AsyncIterator[list[ChatCompletionChunk]]:
        """:meth:`stream`'s chunks, a list per network read."""
        prepared = self._prepare(request, stream=True)
        reply = await self.retry.call(self._open_stream, prepared)
        try:
            async for batch in iter_chunk_batches(self._body(reply), self.name, secret=self._secret):
                yield batch
            await reply.finish()  # [DONE] came: read the chunked terminator, keep the connection
        finally:
            await reply.aclose()  # early close drops the connection: the upstream stops generating

    async def _open_stream(self, prepared: PreparedRequest) -> Reply:
        with self._errors():
            reply = await self.transport.send(prepared)
        try:
            if reply.status >= 400:
                with self._errors():
                    content = await reply.read()
                raise error_from_status(reply.status, reply.headers, content, self.name, secret=self._secret)
            check_stream_headers(reply.headers, self.name, secret=self._secret)
        except BaseException:
            await reply.aclose()
            raise
        return reply

    async def _body(self, reply: Reply) -> AsyncIterator[bytes]:
        with self._errors():
            async for raw in reply.chunks():
                yield raw

    async def health(self) -> bool:
        """True when ``GET {base_url}/models`` answers 2xx within a few seconds. Never raises."""
        headers = self._headers[False]
        try:
            with self._errors():
                url = endpoint(self.config, "models")
                status = await self.transport.get_status(
                    url, headers, min(HEALTH_TIMEOUT, self.config.timeout)
                )
        except BackendError as exc:
            log.info("%s: health check failed: %s", self.name, exc)
            return False
        return 200 <= status < 300

    async def close(self) -> None:
        """Close the pooled client and its connections."""
        if self._transport is not None:
            transport, self._transport = self._transport, None
            await transport.aclose()
