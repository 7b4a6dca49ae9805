"""Graceful shutdown of ``bitrate serve``: on SIGTERM the in-flight stream finishes, new ones are refused.

The gateway runs as a real subprocess (``python -m bitrate_cli serve``) over a fault
server whose stream drips slowly; :class:`SubprocessGateway` is also used by
``test_security.py`` to read a real gateway's log output.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from tests.support.fault_server import Drip, fault_server
from tests.support.net import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[2]


class SubprocessGateway:
    """``bitrate serve`` in a child process on a free port; its output is collected line by line."""

    def __init__(self, policy: Path, *, env: dict[str, str] | None = None, log_level: str = "info"):
        self.port = free_port()
        command = [sys.executable, "-m", "bitrate_cli", "serve", "--policy", str(policy)]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), "--log-level", log_level],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        """Everything the gateway printed so far."""
        return "".join(self.lines)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def wait_started(self, timeout: float = 60.0) -> None:
        """Block until uvicorn listens; raise with the output if it exited or took too long."""
        try:
            wait_until_up(self.port, process=self.process, timeout=timeout)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"the gateway did not start ({exc}):\n{self.output}") from exc

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (if still running), wait, return the exit status; kill if it does not exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._reader.join(5)
            if self.process.stdout is not None:
                self.process.stdout.close()


@contextmanager
def subprocess_gateway(
    policy: dict, tmp_path: Path, *, env: dict[str, str] | None = None, log_level: str = "info"
) -> Iterator[SubprocessGateway]:
    """Write ``policy`` to a file and serve it in a subprocess until the block ends."""
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    gateway = SubprocessGateway(path, env=env, log_level=log_level)
    try:
        gateway.wait_started()
        yield gateway
    finally:
        gateway.stop()


def upstream_models(base_url: str, **extra: object) -> dict:
    """A policy body: ``student`` and ``frontier`` at one OpenAI-compatible upstream, route ``auto``."""
    model = {"backend": "openai", "base_url": base_url, "max_retries": 0, "timeout": 5.0, **extra}
    return {
        "version": 1,
        "models": {"student": {**model, "model": "small"}, "frontier": {**model, "model": "big"}},
        "routes": {"auto": {"student": "student", "frontier": "frontier", "tasks": {"detect": ["hint"]}}},
    }


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_lets_the_in_flight_stream_finish_and_refuses_new_connections(tmp_path: Path):
    with fault_server() as upstream:
        upstream.script(Drip(0.25))  # ~9 events: the stream lasts about 2 s
        with subprocess_gateway(upstream_models(upstream.base_url), tmp_path) as gateway:
            events: list[str] = []
            first = threading.Event()

            def read_stream() -> None:
                body = {"model": "student", "messages": [{"role": "user", "content": "hi"}], "stream": True}
                with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30) as r:
                    for line in r.iter_lines():
                        if line.startswith("data: "):
                            events.append(line[6:])
                            first.set()

            reader = threading.Thread(target=read_stream)
            reader.start()
            assert first.wait(20), gateway.output
            started = time.monotonic()
            gateway.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while not _refused(gateway.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _refused(gateway.port), "new connections must be refused once shutdown begins"
            assert gateway.process.poll() is None, "the in-flight stream is still being served"
            reader.join(20)
            status = gateway.process.wait(20)
            elapsed = time.monotonic() - started
    assert events[-1] == "[DONE]", events
    assert not any('"error"' in e for e in events)
    assert len(events) >= 8, "every chunk of the stream arrived"
    assert status == 0, f"exit status {status}:\n{gateway.output}"
    assert elapsed < 15


def test_sigterm_when_idle_exits_0_quickly(tmp_path: Path):
    with (
        fault_server() as upstream,
        subprocess_gateway(upstream_models(upstream.base_url), tmp_path) as gateway,
    ):
        assert httpx.get(f"{gateway.url}/healthz").status_code == 200
        started = time.monotonic()
        status = gateway.stop()
        elapsed = time.monotonic() - started
    assert status == 0, f"exit status {status}:\n{gateway.output}"
    assert elapsed < 10
