"""The last-resort boundary: a bug answers a bare OpenAI-style 500, with no traceback in the body."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from gateway import errors
from tests.support.gateway_server import running_app


def _buggy_app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/bug")
    async def bug() -> None:
        raise ZeroDivisionError("secret detail in a traceback")

    return app


def test_a_bug_is_a_500_without_traceback(caplog: pytest.LogCaptureFixture):
    with running_app(_buggy_app()) as server, httpx.Client() as client:
        first = client.get(f"{server.url}/bug")
        second = client.get(f"{server.url}/bug")  # the connection (or a new one) still serves
    assert first.status_code == second.status_code == 500
    error = first.json()["error"]
    assert error["type"] == "internal_error" and error["code"] == "internal_error"
    assert "secret" not in first.text and "Traceback" not in first.text
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)
