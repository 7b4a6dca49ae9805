"""Run a real gateway (or any ASGI app) under uvicorn on 127.0.0.1, in a thread, on a free port.

::

    with running_gateway(policy) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")

A thin layer over :func:`gateway.local.serve_in_thread` (the one implementation,
shared with ``bitrate demo``): the context exits only after uvicorn shut down and
the lifespan closed the engine. For tests that need a wire (a client that disconnects,
slow or partial requests, shutdown); the others call the app in-process
(:mod:`tests.support.inprocess`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gateway.local import LocalServer as RunningServer
from gateway.local import serve_in_thread

__all__ = ["RunningServer", "running_app", "running_gateway"]


@contextmanager
def running_app(app: Any, *, startup_timeout: float = 120.0) -> Iterator[RunningServer]:
    """Serve ``app`` until the block ends; raise if its startup (lifespan) fails or times out."""
    with serve_in_thread(app, startup_timeout=startup_timeout) as server:
        yield server


@contextmanager
def running_gateway(source: Any = None, settings: Any = None) -> Iterator[RunningServer]:
    """``create_app(source, settings)`` served by :func:`running_app`."""
    from gateway.app import create_app

    with running_app(create_app(source, settings)) as server:
        yield server
