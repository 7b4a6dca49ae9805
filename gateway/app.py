"""The app factory: ``create_app(engine or policy, settings)``.

Nothing happens on import. ``create_app`` resolves keys and prices (a key
variable the policy names but the environment lacks fails here, before serving);
the lifespan starts the engine (loads local models) at startup and closes it at
shutdown. One app serves one engine; two apps in one process share nothing.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from gateway import errors
from gateway.fastpath import GatewayApp
from gateway.openapi import openapi_document
from gateway.routes import ROUTES
from gateway.state import Gateway
from sdk import __version__
from sdk.engine import Engine
from sdk.policy import Policy, ServerSettings, default_policy, load_policy

__all__ = ["create_app"]


PolicySource = Engine | Policy | str | Path | None
"""What the gateway serves: a started engine, a policy, a policy file, or (``None``) the embedded pair."""


def _engine_and_policy(source: PolicySource) -> tuple[Engine, Policy]:
    if source is None:
        source = default_policy()
    if isinstance(source, str | Path):
        source = load_policy(source)
    if isinstance(source, Policy):
        return Engine(source), source
    return source, source.policy


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        app.openapi_schema = openapi_document(app.title, app.version)
    return app.openapi_schema


def _freeze_heap() -> None:
    """Collect once, then exempt everything alive now (the policy, profiles, models, indexes)
    from the cyclic garbage collector: otherwise each full collection walks the whole
    startup heap again, a pause that grows with what the engine loaded (~36 ms here with
    the bench policy), paid by whichever requests are in flight."""
    gc.collect()
    gc.freeze()


def create_app(
    source: PolicySource = None, settings: ServerSettings | None = None, *, freeze_heap: bool = False
) -> FastAPI:
    """A FastAPI app serving an engine.

    ``source``: an ``sdk.engine.Engine`` (not yet started; the app starts and closes it),
    a ``Policy``, a policy file path, or ``None`` for the embedded default policy.
    ``settings``: overrides the policy's ``server`` section.
    ``freeze_heap``: once started, exempt the startup heap from garbage collection
    (``gc.freeze``; for a process that serves only this app, as ``bitrate serve`` does).
    """
    engine, policy = _engine_and_policy(source)
    gateway = Gateway.build(engine, policy, settings or policy.server)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            gateway.index_models(engine.model_names())
            if freeze_heap:
                _freeze_heap()
            yield
        finally:
            await gateway.deadlines.aclose()
            await engine.aclose()

    app = GatewayApp(
        title="bitrate gateway",
        summary="OpenAI-compatible chat completions, routed between a distilled student and the frontier.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    errors.install(app)
    app.router.routes.extend(ROUTES)
    return app
