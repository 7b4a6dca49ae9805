"""The chat-completions shortcut past FastAPI's layers is taken only while it is safe to."""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware

from gateway.app import create_app
from tests.gateway.conftest import upstream_policy

CHAT = {"type": "http", "path": "/v1/chat/completions", "method": "POST", "root_path": ""}


def test_chat_posts_take_the_shortcut_and_nothing_else_does():
    app = create_app(upstream_policy("http://127.0.0.1:9/v1"))
    assert app._shortcut(CHAT)
    assert not app._shortcut({**CHAT, "method": "GET"})
    assert not app._shortcut({**CHAT, "path": "/v1/models"})
    assert not app._shortcut({**CHAT, "root_path": "/api"})
    assert not app._shortcut({"type": "lifespan"})


def test_an_app_given_more_middleware_takes_the_ordinary_path():
    app = create_app(upstream_policy("http://127.0.0.1:9/v1"))
    app.add_middleware(GZipMiddleware)
    assert not app._shortcut(CHAT)
