"""The live store: observations (graded live pairs) and each (route, category)'s monitor record,
shared by every gateway replica that opens the same database.

:func:`open_store` takes a file path (SQLite, the default: embedded, zero set-up) or a
``postgresql://`` URL (several replicas on one server; needs ``bitrate[postgres]``). Both
implementations run the same SQL (:class:`~sdk.live.store_base.SqlStore`) and behave identically.

The contract
------------
- **Sync methods, any thread.** Every method blocks on the database; from an event loop call it
  in a thread (``await asyncio.to_thread(store.add, batch)``). Sync, because ``sqlite3`` has no
  async face and one code path keeps the two databases identical; the calls are short and
  batched (the gateway writes a batch of observations at a time). A store is safe to share between
  the threads of one process (one lock serialises its connection) and between processes and
  replicas on one database (the database serialises writers; SQLite runs in WAL mode, so
  readers never wait for a writer).
- **Observations** get ids from one counter that a writer holds until it commits, so ids are
  monotone in commit order: a replica that has read everything up to id ``n`` catches up with
  ``read(after=n)`` and misses nothing. ``add`` stores a batch atomically.
- **Capture.** A store opened with ``capture=False`` drops the messages and answers of every
  observation it is given: only the prompt hash and the scores reach the database.
- **Monitor records** carry a version from a second counter, bumped by every write, so
  ``states(after_version=v)`` returns exactly the records written since a replica last looked
  (a replica keeps the largest version it has seen and refreshes every ``refresh_seconds``).
  ``put_state(record, expected=v)`` writes only if the stored version is still ``v`` (0: no
  record yet), else returns None: two replicas cannot overwrite each other's demotion unseen.
  ``expected=None`` writes unconditionally (a person's reset).
- **Counters**: ``add_counts`` adds each replica's tallies to shared integer counters (kept in
  the meta table under the prefix ``count:``); ``counts(prefix)`` reads the sums.
- **Retention**: ``prune`` drops observations older than N days and, per route, all but the
  newest N rows. Monitor records are never pruned.
- Failures of the database become :class:`~sdk.errors.BackendUnavailable` (backend
  ``live-store``); a store that cannot be opened as asked, :class:`~sdk.errors.ConfigError`.
  A PostgreSQL store whose connection dropped fails that call and connects again on the next.
- **Tables** (prefixed, so a shared PostgreSQL database can hold other things):
  ``bitrate_live_observations``, ``bitrate_live_states``, and ``bitrate_live_meta`` (the schema
  version and the two counters). A PostgreSQL URL may set ``options=-csearch_path=...`` for
  another schema and ``application_name`` to name the replica.
"""

from __future__ import annotations

from sdk.live.config import is_postgres_url
from sdk.live.store_base import SCHEMA_VERSION, ObservationStore, SqlStore
from sdk.live.store_postgres import PostgresStore
from sdk.live.store_sqlite import SQLiteStore

__all__ = ["SCHEMA_VERSION", "ObservationStore", "PostgresStore", "SQLiteStore", "SqlStore", "open_store"]


def open_store(location: str, *, capture: bool = False, create: bool = True) -> ObservationStore:
    """The store at ``location``: a ``postgresql://`` URL, else an SQLite file path.

    ``capture``: keep messages and answers (see :class:`~sdk.live.records.Observation`).
    ``create``: make the file and tables when missing; False (a reader such as ``profile
    export``) raises ``ConfigError`` when there is no store there yet."""
    if is_postgres_url(location):
        return PostgresStore(location, capture=capture, create=create)
    return SQLiteStore(location, capture=capture, create=create)
