"""The live store's backends, for tests parametrised over both: ``open_live_store(**kw)`` opens
a store on one database per test (call it twice for two replicas), SQLite in ``tmp_path`` or a
fresh schema on the session's PostgreSQL server."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sdk.live.store import ObservationStore, open_store
from tests.support.postgres import fresh_schema_url

OpenStore = Callable[..., ObservationStore]


def _location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "live.sqlite")
    pytest.importorskip("psycopg")
    url: str = request.getfixturevalue("postgres_url")
    schema = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    return fresh_schema_url(url, schema)


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where this test's store lives: an SQLite file, or a PostgreSQL URL with its own schema."""
    return _location(request, tmp_path)


@pytest.fixture
def open_live_store(store_location: str) -> Iterator[OpenStore]:
    """Opens stores on this test's database (each call a new connection: a new replica); all are
    closed at the end."""
    opened: list[ObservationStore] = []

    def opener(**kwargs: object) -> ObservationStore:
        store = open_store(store_location, **kwargs)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()
