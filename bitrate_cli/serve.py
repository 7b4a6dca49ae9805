"""``bitrate serve``: the gateway under uvicorn.

``serve`` is a plain typer command function; ``bitrate_cli`` registers it. uvicorn picks
uvloop and httptools when they are installed (they are dependencies): measured here with
wrk, 1.85x the requests per second of asyncio + h11 on ``/healthz`` and 1.35x on a
proxied chat completion.

A configuration problem ends ``serve`` with one ``error:`` line and exit status 2, never a
traceback: a port that cannot be listened on and a bad setting (checked first, in a moment),
the ones ``create_app`` finds before anything loads (``sdk.policy_check``), and a
``ConfigError`` the engine raises while it starts (a model directory that will not load).
Exit status 3 is left for a start-up that failed for any other reason (uvicorn logs why).
Settings come from flags, then ``BITRATE_*`` variables, then ``.env`` (``sdk.settings``).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

import typer

from bitrate_cli.common import PolicyOption, check_port, cli_errors, error_line, settings
from sdk.errors import ConfigError

__all__ = ["serve"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_LOG_FORMATS = ("plain", "json")
_JSON_FORMATTER = {"()": "gateway.request_log.JsonFormatter"}


def _fast_or(module: str, fast: str, fallback: str) -> str:
    return fast if importlib.util.find_spec(module) is not None else fallback


def _log_config(level: str, log_format: str = "plain") -> dict:
    """uvicorn's logging config, plus bitrate's own loggers at ``level`` on the same handler; with
    ``log_format`` ``json``, every line one JSON object (``gateway.request_log.JsonFormatter``)."""
    from uvicorn.config import LOGGING_CONFIG  # (the server's imports wait for `serve`: fast start-up)

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["bitrate"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    if log_format == "json":
        config["formatters"] = {"default": _JSON_FORMATTER, "access": _JSON_FORMATTER}
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


def _log_banner(app: Any, source: str | None, url: str, log_format: str) -> None:
    """What is served, a few lines at info before any model loads (``gateway.banner``); each chat
    call then logs its own line (``gateway.request_log``)."""
    from gateway.banner import banner_lines

    for line in banner_lines(app.state.gateway.policy, source, url, log_format):
        logging.getLogger("bitrate.serve").info(line)


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
    policy: PolicyOption = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (env BITRATE_HOST; default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (env BITRATE_PORT; default 8000).")] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help=f"One of: {', '.join(_LOG_LEVELS)} (env BITRATE_LOG_LEVEL; default info)."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs throughput).")] = False,
    log_format: Annotated[
        str | None,
        typer.Option(help="plain, or json (one object a line); default: the policy's server.log_format."),
    ] = None,
) -> None:
    """Serve the OpenAI-compatible gateway: POST /v1/chat/completions, GET /v1/models, /metrics."""
    if log_format is not None and log_format not in _LOG_FORMATS:
        raise typer.BadParameter(f"must be one of: {', '.join(_LOG_FORMATS)}", param_hint="--log-format")
    with cli_errors():  # first, before anything slow: the settings and the port
        options = settings(policy=policy, host=host, port=port, log_level=log_level)
        check_port(options.host, options.port)
    policy, host, port, log_level = options.policy, options.host, options.port, options.log_level
    import uvicorn  # the web stack loads when the command runs, not for every `bitrate` start-up

    from gateway.app import create_app, server_protocol

    try:
        app = create_app(policy, freeze_heap=True)
    except ConfigError as exc:
        typer.echo(error_line(exc), err=True)
        raise typer.Exit(2) from exc
    guarded = _StartupErrors(app)
    log_format = log_format or app.state.gateway.settings.log_format
    config = uvicorn.Config(
        guarded,
        host=host,
        port=port,
        log_level=log_level,
        log_config=_log_config(log_level, log_format),
        access_log=access_log,
        loop=_fast_or("uvloop", "uvloop", "asyncio"),
        http=server_protocol(app, _fast_or("httptools", "httptools", "h11")),  # + a deadline on headers
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    _log_banner(app, str(policy) if policy else None, f"http://{host}:{port}", log_format)
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
