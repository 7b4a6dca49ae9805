"""The store's interface (:class:`ObservationStore`) and its logic in SQL that SQLite and
PostgreSQL run alike (:class:`SqlStore`); the contract is in :mod:`sdk.live.store`."""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol

from sdk.errors import BackendUnavailable, ConfigError
from sdk.live.records import MonitorRecord, Observation

__all__ = ["SCHEMA_VERSION", "STORE_BACKEND", "TABLES", "ObservationStore", "SqlStore", "Tx"]

SCHEMA_VERSION = 1
"""Version of the store's tables; a store written by another version is refused, not migrated."""
STORE_BACKEND = "live-store"
"""The backend name in the errors a store raises."""


class ObservationStore(ABC):
    """Live observations and monitor records in one database (see the module docstring)."""

    location: str
    """Where the store is (a file path, or the URL without any password)."""
    capture: bool
    """Whether messages and answers are kept (False: they are dropped on ``add``)."""

    @abstractmethod
    def add(self, observations: Sequence[Observation]) -> list[int]:
        """Store a batch atomically; the ids given, in order (their ``id`` fields are ignored)."""

    @abstractmethod
    def read(self, after: int = 0, *, limit: int = 1000, route: str | None = None) -> list[Observation]:
        """Up to ``limit`` observations with id > ``after`` (of ``route``, if given), by id."""

    @abstractmethod
    def last_id(self) -> int:
        """The largest id ever given (0 when none): ``read(after=last_id())`` returns only newer rows."""

    @abstractmethod
    def states(self, after_version: int = 0, *, route: str | None = None) -> list[MonitorRecord]:
        """Monitor records with version > ``after_version`` (of ``route``, if given), by version."""

    @abstractmethod
    def state(self, route: str, category: str) -> MonitorRecord | None:
        """The record of (route, category), or None."""

    @abstractmethod
    def put_state(self, record: MonitorRecord, *, expected: int | None) -> MonitorRecord | None:
        """Write ``record`` if the stored version is ``expected`` (0: none stored yet; None: write
        whatever is stored). The record as stored (new version and ``updated_at``), or None when
        another writer got there first (read ``state()`` and decide again)."""

    @abstractmethod
    def prune(self, *, retention_days: float | None, max_rows: int | None, now: float | None = None) -> int:
        """Drop observations older than ``retention_days`` before ``now`` (default: the clock)
        and, per route, all but the newest ``max_rows``; None disables a limit. Rows dropped."""

    @abstractmethod
    def add_counts(self, counts: Mapping[str, int]) -> None:
        """Add to shared counters by name (created at 0), atomically: replicas add their own
        tallies (requests, shadow spend) and every reader sees the sum."""

    @abstractmethod
    def counts(self, prefix: str = "") -> dict[str, int]:
        """The shared counters whose names start with ``prefix``."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent); the store cannot be used after."""

    def export(self, *, route: str | None = None, batch: int = 1000) -> Iterator[Observation]:
        """Every observation (of ``route``, if given) by id, read ``batch`` rows at a time; rows
        added while iterating are included, rows pruned meanwhile may be missed."""
        after = 0
        while True:
            rows = self.read(after, limit=batch, route=route)
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].id or after

    def __enter__(self) -> ObservationStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_OBS = "bitrate_live_observations"
_STATES = "bitrate_live_states"
_META = "bitrate_live_meta"
_COUNTER = "count:"
"""Prefix of the shared counters' names in the meta table (apart from its own rows)."""
TABLES = (_META, _OBS, _STATES)
"""The store's tables (named apart from others that share a PostgreSQL database)."""
_OBS_COLUMNS = (
    "route, category, student, frontier, grader, direction, prompt_hash, observed_at, request_id, "
    "messages, student_answer, frontier_answer, id"
)  # Observation's fields, in order
# MonitorRecord's fields, in order
_STATE_COLUMNS = (
    "route, category, verdict, state, demoted_since, reset_by, reset_at, through, updated_at, version"
)
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {_META} (name TEXT PRIMARY KEY, value {{int}} NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS {_OBS} (
        id {{int}} PRIMARY KEY, route TEXT NOT NULL, category TEXT NOT NULL,
        student {{float}} NOT NULL, frontier {{float}} NOT NULL, grader TEXT NOT NULL,
        direction TEXT NOT NULL, prompt_hash TEXT NOT NULL, observed_at {{float}} NOT NULL,
        request_id TEXT, messages TEXT, student_answer TEXT, frontier_answer TEXT)""",
    f"CREATE INDEX IF NOT EXISTS {_OBS}_route ON {_OBS} (route, id)",
    f"CREATE INDEX IF NOT EXISTS {_OBS}_time ON {_OBS} (observed_at)",
    f"""CREATE TABLE IF NOT EXISTS {_STATES} (
        route TEXT NOT NULL, category TEXT NOT NULL, verdict TEXT NOT NULL, state TEXT NOT NULL,
        demoted_since {{float}}, reset_by TEXT, reset_at {{float}}, through {{int}} NOT NULL,
        updated_at {{float}} NOT NULL, version {{int}} NOT NULL, PRIMARY KEY (route, category))""",
    f"CREATE INDEX IF NOT EXISTS {_STATES}_version ON {_STATES} (version)",
    f"""INSERT INTO {_META} (name, value) VALUES ('schema', {SCHEMA_VERSION}), ('observation', 0),
        ('state', 0) ON CONFLICT (name) DO NOTHING""",
)
_BUMP = f"UPDATE {_META} SET value = value + ? WHERE name = ? RETURNING value"
_STATE_SET = (
    "verdict = ?, state = ?, demoted_since = ?, reset_by = ?, reset_at = ?, through = ?, updated_at = ?"
)


class Tx(Protocol):
    """One open write transaction; statements use ``?`` placeholders."""

    def run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (none for a write without ``RETURNING``)."""
        ...

    def write(self, sql: str, params: Sequence[Any]) -> int:
        """Run one write statement; the number of rows it changed."""
        ...

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""
        ...


class _Conflict(Exception):
    """Another writer changed the record: roll the transaction back."""


class SqlStore(ObservationStore):
    """The store's logic, in SQL that SQLite and PostgreSQL run alike (``?`` placeholders,
    ``ON CONFLICT``, ``RETURNING``). A subclass connects, runs statements and translates its
    driver's errors (:meth:`_transaction`, :meth:`_query`); one lock serialises the connection."""

    _TYPES: dict[str, str]
    """Column types for the schema's ``{int}`` and ``{float}``."""

    def __init__(self, location: str, *, capture: bool):
        self.location = location
        self.capture = capture
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ driver hooks

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Tx]:
        """One write transaction (the caller holds the lock): commit on exit, roll back on error."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One read statement outside any transaction (the caller holds the lock)."""

    _TABLES_SQL: str
    """A query counting how many of ``TABLES`` (its three ``?``) exist."""
    _SCHEMA_LOCK: str | None = None
    """A statement that serialises schema creation between processes, when the database needs one."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the connection, if open."""

    # ------------------------------------------------------------------ schema

    def _open_schema(self, create: bool) -> None:
        """Check the tables (creating them when missing and ``create``); close the store on failure.

        Creation re-checks under the schema lock: DDL, even ``IF NOT EXISTS``, locks the tables,
        and would deadlock with another replica already writing to them."""
        try:
            with self._lock:
                if not self._has_tables(self._query):
                    if not create:
                        raise ConfigError("no live store here yet (no tables)", location=self.location)
                    with self._transaction() as tx:
                        if self._SCHEMA_LOCK:
                            tx.run(self._SCHEMA_LOCK, ())
                        if not self._has_tables(tx.run):
                            for statement in _SCHEMA:
                                tx.run(statement.format(**self._TYPES), ())
                rows = self._query(f"SELECT value FROM {_META} WHERE name = 'schema'", ())
            found = rows[0][0] if rows else None
            if found != SCHEMA_VERSION:
                message = f"live store schema version {found}, this bitrate reads {SCHEMA_VERSION}"
                raise ConfigError(message, location=self.location)
        except BaseException:
            self.close()
            raise

    def _has_tables(self, run: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]) -> bool:
        return run(self._TABLES_SQL, TABLES)[0][0] == len(TABLES)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise BackendUnavailable(f"{self.location}: the store is closed", backend=STORE_BACKEND)
            yield

    # ------------------------------------------------------------------ observations

    def add(self, observations: Sequence[Observation]) -> list[int]:
        if not observations:
            return []
        rows = [_observation_row(o if self.capture else _without_text(o)) for o in observations]
        insert = f"INSERT INTO {_OBS} ({_OBS_COLUMNS}) VALUES ({', '.join('?' * 13)})"
        with self._locked(), self._transaction() as tx:
            last = int(tx.run(_BUMP, (len(rows), "observation"))[0][0])
            ids = list(range(last - len(rows) + 1, last + 1))
            tx.many(insert, [(*row, id_) for row, id_ in zip(rows, ids, strict=True)])
        return ids

    def read(self, after: int = 0, *, limit: int = 1000, route: str | None = None) -> list[Observation]:
        where = "id > ?" if route is None else "id > ? AND route = ?"
        params: tuple[Any, ...] = (after,) if route is None else (after, route)
        sql = f"SELECT {_OBS_COLUMNS} FROM {_OBS} WHERE {where} ORDER BY id LIMIT ?"
        with self._locked():
            rows = self._query(sql, [*params, limit])
        return [Observation(*row) for row in rows]

    def last_id(self) -> int:
        with self._locked():
            return int(self._query(f"SELECT value FROM {_META} WHERE name = 'observation'", ())[0][0])

    def prune(self, *, retention_days: float | None, max_rows: int | None, now: float | None = None) -> int:
        dropped = 0
        with self._locked(), self._transaction() as tx:
            if retention_days is not None:
                cutoff = (time.time() if now is None else now) - retention_days * 86400.0
                dropped += tx.write(f"DELETE FROM {_OBS} WHERE observed_at < ?", (cutoff,))
            if max_rows is not None:
                for (route,) in tx.run(f"SELECT DISTINCT route FROM {_OBS}", ()):
                    newest = f"SELECT id FROM {_OBS} WHERE route = ? ORDER BY id DESC LIMIT 1 OFFSET ?"
                    sql = f"DELETE FROM {_OBS} WHERE route = ? AND id <= ({newest})"
                    dropped += tx.write(sql, (route, route, max_rows))
        return dropped

    # ------------------------------------------------------------------ monitor records

    def states(self, after_version: int = 0, *, route: str | None = None) -> list[MonitorRecord]:
        where = "version > ?" if route is None else "version > ? AND route = ?"
        params: tuple[Any, ...] = (after_version,) if route is None else (after_version, route)
        with self._locked():
            rows = self._query(
                f"SELECT {_STATE_COLUMNS} FROM {_STATES} WHERE {where} ORDER BY version", params
            )
        return [_record(row) for row in rows]

    def state(self, route: str, category: str) -> MonitorRecord | None:
        sql = f"SELECT {_STATE_COLUMNS} FROM {_STATES} WHERE route = ? AND category = ?"
        with self._locked():
            rows = self._query(sql, (route, category))
        return _record(rows[0]) if rows else None

    def put_state(self, record: MonitorRecord, *, expected: int | None) -> MonitorRecord | None:
        stored = replace(record, updated_at=time.time())
        values = _state_values(stored)
        insert = f"INSERT INTO {_STATES} ({_STATE_COLUMNS}) VALUES ({', '.join('?' * 10)})"
        try:
            with self._locked(), self._transaction() as tx:
                version = int(tx.run(_BUMP, (1, "state"))[0][0])
                if expected is None:
                    updates = ", ".join(f"{c} = excluded.{c}" for c in _STATE_COLUMNS.split(", ")[2:])
                    sql = f"{insert} ON CONFLICT (route, category) DO UPDATE SET {updates} RETURNING version"
                    rows = tx.run(sql, (record.route, record.category, *values, version))
                elif expected == 0:
                    sql = f"{insert} ON CONFLICT (route, category) DO NOTHING RETURNING version"
                    rows = tx.run(sql, (record.route, record.category, *values, version))
                else:
                    where = "route = ? AND category = ? AND version = ?"
                    sql = f"UPDATE {_STATES} SET {_STATE_SET}, version = ? WHERE {where} RETURNING version"
                    rows = tx.run(sql, (*values, version, record.route, record.category, expected))
                if not rows:
                    raise _Conflict
        except _Conflict:
            return None
        return replace(stored, version=version)

    def add_counts(self, counts: Mapping[str, int]) -> None:
        rows = [(_COUNTER + name, int(value)) for name, value in counts.items() if value]
        if not rows:
            return
        sql = (
            f"INSERT INTO {_META} (name, value) VALUES (?, ?) "
            f"ON CONFLICT (name) DO UPDATE SET value = {_META}.value + excluded.value"
        )
        with self._locked(), self._transaction() as tx:
            tx.many(sql, sorted(rows))  # one order for every writer: no deadlock between replicas

    def counts(self, prefix: str = "") -> dict[str, int]:
        start = _COUNTER + prefix
        sql = f"SELECT name, value FROM {_META} WHERE substr(name, 1, ?) = ?"
        with self._locked():
            rows = self._query(sql, (len(start), start))
        return {name[len(_COUNTER) :]: int(value) for name, value in rows}

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._disconnect()


def _without_text(observation: Observation) -> Observation:
    if not observation.captured:
        return observation
    return replace(observation, messages=None, student_answer=None, frontier_answer=None)


def _observation_row(o: Observation) -> tuple[Any, ...]:
    """The columns of ``_OBS_COLUMNS`` but ``id``."""
    return (
        o.route, o.category, float(o.student), float(o.frontier), o.grader, o.direction, o.prompt_hash,
        float(o.at), o.request_id, o.messages, o.student_answer, o.frontier_answer,
    )  # fmt: skip


def _state_values(r: MonitorRecord) -> tuple[Any, ...]:
    """The columns of ``_STATE_SET``, in order."""
    state = json.dumps(r.state, sort_keys=True)
    return (r.verdict, state, r.demoted_since, r.reset_by, r.reset_at, r.through, r.updated_at)


def _record(row: tuple[Any, ...]) -> MonitorRecord:
    route, category, verdict, state, demoted, reset_by, reset_at, through, updated, version = row
    return MonitorRecord(
        route,
        category,
        verdict,
        json.loads(state),
        demoted,
        reset_by,
        reset_at,
        int(through),
        updated,
        int(version),
    )
