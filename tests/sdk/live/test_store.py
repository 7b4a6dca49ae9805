"""The live store, on SQLite and on a real PostgreSQL server alike: observations with monotone ids
that replicas read after an id, monitor records with versions that replicas see and cannot
overwrite unseen, retention, capture, and the export into the outcomes format."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from profiles.live_export import export_outcomes, placeholder_prompt
from profiles.outcomes import read_outcome_rows, read_outcomes
from sdk.errors import BackendUnavailable, ConfigError, DependencyMissing
from sdk.live import LiveMonitor, MonitorRecord, Observation, open_store, prompt_hash
from tests.sdk.live.conftest import OpenStore
from tests.support.postgres import fresh_schema_url

NOW = 1_800_000_000.0
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2? secret-42"}]


def obs(i: int = 0, *, route: str = "auto", category: str = "math", at: float = NOW, **kw) -> Observation:
    fields = {
        "student": (i % 3) / 2,
        "frontier": 1.0,
        "grader": "numeric",
        "direction": "spot_check",
        "prompt_hash": prompt_hash([{"role": "user", "content": f"q{i}"}]),
        "request_id": f"req-{i}",
        **kw,
    }
    return Observation(route=route, category=category, at=at, **fields)


def captured(i: int = 0, **kw) -> Observation:
    return obs(
        i,
        messages=json.dumps(MESSAGES),
        student_answer=json.dumps({"role": "assistant", "content": "5"}),
        frontier_answer=json.dumps({"role": "assistant", "content": "4"}),
        **kw,
    )


# ---------------------------------------------------------------------- observations


def test_add_gives_monotone_ids_and_read_after_an_id_returns_the_rest(open_live_store: OpenStore):
    store = open_live_store()
    assert store.last_id() == 0 and store.read() == []
    first = store.add([obs(0), obs(1), obs(2, route="other")])
    second = store.add([obs(3)])
    assert first == [1, 2, 3] and second == [4] and store.last_id() == 4
    rows = store.read()
    assert [r.id for r in rows] == [1, 2, 3, 4]
    assert rows[0] == replace(obs(0), id=1)  # every field back as given
    assert [r.id for r in store.read(after=2)] == [3, 4]
    assert [r.id for r in store.read(after=0, limit=2)] == [1, 2]
    assert [r.id for r in store.read(after=0, route="other")] == [3]
    assert store.read(after=4) == [] and store.add([]) == []


def test_a_second_replica_catches_up_by_reading_after_the_last_id_it_saw(open_live_store: OpenStore):
    a, b = open_live_store(), open_live_store()
    a.add([obs(0), obs(1)])
    seen = b.read()
    b.add([obs(2)])
    a.add([obs(3)])
    newer = b.read(after=seen[-1].id)
    assert [(r.id, r.request_id) for r in newer] == [(3, "req-2"), (4, "req-3")]


def test_concurrent_writers_never_make_a_reader_skip_an_id(open_live_store: OpenStore):
    """Ids become visible in order: a replica polling ``read(after=last)`` while two others write
    from several threads sees every id once, ascending (no later id committed before an earlier)."""
    writers = [open_live_store(), open_live_store()]
    reader = open_live_store()
    batches, size = 30, 3
    done = threading.Event()
    seen: list[int] = []

    def write(store, offset: int) -> None:
        for n in range(batches):
            store.add([obs(offset + n * size + k) for k in range(size)])

    def poll() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for row in reader.read(after=last, limit=7):
                seen.append(row.id)
                last = row.id
            if finished and reader.read(after=last) == []:
                return

    threads = [threading.Thread(target=write, args=(w, 1000 * i)) for i, w in enumerate(writers * 2)]
    polling = threading.Thread(target=poll)
    polling.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    polling.join(timeout=60)
    total = len(threads) * batches * size
    assert seen == list(range(1, total + 1))


def test_several_processes_share_one_store(store_location: str):
    """Two processes write to one store at once (SQLite: one file in WAL mode)."""
    code = (
        "import sys\n"
        "from sdk.live import Observation, open_store\n"
        "store = open_store(sys.argv[1])\n"
        "for i in range(40):\n"
        "    store.add([Observation('auto', 'm', 1.0, 1.0, 'exact', 'shadow', 'h', 1.0)] * 2)\n"
        "store.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, store_location]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with open_store(store_location) as store:
        assert [r.id for r in store.export(batch=50)] == list(range(1, 161))


# ---------------------------------------------------------------------- capture


def test_capture_off_stores_no_text(open_live_store: OpenStore):
    writer = open_live_store(capture=False)
    writer.add([captured(0)])
    for store in (writer, open_live_store(capture=True)):  # what the database holds, read either way
        (row,) = store.read()
        assert row.messages is None and row.student_answer is None and row.frontier_answer is None
        assert row.prompt_hash == captured(0).prompt_hash and row.grader == "numeric"


def test_capture_on_keeps_the_messages_and_both_answers(open_live_store: OpenStore):
    store = open_live_store(capture=True)
    store.add([captured(0)])
    (row,) = store.read()
    assert json.loads(row.messages) == MESSAGES
    assert (
        json.loads(row.student_answer)["content"] == "5" and json.loads(row.frontier_answer)["content"] == "4"
    )


# ---------------------------------------------------------------------- monitor records


def record(verdict="uncertain", **kw) -> MonitorRecord:
    monitor = LiveMonitor.create(0.05, 0.9)
    monitor.observe(1.0, 1.0)
    return MonitorRecord("auto", "math", verdict, monitor.to_dict(), **kw)


def test_states_carry_versions_that_a_second_replica_sees(open_live_store: OpenStore):
    a, b = open_live_store(), open_live_store()
    stored = a.put_state(record(through=7), expected=0)
    assert stored is not None and stored.version >= 1 and stored.through == 7
    (seen,) = b.states()
    assert seen == stored
    assert LiveMonitor.from_dict(seen.state).to_dict() == record().state  # the monitor's whole state
    demoted = b.put_state(record("unsafe", demoted_since=NOW), expected=seen.version)
    assert demoted is not None and demoted.version > seen.version
    (refreshed,) = a.states(after_version=stored.version)  # a's refresh: only what changed
    assert refreshed.verdict == "unsafe" and refreshed.demoted_since == NOW
    assert a.states(after_version=refreshed.version) == []
    assert a.state("auto", "math") == refreshed and a.state("auto", "nope") is None


def test_a_replica_cannot_overwrite_a_record_it_has_not_seen(open_live_store: OpenStore):
    a, b = open_live_store(), open_live_store()
    first = a.put_state(record(), expected=0)
    assert first is not None
    assert b.put_state(record(), expected=0) is None  # it exists already
    assert b.put_state(record("unsafe", demoted_since=NOW), expected=first.version) is not None
    assert a.put_state(record("safe"), expected=first.version) is None  # a's copy is stale
    assert a.state("auto", "math").verdict == "unsafe"
    reset = a.put_state(record("uncertain", reset_by="ops@example.com", reset_at=NOW), expected=None)
    assert reset is not None and b.state("auto", "math") == reset and reset.reset_by == "ops@example.com"


def test_states_filter_by_route_and_come_in_version_order(open_live_store: OpenStore):
    store = open_live_store()
    for route, category in (("auto", "a"), ("other", "b"), ("auto", "c")):
        assert store.put_state(MonitorRecord(route, category, "safe", {}), expected=0) is not None
    assert [r.category for r in store.states()] == ["a", "b", "c"]
    assert [r.category for r in store.states(route="auto")] == ["a", "c"]


# ---------------------------------------------------------------------- retention


def test_prune_drops_old_rows_and_keeps_the_newest_per_route(open_live_store: OpenStore):
    store = open_live_store()
    store.add([obs(i, at=NOW - 40 * 86400) for i in range(2)])  # ids 1-2: too old
    store.add([obs(i, route="a", at=NOW) for i in range(5)] + [obs(9, route="b", at=NOW)] * 2)  # 3-9
    assert store.prune(retention_days=30, max_rows=3, now=NOW) == 2 + 2
    assert [(r.route, r.id) for r in store.read()] == [("a", 5), ("a", 6), ("a", 7), ("b", 8), ("b", 9)]
    assert store.prune(retention_days=None, max_rows=None, now=NOW) == 0
    assert store.add([obs(0)]) == [10]  # ids are never reused


# ---------------------------------------------------------------------- export


def test_export_round_trips_through_the_outcomes_reader(open_live_store: OpenStore, tmp_path):
    store = open_live_store(capture=True)
    store.add([captured(0, category="math"), obs(1, category="code", direction="shadow", grader="judge")])
    path = tmp_path / "outcomes.jsonl"
    summary = export_outcomes(store.export(), path)
    assert summary.rows == 2 and summary.with_messages == 1
    assert summary.graders == {"numeric": 1, "judge": 1}
    rows = read_outcome_rows(path)
    assert [(r.id, r.category, r.student, r.frontier) for r in rows] == [
        (1, "math", 0.0, 1.0),
        (2, "code", 0.5, 1.0),
    ]
    assert [m.model_dump(exclude_none=True) for m in rows[0].messages] == MESSAGES
    assert rows[0].prompt_text() == "What is 2+2? secret-42"
    assert rows[1].prompt == placeholder_prompt(obs(1).prompt_hash) and rows[1].messages is None
    assert [o.id for o in read_outcomes(path)] == ["1", "2"]  # `profile import`'s stricter reader


def test_export_reads_in_batches_and_by_route(open_live_store: OpenStore):
    store = open_live_store()
    store.add([obs(i, route="a" if i % 2 else "b") for i in range(7)])
    assert [o.id for o in store.export(batch=2)] == list(range(1, 8))
    assert [o.id for o in store.export(route="a", batch=2)] == [2, 4, 6]


# ---------------------------------------------------------------------- opening and failing


def test_a_reader_finds_no_store_where_none_was_made(store_location: str):
    with pytest.raises(ConfigError, match="no live store here"):
        open_store(store_location, create=False)
    open_store(store_location).close()
    open_store(store_location, create=False).close()


def test_a_closed_store_says_so(open_live_store: OpenStore):
    store = open_live_store()
    store.close()
    store.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        store.read()


def test_a_store_from_another_schema_version_is_refused(tmp_path):
    import sqlite3

    path = tmp_path / "live.sqlite"
    open_store(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE bitrate_live_meta SET value = 99 WHERE name = 'schema'")
    with pytest.raises(ConfigError, match="schema version 99"):
        open_store(str(path))


def test_an_unreachable_postgres_server_is_a_backend_error():
    pytest.importorskip("psycopg")
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="live-store") as caught:
        open_store("postgresql://bitrate:hunter2@127.0.0.1:9/nothing")
    assert "hunter2" not in str(caught.value) and time.monotonic() - started < 15


def test_postgres_without_psycopg_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(DependencyMissing, match=r"bitrate\[postgres\]"):
        open_store("postgresql://bitrate@127.0.0.1:9/nothing")


# ---------------------------------------------------------------------- records


def test_records_refuse_what_no_store_should_hold():
    with pytest.raises(ValueError, match="scores"):
        obs(0, student=1.5)
    with pytest.raises(ValueError, match="direction"):
        obs(0, direction="sideways")
    with pytest.raises(ValueError, match="verdict"):
        MonitorRecord("auto", "math", "fine", {})  # type: ignore[arg-type]


def test_prompt_hash_ignores_key_order_but_not_content():
    a = [{"role": "user", "content": "hi"}]
    assert prompt_hash(a) == prompt_hash([{"content": "hi", "role": "user"}])
    assert prompt_hash(a) != prompt_hash([{"role": "user", "content": "hi!"}])


def test_a_postgres_store_reconnects_after_its_connection_drops(postgres_url: str):
    psycopg = pytest.importorskip("psycopg")
    url = fresh_schema_url(postgres_url, "reconnect") + "&application_name=replica-7"
    with open_store(url) as store:
        store.add([obs(0)])
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            assert admin.execute(sql, ("replica-7",)).fetchall() == [(True,)]
        with pytest.raises(BackendUnavailable):  # the call that finds the connection gone fails...
            store.read()
        assert store.read(after=store.last_id() - 1)[0].request_id == "req-0"  # ...the next reconnects
