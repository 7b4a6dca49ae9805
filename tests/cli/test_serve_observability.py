"""``bitrate serve`` as a real process, seen from outside: the start-up banner, one JSON log line per
call, and with ``OTEL_TRACES_EXPORTER=console`` the call's spans (``gen_ai.*``) on standard output."""

from __future__ import annotations

import json
import os
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
  student: {{backend: openai, base_url: "{url}", model: small}}
routes:
  auto: {{student: student, frontier: frontier, tasks: {{detect: [hint]}}}}
"""


def test_serve_logs_a_banner_json_lines_and_console_spans(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BITRATE_"))}
    env["OTEL_TRACES_EXPORTER"] = "console"
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
            "--log-format",
            "json",
        ]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        answer: httpx.Response | None = None
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process=process)
            body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
        except RuntimeError:
            pass  # serve did not come up: its stderr says why (below)
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
    assert answer is not None and answer.status_code == 200, err
    assert process.returncode == 0, err

    logged = [json.loads(line) for line in err.splitlines()]
    banner = [entry["message"] for entry in logged if entry["logger"] == "bitrate.serve"]
    assert banner[0] == f"bitrate 0.1.0 gateway, policy {policy}"
    assert f"model 'frontier': openai at {upstream.base_url}, model 'big', no key" in banner
    assert banner[-1] == f"listening on http://127.0.0.1:{port}, log format json"
    [request] = [entry for entry in logged if entry["logger"] == "bitrate.requests"]
    assert request["request_id"] == answer.headers["x-request-id"]
    assert (request["route"], request["target"], request["status"]) == ("auto", "frontier", 200)

    spans = {span["name"]: span for span in _json_objects(out)}
    assert {"chat auto", "bitrate.decide", "chat big"} <= set(spans)
    served = spans["chat auto"]["attributes"]
    assert served["gen_ai.operation.name"] == "chat" and served["gen_ai.request.model"] == "auto"
    assert served["gen_ai.response.model"] == "big" and served["gen_ai.usage.output_tokens"] > 0
    assert spans["chat big"]["attributes"]["gen_ai.provider.name"] == "openai"


def _json_objects(text: str) -> list[dict]:
    """The JSON objects printed one after another (the console exporter's pretty-printed spans)."""
    decoder, objects, index = json.JSONDecoder(), [], 0
    while (start := text.find("{", index)) != -1:
        value, index = decoder.raw_decode(text, start)
        objects.append(value)
    return objects
