"""How the ``openai`` backend puts a request on the wire: one small interface, two clients.

:class:`Transport` sends a :class:`~sdk.backends.openai_wire.PreparedRequest` and hands
back a :class:`Reply` (status and headers read, body not yet). Two implementations,
picked by ``OpenAIConfig.transport`` through :data:`TRANSPORTS`:

- ``aiohttp`` (default): one pooled ``aiohttp.ClientSession``, called directly. httpx's
  objects on top of aiohttp (``httpx-aiohttp``) cost ~40% of the client's CPU per
  proxied call; this path has none of them.
- ``httpx``: httpx's API over any ``httpx.AsyncBaseTransport`` (its own by default;
  ``httpx.MockTransport`` in unit tests, passed as ``OpenAIBackend(transport=...)``).

Both bound every read of a body, streamed or not, by the config's ``timeout``
(:func:`sdk.backends.read_timeout.bounded`): a read that waits longer raises
``TimeoutError``, whatever state the client's own parser is in.

Neither translates errors: the backend does that at one boundary
(``sdk.backends.openai_http.translate_errors``), for both clients' exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

import httpx

from sdk.backends.config import OpenAIConfig
from sdk.backends.openai_wire import PreparedRequest
from sdk.backends.read_timeout import bounded
from sdk.errors import ConfigError

__all__ = ["TRANSPORTS", "AiohttpTransport", "HttpxTransport", "Reply", "Transport", "make_transport"]


class Reply(Protocol):
    """An answer whose status and headers are in, body not yet read."""

    status: int
    """HTTP status."""
    headers: Mapping[str, str]
    """Response headers, looked up case-insensitively."""

    async def read(self) -> bytes:
        """The whole body (decoded when it has a content encoding); releases the connection."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (decoded)."""
        ...

    async def finish(self) -> None:
        """Read what is left of the body (a stream's last bytes after ``[DONE]``: the chunked
        terminator), at most :data:`FINISH_BYTES` within :data:`FINISH_SECONDS`, so the
        connection goes back to the pool instead of being dropped. Never raises."""
        ...

    async def aclose(self) -> None:
        """Stop reading. Before the end of the body this drops the connection (the upstream
        stops generating); after it, nothing."""
        ...


class Transport(Protocol):
    """A pooled HTTP client for one upstream; created inside the running event loop."""

    async def send(self, prepared: PreparedRequest) -> Reply:
        """Send ``prepared``; return once status and headers are in."""
        ...

    async def get_status(self, url: str, headers: Mapping[str, str], timeout: float) -> int:
        """``GET url`` within ``timeout`` seconds; its status, the body discarded."""
        ...

    async def aclose(self) -> None:
        """Close the pool and its connections."""
        ...


FINISH_BYTES = 65536
"""Most bytes :meth:`Reply.finish` reads after a stream's end to keep its connection."""
FINISH_SECONDS = 1.0
"""Longest :meth:`Reply.finish` waits for them (past it, the connection is dropped, not pooled)."""


async def _drain(parts: AsyncIterator[bytes]) -> None:
    """Read ``parts`` to the end within the limits above; give up quietly past them."""
    read = 0
    try:
        async with asyncio.timeout(FINISH_SECONDS):
            async for part in parts:
                read += len(part)
                if read > FINISH_BYTES:
                    return
    except Exception:  # noqa: BLE001 - best effort: the caller closes the reply either way
        return


# ---------------------------------------------------------------------- aiohttp


class _AiohttpReply:
    __slots__ = ("_response", "_timeout", "headers", "status")

    def __init__(self, response, timeout: float) -> None:
        self._response = response
        self._timeout = timeout
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers  # CIMultiDictProxy: case-insensitive

    async def read(self) -> bytes:
        return b"".join([part async for part in self.chunks()])  # the end of the body frees the connection

    def chunks(self) -> AsyncIterator[bytes]:
        return bounded(self._response.content.iter_any(), self._timeout)

    async def finish(self) -> None:
        if not self._response.content.at_eof():
            await _drain(self._response.content.iter_any())

    async def aclose(self) -> None:
        self._response.close()  # after the body's end the connection is already back in the pool


class AiohttpTransport:
    """aiohttp's ``ClientSession`` used directly: no cookie jar (an API client keeps none),
    URLs parsed once, ``max_connections`` pooled connections, aiohttp's timeouts set from
    the config (connect within ``connect_timeout``; a free connection and every read within
    ``timeout``)."""

    def __init__(self, config: OpenAIConfig):
        import aiohttp
        import yarl

        self._yarl = yarl
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.connect_timeout + config.timeout,  # pool wait + connect
            sock_connect=config.connect_timeout,
            sock_read=config.timeout,
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.max_connections, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=self._timeout,
        )
        self._urls: dict[str, object] = {}
        self._read_timeout = config.timeout

    def _url(self, url: str):
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = self._yarl.URL(url)
        return parsed

    async def send(self, prepared: PreparedRequest) -> Reply:
        response = await self._session.request(
            prepared.method, self._url(prepared.url), data=prepared.content, headers=prepared.headers
        )
        return _AiohttpReply(response, self._read_timeout)

    async def get_status(self, url: str, headers: Mapping[str, str], timeout: float) -> int:
        import aiohttp

        limit = aiohttp.ClientTimeout(total=timeout, sock_connect=self._timeout.sock_connect)
        async with self._session.get(self._url(url), headers=dict(headers), timeout=limit) as response:
            return response.status

    async def aclose(self) -> None:
        await self._session.close()


# ---------------------------------------------------------------------- httpx


class _HttpxReply:
    __slots__ = ("_parts", "_response", "_timeout", "headers", "status")

    def __init__(self, response: httpx.Response, timeout: float) -> None:
        self._response = response
        self._timeout = timeout
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self._parts: AsyncIterator[bytes] | None = None  # httpx's body iterator can start once

    def _encoded(self) -> bool:
        return self._response.headers.get("content-encoding", "identity").lower() != "identity"

    async def read(self) -> bytes:
        response = self._response
        if response.is_stream_consumed or hasattr(response, "_content"):
            return await response.aread()  # (a mock transport may hand back a response already read)
        return b"".join([part async for part in self.chunks()])

    def chunks(self) -> AsyncIterator[bytes]:
        if self._parts is None:
            response = self._response
            parts = response.aiter_bytes() if self._encoded() else response.aiter_raw()  # raw: no decoders
            self._parts = bounded(parts, self._timeout)
        return self._parts

    async def finish(self) -> None:
        await _drain(self.chunks())  # goes on where the reader stopped

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxTransport:
    """httpx's request and response objects over ``pool`` (any ``httpx.AsyncBaseTransport``).
    Sends on the pool directly, past ``AsyncClient.send`` (auth, redirects and cookies, none
    of which an API call uses)."""

    def __init__(self, config: OpenAIConfig, pool: httpx.AsyncBaseTransport | None = None):
        limits = httpx.Limits(
            max_connections=config.max_connections, max_keepalive_connections=config.max_connections
        )
        self._pool = pool or httpx.AsyncHTTPTransport(limits=limits)
        timeout = httpx.Timeout(
            connect=config.connect_timeout, read=config.timeout, write=config.timeout, pool=config.timeout
        )
        self._connect_timeout = config.connect_timeout
        self._read_timeout = config.timeout
        self._extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    async def send(self, prepared: PreparedRequest) -> Reply:
        request = httpx.Request(
            prepared.method,
            self._url(prepared.url),
            headers=prepared.headers,
            content=prepared.content,
            extensions=self._extensions,
        )
        return _HttpxReply(await self._pool.handle_async_request(request), self._read_timeout)

    async def get_status(self, url: str, headers: Mapping[str, str], timeout: float) -> int:
        limit = httpx.Timeout(timeout, connect=min(timeout, self._connect_timeout))
        request = httpx.Request(
            "GET", self._url(url), headers=headers, extensions={"timeout": limit.as_dict()}
        )
        response = await self._pool.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response.status_code

    async def aclose(self) -> None:
        await self._pool.aclose()


TRANSPORTS: dict[str, Callable[[OpenAIConfig], Transport]] = {
    "aiohttp": AiohttpTransport,
    "httpx": HttpxTransport,
}
"""Transport factories by ``OpenAIConfig.transport`` name."""


def make_transport(config: OpenAIConfig, pool: httpx.AsyncBaseTransport | None = None) -> Transport:
    """The client ``config.transport`` names (the one place the choice is made); an httpx
    ``pool`` (a ``MockTransport`` in tests) always means the httpx client over it."""
    if pool is not None:
        return HttpxTransport(config, pool)
    factory = TRANSPORTS.get(config.transport)
    if factory is None:
        raise ConfigError(
            f"unknown transport {config.transport!r}; choose one of {sorted(TRANSPORTS)}", key="transport"
        )
    return factory(config)
