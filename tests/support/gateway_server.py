"""Run a real gateway (or any ASGI app) under uvicorn on 127.0.0.1, in a thread, on a free port.

::

    with running_app(create_app(policy)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")

The socket is bound before the server starts (no port race); the context exits
only after uvicorn shut down and the lifespan closed the engine.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["RunningServer", "running_app", "running_gateway"]


@dataclass(frozen=True)
class RunningServer:
    """Where a started server listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI API root: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"


@contextmanager
def running_app(app: Any, *, startup_timeout: float = 120.0) -> Iterator[RunningServer]:
    """Serve ``app`` until the block ends; raise if its startup (lifespan) fails or times out."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"gateway-{port}", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread, startup_timeout)
        yield RunningServer("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _wait_started(server: Any, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped during startup (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the server did not start within {timeout:g}s")
        time.sleep(0.02)


@contextmanager
def running_gateway(source: Any = None, settings: Any = None) -> Iterator[RunningServer]:
    """``create_app(source, settings)`` served by :func:`running_app`."""
    from gateway.app import create_app

    with running_app(create_app(source, settings)) as server:
        yield server
