"""What every command shares: the error boundary, the exit statuses, the common options, the settings
(flag > ``BITRATE_*`` environment > ``.env`` > default: ``sdk.settings``) and the one unit of loss.

Loss, tolerance and intervals are fractions of a 0-1 score on every surface (``0.10``), as in the
policy and profile files; points appear only in prose ("at most 10 points of quality lost"). A
``--max-loss`` also takes points where that cannot be misread: ``10pt``, ``10%``, or a bare number
above 1 (a loss fraction is at most 1), which is read as points with a one-line note on stderr.
A ``--confidence`` likewise takes ``90%`` or ``90`` (a bare number from 50 up to 100). Anything else
is one ``error:`` line.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from profiles.report import format_fraction
from sdk.errors import BitrateError, ConfigError
from sdk.policy import Policy, ToleranceConfig, default_policy, load_policy
from sdk.profile import Tolerance
from sdk.settings import Settings, load_settings

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_MAX_LOSS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STARTUP",
    "EXIT_USAGE",
    "EXIT_CODES_HELP",
    "ConfidenceOption",
    "MaxLossOption",
    "PolicyOption",
    "RouteOption",
    "check_port",
    "cli_errors",
    "confidence_flag",
    "error_line",
    "loss_flag",
    "make_tolerance",
    "parse_confidence",
    "parse_max_loss",
    "policy_or_default",
    "settings",
    "tolerance_of",
]

EXIT_OK = 0
EXIT_USAGE = 2
"""A mistake of the user's: a bad flag, file, policy, setting or environment."""
EXIT_STARTUP = 3
"""``bitrate serve`` could not start for another reason (its log says why)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT) before the command finished: 128 + 2, as shells report it."""
EXIT_CODES_HELP = (
    "Exit status: 0 done; 2 a usage or configuration error (one 'error:' line says which); "
    "3 'bitrate serve' failed to start for another reason; 130 interrupted (Ctrl-C)."
)

DEFAULT_MAX_LOSS: float = ToleranceConfig.model_fields["max_loss"].default
"""The one default tolerance: a policy route's (``sdk.policy.ToleranceConfig``)."""
DEFAULT_CONFIDENCE: float = ToleranceConfig.model_fields["confidence"].default

PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy", "--config", "-p", help="Policy YAML (env BITRATE_POLICY; default: the embedded pair)."
    ),
]
RouteOption = Annotated[str | None, typer.Option("--route", "-r", help="Route name (default: the first).")]
MaxLossOption = Annotated[
    str | None,
    typer.Option(
        metavar="LOSS",
        help="Largest acceptable mean loss as a fraction, 0.10 (also 10pt or 10%: points).",
    ),
]
ConfidenceOption = Annotated[
    str | None, typer.Option(metavar="LEVEL", help="Two-sided interval level, 0.90 (also 90%).")
]


def error_line(exc: BitrateError) -> str:
    """``error: <message>`` on one line, whatever the message holds."""
    return "error: " + " ".join(str(exc).splitlines())


@contextmanager
def cli_errors() -> Iterator[None]:
    """The command line's one error boundary: a ``BitrateError`` becomes one stderr line, exit 2."""
    try:
        yield
    except BitrateError as exc:
        typer.echo(error_line(exc), err=True)
        raise typer.Exit(EXIT_USAGE) from exc


def settings(**flags: object) -> Settings:
    """The settings with these flags (``None``: not given) over ``BITRATE_*`` and ``.env``."""
    return load_settings(**flags)


def check_port(host: str, port: int) -> None:
    """A ``ConfigError`` when ``host:port`` cannot be listened on (in use, privileged, no such
    interface), found by binding it a moment as the server will: before anything slow loads."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"cannot listen on '{host}': {getattr(exc, 'strerror', None) or exc}") from exc
    with socket.socket(family, kind, proto) as probe:
        if os.name != "nt":  # as uvicorn binds: a port in TIME_WAIT is free, a listening one is not
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                problem = f"port {port} on {host} is in use"
            elif exc.errno == errno.EACCES:
                problem = f"port {port} on {host} needs privileges this user lacks"
            else:
                problem = f"cannot listen on {host} port {port}: {exc.strerror or exc}"
            raise ConfigError(f"{problem} (choose another with --port or BITRATE_PORT)") from exc


def policy_or_default(path: Path | None) -> Policy:
    """The policy at ``path``, else at ``$BITRATE_POLICY``, else the embedded pair's."""
    chosen = settings(policy=path).policy
    return load_policy(chosen) if chosen else default_policy()


_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_POINTS = re.compile(rf"({_NUMBER})\s*(%|pt|pts|points?)", re.IGNORECASE)


def _number(text: str, option: str, expected: str) -> tuple[float, bool]:
    """``(value, given in points/percent)`` of ``text``; a ``ConfigError`` naming ``option`` if neither."""
    cleaned = text.strip()
    points = _POINTS.fullmatch(cleaned)
    try:
        return (float(points.group(1)), True) if points else (float(cleaned), False)
    except ValueError:
        raise ConfigError(f"'{text}' is not a number: {expected}", key=option) from None


def parse_max_loss(text: str, option: str = "--max-loss") -> tuple[float, str | None]:
    """A loss tolerance as a fraction, and a note to print when it was read from points (see the
    module docstring). A value that is neither is a ``ConfigError``."""
    expected = "give a fraction in [0, 1] such as 0.10, or points such as 10pt"
    value, in_points = _number(text, option, expected)
    if not in_points and 0 <= value <= 1:
        note = None
        if value == 1:
            note = f"note: {option} 1 is the fraction 1.0 (100 points: every loss passes); one point is 0.01"
        return value, note
    if 0 <= value <= 100:
        fraction = value / 100
        if in_points:
            return fraction, None
        return (
            fraction,
            f"note: {option} {text.strip()} read as {value:g} points: {format_fraction(fraction)}",
        )
    raise ConfigError(f"'{text}' is out of range: {expected}", key=option)


def parse_confidence(text: str, option: str = "--confidence") -> tuple[float, str | None]:
    """A confidence level as a fraction in (0, 1); ``90%``, or a bare number in [50, 100) (a level under
    one half means nothing), is a percent."""
    expected = "give a level in (0, 1) such as 0.90, or a percent such as 90%"
    value, in_percent = _number(text, option, expected)
    if not in_percent and 0 < value < 1:
        return value, None
    if (0 < value < 100) if in_percent else (50 <= value < 100):
        note = (
            None
            if in_percent
            else f"note: {option} {text.strip()} read as {value:g}%: {format_fraction(value / 100)}"
        )
        return value / 100, note
    raise ConfigError(f"'{text}' is out of range: {expected}", key=option)


def make_tolerance(max_loss: float, confidence: float) -> Tolerance:
    """A ``Tolerance``; values out of range are one ``ConfigError`` naming the flag, not a pydantic trace."""
    try:
        return Tolerance(max_loss=max_loss, confidence=confidence)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = f"--{str(first['loc'][0]).replace('_', '-')}"
        raise ConfigError(f"{first['msg']} (got {first['input']!r})", key=key) from exc


def loss_flag(text: str | None) -> float | None:
    """``--max-loss`` as a fraction (``None`` when not given); a note on stderr when read from points."""
    return None if text is None else _noted(parse_max_loss(text))


def confidence_flag(text: str | None) -> float | None:
    """``--confidence`` as a fraction (``None`` when not given); a note on stderr when read from percent."""
    return None if text is None else _noted(parse_confidence(text))


def tolerance_of(max_loss: str | None, confidence: str | None, default: Tolerance) -> Tolerance:
    """The tolerance from ``--max-loss`` / ``--confidence`` text, each falling back to ``default``'s."""
    loss, level = loss_flag(max_loss), confidence_flag(confidence)
    return make_tolerance(
        default.max_loss if loss is None else loss, default.confidence if level is None else level
    )


def _noted(parsed: tuple[float, str | None]) -> float:
    value, note = parsed
    if note:
        typer.echo(note, err=True)
    return value
