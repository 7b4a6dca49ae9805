"""Serve an ASGI app on 127.0.0.1 in a background thread, on a free port, for as long as a block runs.

Used by ``bitrate demo`` and the tests. The socket is bound before the server starts
(no port race); leaving the block stops uvicorn, which runs the lifespan's shutdown
(the engine is closed) before the thread is joined: nothing is left behind.
uvicorn's default loop is kept: it is uvloop when installed, and asyncio's own loop
in a non-main thread costs ~40 ms per request here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["LocalServer", "serve_in_thread"]


@dataclass(frozen=True)
class LocalServer:
    """Where a started server listens."""

    host: str
    """Always ``127.0.0.1``."""
    port: int
    """The free port it got."""

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI API root: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"


@contextmanager
def serve_in_thread(
    app: Any, *, startup_timeout: float = 300.0, log_level: str = "warning"
) -> Iterator[LocalServer]:
    """Serve ``app`` until the block ends; raise ``RuntimeError`` if its startup fails or times out."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level=log_level, access_log=False, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"bitrate-{port}", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread, startup_timeout)
        yield LocalServer("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def _wait_started(server: Any, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped during startup (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start within {timeout:g}s")
        time.sleep(0.02)
