"""The last-resort boundary: a bug answers a bare OpenAI-style 500, with no traceback in the body.

In-process, with httpx's ``raise_app_exceptions`` on: an exception that escaped the app after
its answer (as Starlette's own last-resort handler lets it, which makes a server reset the
connection before the client reads the 500) fails the call here.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from gateway import errors
from tests.support.inprocess import inprocess_app


def _buggy_app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/bug")
    async def bug() -> None:
        raise ZeroDivisionError("secret detail in a traceback")

    return app


async def test_a_bug_is_a_500_without_traceback(caplog: pytest.LogCaptureFixture):
    async with inprocess_app(_buggy_app()) as app:
        first = await app.http.get("/bug")
        second = await app.http.get("/bug")  # the app still serves after a bug
    assert first.status_code == second.status_code == 500
    error = first.json()["error"]
    assert error["type"] == "internal_error" and error["code"] == "internal_error"
    assert "secret" not in first.text and "Traceback" not in first.text
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)
