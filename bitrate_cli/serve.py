"""``bitrate serve``: the gateway under uvicorn.

``serve`` is a plain typer command function; ``bitrate_cli`` registers it. uvicorn picks
uvloop and httptools when they are installed (they are dependencies): measured here with
wrk, 1.85x the requests per second of asyncio + h11 on ``/healthz`` and 1.35x on a
proxied chat completion.

A configuration problem ends ``serve`` with one ``error:`` line and exit status 2, never a
traceback: the ones ``create_app`` finds before anything loads (``sdk.policy_check``), and a
``ConfigError`` the engine raises while it starts (a model directory that will not load).
Exit status 3 is left for a start-up that failed for any other reason (uvicorn logs why).
"""

from __future__ import annotations

import copy
import importlib.util
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any

import typer

from bitrate_cli.common import error_line
from sdk.errors import ConfigError

__all__ = ["serve"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _fast_or(module: str, fast: str, fallback: str) -> str:
    return fast if importlib.util.find_spec(module) is not None else fallback


def _log_config(level: str) -> dict:
    """uvicorn's logging config, plus bitrate's own loggers at ``level`` on the same handler."""
    from uvicorn.config import LOGGING_CONFIG  # (the server's imports wait for `serve`: fast start-up)

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["bitrate"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def _run_to_a_clean_exit(server: Any) -> None:
    """Run uvicorn until SIGINT/SIGTERM. uvicorn shuts down gracefully, then re-raises the signal
    it caught; with the default handlers that kills the process (status -15), so a graceful stop
    would look like a crash to a supervisor. Handlers that ignore the re-raise make it exit 0."""
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(_signum: int, _frame: object) -> None:
    """A signal handler that does nothing."""


Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _StartupErrors:
    """The app as uvicorn runs it, but a ``ConfigError`` raised while it starts is kept in
    ``error`` for ``serve`` to print as one line, instead of going to uvicorn's log as the
    traceback Starlette attaches to ``lifespan.startup.failed`` (sent while it handles the error)."""

    def __init__(self, app: Any):
        self.app = app
        self.error: ConfigError | None = None

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_quietly(message: Message) -> None:
            failure = sys.exc_info()[1]
            if message["type"] == "lifespan.startup.failed" and isinstance(failure, ConfigError):
                self.error, message = failure, {**message, "message": ""}
            await send(message)

        await self.app(scope, receive, send_quietly)


def serve(
    policy: Annotated[
        Path | None,
        typer.Option("--policy", "-p", help="Policy YAML; without one, the embedded default pair."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help=f"One of: {', '.join(_LOG_LEVELS)}.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request (costs throughput).")] = False,
) -> None:
    """Serve the OpenAI-compatible gateway: POST /v1/chat/completions, GET /v1/models, /metrics."""
    import uvicorn  # the web stack loads when the command runs, not for every `bitrate` start-up

    from gateway.app import create_app, server_protocol

    if log_level not in _LOG_LEVELS:
        raise typer.BadParameter(f"must be one of: {', '.join(_LOG_LEVELS)}", param_hint="--log-level")
    try:
        app = create_app(policy, freeze_heap=True)
    except ConfigError as exc:
        typer.echo(error_line(exc), err=True)
        raise typer.Exit(2) from exc
    guarded = _StartupErrors(app)
    config = uvicorn.Config(
        guarded,
        host=host,
        port=port,
        log_level=log_level,
        log_config=_log_config(log_level),
        access_log=access_log,
        loop=_fast_or("uvloop", "uvloop", "asyncio"),
        http=server_protocol(app, _fast_or("httptools", "httptools", "h11")),  # + a deadline on headers
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    try:
        _run_to_a_clean_exit(server)
    except SystemExit:  # uvicorn's exit on a failed start-up (status 3)
        if guarded.error is None:
            raise
    if guarded.error is not None:
        typer.echo(error_line(guarded.error), err=True)
        raise typer.Exit(2)
    if not server.started:
        raise typer.Exit(3)  # startup failed for another reason; uvicorn logged why
