"""The live store in an SQLite file (stdlib ``sqlite3``); see :mod:`sdk.live.store`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sdk.errors import BackendUnavailable, ConfigError
from sdk.live.store_base import STORE_BACKEND, SqlStore, Tx

__all__ = ["SQLiteStore"]


class _SQLiteTx:
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = self._conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []

    def write(self, sql: str, params: Sequence[Any]) -> int:
        return self._conn.execute(sql, params).rowcount

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)


class SQLiteStore(SqlStore):
    """The store in an SQLite file (stdlib ``sqlite3``): WAL mode, so several processes share
    the file, readers never wait for the writer, and a writer waits up to ``busy_timeout``
    seconds for another. Each write is a ``BEGIN IMMEDIATE`` transaction."""

    _TYPES = {"int": "INTEGER", "float": "REAL"}
    _TABLES_SQL = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)"

    def __init__(
        self, path: str | Path, *, capture: bool = False, create: bool = True, busy_timeout: float = 30.0
    ):
        super().__init__(str(path), capture=capture)
        target = Path(path)
        if not create and not target.is_file():
            raise ConfigError("no live store here (no such file)", location=str(target))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the store's folder: {exc.strerror or exc}", location=str(target)
            ) from exc
        with self._guard():
            self._conn = sqlite3.connect(
                target, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        try:
            with self._guard():
                self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                _wal(self._conn, busy_timeout)
                self._conn.execute("PRAGMA synchronous = NORMAL")  # durable at each checkpoint; safe in WAL
        except BaseException:
            self._conn.close()
            raise
        self._open_schema(create)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """The one boundary for ``sqlite3`` errors."""
        try:
            yield
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"{self.location}: {exc}", backend=STORE_BACKEND) from exc

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        conn = self._conn
        with self._guard():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._guard():
            return _SQLiteTx(self._conn).run(sql, params)

    def _disconnect(self) -> None:
        with self._guard():
            self._conn.close()


def _wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch to WAL. Changing the journal mode needs the file to itself, and SQLite answers
    "database is locked" at once, without its busy handler, while another process opens the
    same new file: retry for up to ``busy_timeout`` seconds."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
