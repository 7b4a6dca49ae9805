"""The policy's ``server`` settings: probes and metrics can be hidden; bodies are logged only when asked."""

from __future__ import annotations

import logging

import pytest

from tests.gateway.conftest import upstream_policy
from tests.support.fault_server import fault_server
from tests.support.inprocess import inprocess_gateway

BODY = {"model": "student", "messages": [{"role": "user", "content": "a very particular prompt"}]}


@pytest.mark.parametrize("log_bodies", [True, False])
async def test_settings(caplog: pytest.LogCaptureFixture, log_bodies: bool):
    server = {"expose_metrics": False, "expose_readyz": False, "log_bodies": log_bodies}
    caplog.set_level(logging.INFO, logger="bitrate.gateway")
    with fault_server() as upstream:
        async with inprocess_gateway(upstream_policy(upstream.base_url, server=server)) as gateway:
            answer = await gateway.http.post("/v1/chat/completions", json=BODY)
            hidden = [(await gateway.http.get(path)).status_code for path in ("/metrics", "/readyz")]
    assert answer.status_code == 200
    assert hidden == [404, 404]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "bitrate.gateway")
    assert ("a very particular prompt" in logged) is log_bodies
