"""``serve`` as a real process: it listens, answers, and stops cleanly; a bad policy is a clear error."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.fault_server import fault_server

pytestmark = pytest.mark.slow

SERVE = "import typer; from bitrate_cli.serve import serve; typer.run(serve)"
POLICY = """\
version: 1
models:
  frontier: {{backend: openai, base_url: "{url}", model: big}}
routes: {{}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"serve did not come up: {process.communicate()[1]}")


def test_serve_answers_then_stops_cleanly(tmp_path: Path):
    port = _free_port()
    with fault_server() as upstream:
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY.format(url=upstream.base_url))
        args = [
            sys.executable,
            "-c",
            SERVE,
            "--policy",
            str(policy),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", process)
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "frontier", "messages": [{"role": "user", "content": "hi"}]},
            )
        finally:
            process.send_signal(signal.SIGINT)
            _out, err = process.communicate(timeout=30)
    assert answer.status_code == 200 and answer.json()["bitrate"]["target"] == "frontier"
    assert process.returncode == 0, err


def test_serve_with_a_bad_policy_exits_2_naming_the_key(tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nmodels:\n  frontier: {backend: openai, base_url: x, model: m, colour: red}\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", SERVE, "--policy", str(policy)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "colour" in result.stderr and "policy.yaml" in result.stderr


def test_serve_exits_3_when_the_engine_cannot_start(tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nmodels:\n  m: {{backend: transformers, model: '{tmp_path / 'missing'}'}}\n"
    )
    args = [sys.executable, "-c", SERVE, "--policy", str(policy), "--port", str(_free_port())]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "missing" in result.stderr
