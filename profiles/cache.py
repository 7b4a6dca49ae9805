"""On-disk cache of model calls (SQLite), so a re-run or a resumed run never pays twice.

The key is a SHA-256 over the model's identity and the request: backend kind, model
name or path, base URL, a fingerprint of local weights (so a retrained model misses),
the messages and every generation parameter. The value is the answer text, token
usage and the latency the original call took.

One connection guarded by a lock serves threads and the event loop alike; each
operation is a short statement, cheap enough to run inline from async code. WAL
mode lets several processes share one file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk.backends.config import ModelConfig
from sdk.embedded import resolve_model_path
from sdk.errors import ConfigError

__all__ = ["CACHE_ENV", "CachedCall", "CallCache", "default_cache_dir", "model_identity", "request_key"]

CACHE_ENV = "BITRATE_CACHE_DIR"
"""Environment variable naming the cache folder."""
_FILE = "calls.sqlite"
_SCHEMA = """CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY, answer TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,
    latency REAL NOT NULL, created REAL NOT NULL, mean_logprob REAL, min_logprob REAL)"""
_ADDED = (("mean_logprob", "REAL"), ("min_logprob", "REAL"))
"""Columns added since the first schema: a cache file written before them gets them on open."""


@dataclass(frozen=True, slots=True)
class CachedCall:
    """What one model call returned."""

    answer: str
    """The answer text."""
    prompt_tokens: int | None
    """Prompt tokens the backend reported."""
    completion_tokens: int | None
    """Completion tokens the backend reported."""
    latency: float
    """Seconds the original call took."""
    mean_logprob: float | None = None
    """Mean log-probability of the answer's tokens, when the request asked for them."""
    min_logprob: float | None = None
    """Log-probability of the answer's least likely token, when the request asked for them."""


def default_cache_dir() -> Path:
    """``$BITRATE_CACHE_DIR``, else ``.bitrate-cache`` in the current directory."""
    return Path(os.environ.get(CACHE_ENV) or ".bitrate-cache")


def _weights_fingerprint(path: Path) -> list[Any]:
    """Name, size and mtime of a local model's files: changes when it is retrained."""
    if not path.is_dir():
        return []
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(path.iterdir()) if f.is_file()]


def model_identity(config: ModelConfig) -> dict[str, Any]:
    """What makes two calls to "the same model": kind, model, URL; for a local model its
    resolved path, a fingerprint of its files, dtype and default generation limit."""
    identity: dict[str, Any] = {"backend": config.backend, "model": config.model}
    if config.backend == "openai":
        identity["base_url"] = config.base_url.rstrip("/")
    else:
        local = Path(resolve_model_path(config.model)).expanduser()
        identity["path"] = str(local.resolve())
        identity["files"] = _weights_fingerprint(local)
        identity["dtype"] = config.dtype
        identity["max_new_tokens"] = config.max_new_tokens  # the limit when a request sets none
    return identity


def request_key(identity: dict[str, Any], body: dict[str, Any]) -> str:
    """The cache key of one request body sent to one model."""
    blob = json.dumps({"model": identity, "request": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class CallCache:
    """SQLite cache at ``folder/calls.sqlite``; thread- and async-safe."""

    def __init__(self, folder: Path | None = None):
        self.path = (folder or default_cache_dir()) / _FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
            for column, kind in _ADDED:
                if column not in have:
                    self._db.execute(f"ALTER TABLE calls ADD COLUMN {column} {kind}")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open call cache: {exc}", location=str(self.path)) from exc
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedCall | None:
        """The stored call for ``key``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT answer, prompt_tokens, completion_tokens, latency, mean_logprob, min_logprob "
                "FROM calls WHERE key = ?",
                (key,),
            ).fetchone()
        return CachedCall(*row) if row else None

    def put(self, key: str, call: CachedCall) -> None:
        """Store ``call`` under ``key`` (replacing any older one)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    call.answer,
                    call.prompt_tokens,
                    call.completion_tokens,
                    call.latency,
                    time.time(),
                    call.mean_logprob,
                    call.min_logprob,
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
