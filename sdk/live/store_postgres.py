"""The live store in a PostgreSQL database (psycopg 3, imported when a store is opened: install
``bitrate[postgres]``); see :mod:`sdk.live.store`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sdk.errors import BackendUnavailable, DependencyMissing
from sdk.live.store_base import STORE_BACKEND, SqlStore, Tx

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "redact_url"]


@lru_cache(maxsize=64)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (the shared SQL holds no other ``?`` or ``%``)."""
    return sql.replace("?", "%s")


def redact_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class _PostgresTx:
    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]):
        self._conn = conn

    def run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = self._conn.execute(_pg_sql(sql), params)
        return cursor.fetchall() if cursor.description is not None else []

    def write(self, sql: str, params: Sequence[Any]) -> int:
        return self._conn.execute(_pg_sql(sql), params).rowcount

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_pg_sql(sql), rows)


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database (psycopg 3, ``pip install 'bitrate[postgres]'``),
    shared by every replica given the same URL. The connection is opened again after it breaks."""

    _TYPES = {"int": "BIGINT", "float": "DOUBLE PRECISION"}
    _TABLES_SQL = (
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name IN (?, ?, ?)"
    )
    _SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(7148021537)"  # replicas creating the tables at once

    def __init__(
        self, url: str, *, capture: bool = False, create: bool = True, connect_timeout: float = 10.0
    ):
        super().__init__(redact_url(url), capture=capture)
        self._psycopg = _import_psycopg()
        self._url = url
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._open_schema(create)

    @contextmanager
    def _guard(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """The one boundary for psycopg errors; yields a live connection (opened when needed)."""
        try:
            if self._conn is None or self._conn.closed:
                params = self._psycopg.conninfo.conninfo_to_dict(self._url)
                params.setdefault("application_name", "bitrate-live")  # the URL may name the replica
                params.setdefault("connect_timeout", max(1, round(self._connect_timeout)))
                self._conn = self._psycopg.connect(autocommit=True, **params)
            yield self._conn
        except self._psycopg.Error as exc:
            raise BackendUnavailable(f"{self.location}: {exc}", backend=STORE_BACKEND) from exc

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        with self._guard() as conn, conn.transaction():
            yield _PostgresTx(conn)

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._guard() as conn:
            return _PostgresTx(conn).run(sql, params)

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise DependencyMissing("psycopg", "postgres") from exc
    return psycopg
