"""bitrate's OpenAI-compatible HTTP gateway (FastAPI + uvicorn) over the sdk engine.

Public surface: :func:`create_app` (the app factory) and :func:`serve_in_thread` (run an
app on a free local port for a block). The ``bitrate serve`` command is in ``bitrate_cli``.
"""

from __future__ import annotations

from gateway.app import create_app
from gateway.local import serve_in_thread

__all__ = ["create_app", "serve_in_thread"]
