"""``serve`` as a real process: it listens, answers, and stops cleanly; a bad policy is a clear error."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.fault_server import fault_server
from tests.support.net import free_port, wait_until_up

pytestmark = pytest.mark.slow

SERVE = "import typer; from bitrate_cli.serve import serve; typer.run(serve)"
POLICY = """\
version: 1
models:
  frontier: {{backend: openai, base_url: "{url}", model: big}}
routes: {{}}
"""


def test_serve_answers_then_stops_cleanly(tmp_path: Path):
    port = free_port()
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
        answer: httpx.Response | None = None
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process=process)
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "frontier", "messages": [{"role": "user", "content": "hi"}]},
            )
        except RuntimeError:
            pass  # serve did not come up: its stderr says why (below)
        finally:
            process.send_signal(signal.SIGINT)
            _out, err = process.communicate(timeout=30)
    assert answer is not None, f"serve did not come up:\n{err}"
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


def test_serve_exits_2_in_one_line_when_a_model_directory_is_missing(tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nmodels:\n  m: {{backend: transformers, model: '{tmp_path / 'missing'}'}}\n"
    )
    args = [sys.executable, "-c", SERVE, "--policy", str(policy), "--port", str(free_port())]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "missing" in result.stderr and len(result.stderr.strip().splitlines()) == 1
