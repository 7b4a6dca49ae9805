"""The policy's ``live:`` section: where live observations and verdicts are kept, and for how long.

::

    live:
      store: bitrate-live.sqlite        # or postgresql://gateway@db.internal/bitrate
      capture: false
      redact: ['\\b\\d{3}-\\d{2}-\\d{4}\\b']   # replaced by [REDACTED] before anything is written
      retention_days: 30
      max_rows: 100000
      refresh_seconds: 5
      webhook: https://hooks.example.com/bitrate

A relative ``store`` path is resolved against the policy file's directory
(:meth:`LiveConfig.store_location`). A PostgreSQL URL carries no password: libpq reads it from
``PGPASSWORD`` or ``~/.pgpass``, so the policy file holds no secret.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator

from sdk.config_model import StrictModel

__all__ = ["DEFAULT_STORE", "POSTGRES_SCHEMES", "LiveConfig", "is_postgres_url"]

DEFAULT_STORE = "bitrate-live.sqlite"
"""The store when the policy names none: an SQLite file next to the policy."""
POSTGRES_SCHEMES = ("postgresql", "postgres")
"""URL schemes that name a PostgreSQL store."""


def is_postgres_url(location: str) -> bool:
    """True when ``location`` is a ``postgresql://`` (or ``postgres://``) URL, not a file path."""
    return urlsplit(location).scheme in POSTGRES_SCHEMES


class LiveConfig(StrictModel):
    """Where live evidence is stored, what of it, for how long, and who hears of verdict changes."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a URL may carry a token: not in errors

    store: str = Field(default=DEFAULT_STORE, min_length=1)
    """The observation store: an SQLite file path (relative to the policy file; created when
    missing) or a ``postgresql://user@host:port/db`` URL shared by several gateway replicas.
    The URL holds no password (libpq reads ``PGPASSWORD`` or ``~/.pgpass``)."""
    capture: bool = False
    """Also store each observed request's messages and both answers, and on every route the
    frontier's answers in the categories its ``capture`` section names (training data; see
    ``sdk.live.capture_config``). They may hold personal data; off: only a hash of the prompt
    and the scores."""
    redact: list[str] = Field(default_factory=list)
    """Regular expressions (Python ``re``) whose matches are replaced by ``[REDACTED]`` in every
    captured text before it is written to the store; a bad one is a load error."""
    retention_days: float | None = Field(default=30.0, gt=0)
    """Drop observations older than this many days; null keeps them for ever."""
    max_rows: int | None = Field(default=100_000, ge=1)
    """Keep at most this many observations per route (the newest); null for no limit."""
    refresh_seconds: float = Field(default=5.0, gt=0)
    """Seconds between a replica's reads of verdicts and observations written by other replicas."""
    webhook: str | None = None
    """URL that receives a JSON POST on every verdict change (besides the log line); none if unset."""
    isolate: bool = False
    """Run shadow calls, grading, the store and the monitors in a child process (``python -m
    sdk.live.worker``) instead of on the gateway's event loop: for a host with cores to spare
    (``docs/live.md`` has the measurements). Needs every model a route shadows with to be an
    HTTP (``openai``) backend the engine builds itself."""

    @field_validator("store")
    @classmethod
    def _path_or_postgres(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme in POSTGRES_SCHEMES:
            if parts.password is not None:
                raise ValueError(
                    "the store URL holds a password: leave it out and set PGPASSWORD "
                    "or ~/.pgpass (libpq reads them), so the policy file holds no secret"
                )
            return value
        if "://" in value:
            raise ValueError(f"a store is a file path or a postgresql:// URL, not a {parts.scheme}:// URL")
        return value

    @field_validator("redact")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return value

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and (
            urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc
        ):
            raise ValueError("webhook must be an http:// or https:// URL")
        return value

    def store_location(self, base_dir: Path) -> str:
        """The store as ``open_store`` takes it: a URL as written, a relative path under ``base_dir``."""
        if is_postgres_url(self.store):
            return self.store
        path = Path(self.store).expanduser()
        return str(path if path.is_absolute() else base_dir / path)
