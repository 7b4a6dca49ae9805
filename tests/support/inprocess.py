"""Call a gateway (or any ASGI app) in-process: httpx's ASGI transport, no socket, no server thread.

::

    async with inprocess_gateway(policy, settings) as gateway:
        answer = await gateway.http.post("/v1/chat/completions", json=body)
        client = gateway.openai(key="sk-...")  # the official AsyncOpenAI client, on the same app

A request runs in the caller's task, on the test's event loop. ``httpx.ASGITransport``
does not run the ASGI lifespan, so the block runs it around itself (the app's own
``lifespan_context``: the gateway's engine is started on entry and closed on exit;
a failure to start raises here, as it is). Every client it made is closed on exit.

What it cannot show: the transport buffers a streamed answer (it arrives whole, once
the stream ended) and never disconnects early, and there is no connection to reset or
close. Tests about the wire (a client that walks away, a graceful shutdown, keep-alive,
socket timeouts) use :func:`tests.support.gateway_server.running_gateway`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai

__all__ = ["BASE_URL", "InProcess", "inprocess_app", "inprocess_gateway"]

BASE_URL = "http://gateway"
"""The host the in-process clients name (nothing resolves it: no request leaves the process)."""


@dataclass
class InProcess:
    """A started app and an HTTP client on it."""

    app: Any
    """The ASGI app (from ``gateway.app.create_app``: a ``GatewayApp``)."""
    http: httpx.AsyncClient
    """An ``httpx.AsyncClient`` on the app, ``base_url`` :data:`BASE_URL` (no timeout)."""
    _stack: AsyncExitStack

    url = BASE_URL
    """``http://gateway``."""
    base_url = f"{BASE_URL}/v1"
    """The OpenAI API root: ``http://gateway/v1``."""

    def openai(self, key: str = "unused", **options: Any) -> openai.AsyncOpenAI:
        """The official async client on the app (no retries unless ``options`` say), closed on exit."""
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), timeout=None)
        self._stack.push_async_callback(http.aclose)
        client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=key, http_client=http, **{"max_retries": 0, **options}
        )
        self._stack.push_async_callback(client.close)
        return client


@asynccontextmanager
async def inprocess_app(app: Any) -> AsyncIterator[InProcess]:
    """Run ``app``'s lifespan around the block and yield an :class:`InProcess` on it."""
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, timeout=None)
        stack.push_async_callback(http.aclose)
        yield InProcess(app, http, stack)


@asynccontextmanager
async def inprocess_gateway(source: Any = None, settings: Any = None) -> AsyncIterator[InProcess]:
    """``gateway.app.create_app(source, settings)``, started, in-process (see the module docstring)."""
    from gateway.app import create_app

    async with inprocess_app(create_app(source, settings)) as gateway:
        yield gateway
