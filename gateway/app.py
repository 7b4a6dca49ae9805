"""The app factory: ``create_app(engine or policy, settings)``.

Nothing happens on import. ``create_app`` checks the policy (``sdk.policy_check``: profiles,
key variables, model directories; any problem fails here, before serving) and resolves keys
and prices;
the lifespan starts the engine (loads local models) and the backends' background
health checks at startup (and, with ``live:``, registers the live series of
``gateway.live_metrics``), and stops both at shutdown. One app serves one engine;
two apps in one process share nothing. ``server_protocol`` gives ``bitrate serve``
uvicorn's HTTP protocol with the app's deadline on request headers.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from gateway import errors
from gateway.fastpath import GatewayApp
from gateway.live_metrics import LiveCollector
from gateway.openapi import openapi_document
from gateway.routes import ROUTES
from gateway.slow_clients import http_protocol
from gateway.state import Gateway
from sdk import __version__
from sdk.engine import Engine
from sdk.policy import Policy, ServerSettings, default_policy, load_policy
from sdk.policy_check import require_servable

__all__ = ["create_app", "server_protocol"]


PolicySource = Engine | Policy | str | Path | None
"""What the gateway serves: a started engine, a policy, a policy file, or (``None``) the embedded pair."""


def _engine_and_policy(source: PolicySource, settings: ServerSettings | None) -> tuple[Engine, Policy]:
    """The engine to serve. One built here from a policy is checked first (``sdk.policy_check``):
    every problem that would stop it serving is a ``ConfigError`` now, before anything loads. An
    engine passed in was built by its caller, with whatever backends it was given."""
    if source is None:
        source = default_policy()
    if isinstance(source, str | Path):
        source = load_policy(source)
    if isinstance(source, Policy):
        require_servable(source, settings=settings)
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


def _docs_urls(exposed: bool) -> dict[str, Any]:
    """FastAPI's documentation routes, or none (then they answer our 404)."""
    if exposed:
        return {}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def server_protocol(app: FastAPI, http: str) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol ``http`` (``httptools`` or ``h11``) with ``app``'s
    ``server.header_timeout`` on each request's line and headers (``gateway.slow_clients``)."""
    return http_protocol(http, app.state.gateway.settings.header_timeout)


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
    engine, policy = _engine_and_policy(source, settings)
    gateway = Gateway.build(engine, policy, settings or policy.server)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            gateway.index_models(engine.model_names())
            gateway.index_tasks()
            if engine.live is not None:  # the live series, read from the runtime when scraped
                gateway.metrics.registry.register(LiveCollector(engine.live))
            await gateway.health.start()
            if freeze_heap:
                _freeze_heap()
            yield
        finally:
            await gateway.health.aclose()
            await gateway.deadlines.aclose()
            await engine.aclose()

    app = GatewayApp(
        title="bitrate gateway",
        summary="OpenAI-compatible chat completions, routed between a distilled student and the frontier.",
        version=__version__,
        lifespan=lifespan,
        **_docs_urls(gateway.settings.expose_docs),
    )
    app.state.gateway = gateway
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    errors.install(app)
    app.router.routes.extend(ROUTES)
    return app
