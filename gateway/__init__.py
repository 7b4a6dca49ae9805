"""bitrate's OpenAI-compatible HTTP gateway (FastAPI + uvicorn) over the sdk engine.

Public surface: :func:`create_app` (the app factory), :func:`serve` (the ``bitrate serve``
command function), :func:`run_demo` (``bitrate demo``) and :func:`serve_in_thread`
(run an app on a free local port for a block). Imported lazily, so ``import gateway``
costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["create_app", "run_demo", "serve", "serve_in_thread"]

_WHERE = {
    "create_app": "gateway.app",
    "serve": "gateway.cli",
    "run_demo": "gateway.demo",
    "serve_in_thread": "gateway.local",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gateway' has no attribute '{name}'")
    return getattr(importlib.import_module(_WHERE[name]), name)
