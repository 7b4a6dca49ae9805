"""Ports and readiness for tests that start a real server: a free port, and waiting until it is up.

::

    port = free_port()
    process = subprocess.Popen([..., "--port", str(port)])
    wait_until_up(port, process=process)                                # a TCP connection is accepted
    wait_until_up(f"http://127.0.0.1:{port}/healthz", process=process)  # or: GET answers 200
"""

from __future__ import annotations

import socket
import subprocess
import time

import httpx

__all__ = ["free_port", "wait_until_up"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now (the OS's pick; free until someone binds it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _is_up(target: int | str) -> bool:
    if isinstance(target, int):
        with socket.socket() as sock:
            return sock.connect_ex((HOST, target)) == 0
    try:
        return httpx.get(target, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def wait_until_up(
    target: int | str,
    *,
    process: subprocess.Popen | None = None,
    timeout: float = 60.0,
    interval: float = 0.05,
) -> None:
    """Block until ``target`` is up: a port of 127.0.0.1 that accepts a TCP connection, or a URL
    that answers ``GET`` with 200. Raise ``RuntimeError`` if ``process`` (the server) exits first,
    or if ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before {target} was up")
        if _is_up(target):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target} was not up after {timeout:g}s")
        time.sleep(interval)
