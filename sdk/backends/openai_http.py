"""The ``openai`` backend: any OpenAI-compatible HTTP API, over one pooled httpx client.

Serves the frontier API and a student behind ``vllm serve``. What to send and how
to read answers lives in :mod:`sdk.backends.openai_wire` (plain functions); when
and how long to retry in :mod:`sdk.backends.retry`; SSE parsing in
:mod:`sdk.backends.sse`. This module only sends, and translates the transport's
exceptions to :mod:`sdk.errors` at one boundary (:func:`translate_errors`):

==========================================  ==========================================
httpx / aiohttp / OS                        bitrate
==========================================  ==========================================
connect error, refused, connect or pool      ``BackendUnavailable`` (retried)
timeout, connection dropped or reset
read or write timeout                        ``BackendTimeout`` (retried once per call)
upstream status >= 400                       ``UpstreamStatusError`` (408/429/5xx retried)
2xx that is not the promised JSON / SSE      ``BackendError`` code ``bad_upstream_response``
==========================================  ==========================================

A stream retries only while opening (status and headers are checked before the
first chunk is yielded); once a chunk is out, a failure raises from the iterator.
Closing the iterator early closes the upstream response, which cancels the
generation upstream. The API key is read once from ``config.api_key_env`` and
never appears in errors, reprs or logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
from pydantic import SecretStr

from sdk.backends.base import Backend
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
    redact,
    truncate,
)
from sdk.backends.retry import RetryPolicy
from sdk.backends.sse import iter_chunks
from sdk.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["TRANSPORTS", "OpenAIBackend", "make_transport", "translate_errors"]

log = logging.getLogger("bitrate.backends.openai")

HEALTH_TIMEOUT = 3.0
"""Longest wait, in seconds, for ``GET /models`` in :meth:`OpenAIBackend.health`."""


def _httpx_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(limits=limits)


def _aiohttp_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError as exc:  # a core dependency, so only a broken install gets here
        raise ConfigError(
            "transport 'aiohttp' needs the httpx-aiohttp package (pip install httpx-aiohttp)",
            key="transport",
        ) from exc
    return AiohttpTransport(limits=limits)


TRANSPORTS = {"httpx": _httpx_transport, "aiohttp": _aiohttp_transport}
"""Transport factories by ``OpenAIConfig.transport`` name."""


def make_transport(kind: str, max_connections: int) -> httpx.AsyncBaseTransport:
    """The HTTP transport under httpx's API: ``"aiohttp"`` (cheaper per request) or ``"httpx"``.
    The one place the choice is made, so a benchmark can compare them."""
    if kind not in TRANSPORTS:
        raise ConfigError(f"unknown transport {kind!r}; choose one of {sorted(TRANSPORTS)}", key="transport")
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return TRANSPORTS[kind](limits)


def make_timeout(config: OpenAIConfig) -> httpx.Timeout:
    """Connect within ``connect_timeout``; read (between bytes), write and pool wait within ``timeout``."""
    return httpx.Timeout(
        connect=config.connect_timeout, read=config.timeout, write=config.timeout, pool=config.timeout
    )


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


def _aiohttp_failure(exc: BaseException) -> str | None:
    """httpx_aiohttp reports refused, dropped and reset connections alike as ``ConnectTimeout``;
    its cause tells them apart: ``"connect"``, ``"lost"``, or ``None`` (a real timeout or not aiohttp)."""
    aiohttp = sys.modules.get("aiohttp")
    cause = exc.__cause__
    if aiohttp is None or not isinstance(cause, aiohttp.ClientConnectionError):
        return None
    if isinstance(cause, aiohttp.ServerTimeoutError):
        return None
    return "connect" if isinstance(cause, aiohttp.ClientConnectorError) else "lost"


def _translate(exc: Exception, backend: str, config: OpenAIConfig, secret: str | None) -> BackendError | None:
    """The most specific :mod:`sdk.errors` class for a transport exception; ``None`` for a foreign one."""
    detail = truncate(redact(str(exc), secret) or type(exc).__name__)
    aiohttp_failure = _aiohttp_failure(exc) if isinstance(exc, httpx.ConnectTimeout) else None
    if aiohttp_failure == "connect":
        return BackendUnavailable(f"cannot connect to {config.base_url}: {detail}", backend=backend)
    if aiohttp_failure == "lost":
        return BackendUnavailable(f"connection lost: {detail}", backend=backend)
    if isinstance(exc, httpx.ConnectTimeout):
        return BackendUnavailable(f"no connection within {config.connect_timeout}s", backend=backend)
    if isinstance(exc, httpx.PoolTimeout):
        return BackendUnavailable(f"no free pooled connection within {config.timeout}s", backend=backend)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return BackendTimeout(f"no answer within {config.timeout}s", backend=backend)
    if isinstance(exc, httpx.ConnectError):
        return BackendUnavailable(f"cannot connect to {config.base_url}: {detail}", backend=backend)
    if isinstance(exc, httpx.TransportError | OSError):
        return BackendUnavailable(f"connection lost: {detail}", backend=backend)
    if isinstance(exc, httpx.DecodingError):
        return malformed(backend, f"undecodable body ({detail})")
    if isinstance(exc, httpx.HTTPError):
        return BackendError(f"HTTP error: {detail}", backend=backend)
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):  # one httpx_aiohttp leaves unmapped
        return BackendUnavailable(f"connection failed: {detail}", backend=backend)
    return None


@contextlib.contextmanager
def translate_errors(backend: str, config: OpenAIConfig, secret: str | None = None) -> Iterator[None]:
    """The one boundary where transport exceptions (httpx, aiohttp, OS) become :mod:`sdk.errors`."""
    try:
        yield
    except Exception as exc:  # the boundary: transport errors are translated, anything else re-raised as is
        translated = _translate(exc, backend, config, secret)
        if translated is None:
            raise
        raise translated from exc


def _encoded(response: httpx.Response) -> bool:
    """True when the body has a content encoding (gzip...) that httpx's decoders must undo."""
    return response.headers.get("content-encoding", "identity").lower() != "identity"


async def _read_all(response: httpx.Response) -> bytes:
    """The whole body; a plain one is read raw, past httpx's decoder chain (~5% of a proxied call)."""
    if _encoded(response) or response.is_stream_consumed or hasattr(response, "_content"):
        return await response.aread()  # (a transport may hand back a response already read)
    return b"".join([part async for part in response.aiter_raw()])


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
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._pool: httpx.AsyncBaseTransport | None = None
        self._urls: dict[str, httpx.URL] = {}  # parsed once: URL parsing was ~5% of a proxied call
        self._timeout = {"timeout": make_timeout(config).as_dict()}

    def __repr__(self) -> str:
        cfg = self.config
        return f"OpenAIBackend(name={self.name!r}, base_url={cfg.base_url!r}, model={cfg.model!r})"

    @property
    def _secret(self) -> str | None:
        return self._api_key.get_secret_value() if self._api_key else None

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared pooled client, created on first use (inside the running loop)."""
        if self._client is None:
            transport = self._transport or make_transport(self.config.transport, self.config.max_connections)
            self._client = httpx.AsyncClient(transport=transport, timeout=make_timeout(self.config))
            self._pool = transport
        return self._client

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return translate_errors(self.name, self.config, self._secret)

    def _build(self, prepared: PreparedRequest) -> httpx.Request:
        url = self._urls.get(prepared.url)
        if url is None:
            url = self._urls[prepared.url] = httpx.URL(prepared.url)
        return httpx.Request(
            prepared.method, url, headers=prepared.headers, content=prepared.content, extensions=self._timeout
        )

    async def _send(self, prepared: PreparedRequest) -> httpx.Response:
        """Send on the client's pooled transport directly, status and headers read, body not yet.

        The hot path skips ``AsyncClient.send``: its auth, redirect and cookie handling (none of
        which an API call uses) cost more CPU than the transport itself. The caller reads or
        closes the body."""
        pool = self._pool if self._client is not None else None
        if pool is None:
            self.client  # noqa: B018 - builds the client and its transport (inside the running loop)
            pool = self._pool
        return await pool.handle_async_request(self._build(prepared))

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        """Answer in one piece; retries per :mod:`sdk.backends.retry`."""
        prepared = build_request(self.config, request, self._secret, stream=False)
        return await self.retry.call(self._complete_once, prepared)

    async def _complete_once(self, prepared: PreparedRequest) -> ChatCompletion:
        with self._errors():
            response = await self._send(prepared)
            try:
                content = await _read_all(response)  # reading to the end releases the connection
            except BaseException:
                await response.aclose()
                raise
        log.debug("%s: POST %s -> %d", self.name, prepared.url, response.status_code)
        if response.status_code >= 400:
            raise error_from_status(
                response.status_code, response.headers, content, self.name, secret=self._secret
            )
        return parse_completion(response.headers, content, self.name)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Answer as chunks. Opening (status, headers) is retried; a failure after that raises."""
        prepared = build_request(self.config, request, self._secret, stream=True)
        response = await self.retry.call(self._open_stream, prepared)
        try:
            async for chunk in iter_chunks(self._body(response), self.name, secret=self._secret):
                yield chunk
        finally:
            await response.aclose()  # early close drops the connection: the upstream stops generating

    async def _open_stream(self, prepared: PreparedRequest) -> httpx.Response:
        with self._errors():
            response = await self._send(prepared)
        try:
            if response.status_code >= 400:
                with self._errors():
                    content = await response.aread()
                raise error_from_status(
                    response.status_code, response.headers, content, self.name, secret=self._secret
                )
            check_stream_headers(response.headers, self.name)
        except BaseException:
            await response.aclose()
            raise
        return response

    async def _body(self, response: httpx.Response) -> AsyncIterator[bytes]:
        with self._errors():
            parts = response.aiter_bytes() if _encoded(response) else response.aiter_raw()
            async for raw in parts:
                yield raw

    async def health(self) -> bool:
        """True when ``GET {base_url}/models`` answers 2xx within a few seconds. Never raises."""
        timeout = httpx.Timeout(min(HEALTH_TIMEOUT, self.config.timeout), connect=self.config.connect_timeout)
        headers = build_headers(self.config, self._secret, stream=False)
        try:
            with self._errors():
                url = endpoint(self.config, "models")
                response = await self.client.get(url, headers=headers, timeout=timeout)
        except BackendError as exc:
            log.info("%s: health check failed: %s", self.name, exc)
            return False
        return response.is_success

    async def close(self) -> None:
        """Close the pooled client and its connections."""
        if self._client is not None:
            client, self._client, self._pool = self._client, None, None
            await client.aclose()
