"""The ledger's rules for replicas (``sdk.live.ledger``), on rows and records built here: a row
is fed once, which records are adopted and which are written over, and what is fed again."""

from __future__ import annotations

from dataclasses import replace

from sdk.live.ledger import Ledger, Replay
from sdk.live.monitor import LiveMonitor, MonitorSettings
from sdk.live.records import MonitorRecord, Observation
from sdk.live.runtime import reset_record

SETTINGS = MonitorSettings(0.05, 0.9)


def rows(first: int, count: int, *, student: float = 1.0, category: str = "math") -> list[Observation]:
    return [
        Observation("auto", category, student, 1.0, "agreement:exact", "spot_check", "h", id=first + i)
        for i in range(count)
    ]


def record_of(ledger: Ledger, *, version: int) -> MonitorRecord:
    (record, _expected), *_ = ledger.records_to_write(checkpoint=True)
    return replace(record, version=version)


def test_a_row_is_fed_once():
    ledger = Ledger({"auto": SETTINGS})
    ledger.feed(rows(1, 10))
    ledger.feed(rows(5, 10))  # 5..10 seen already
    assert ledger.snapshots()[("auto", "math")].n == 14 and ledger.cursor == 14


def test_rows_of_a_route_the_policy_lacks_are_skipped_but_read():
    ledger = Ledger({"auto": SETTINGS})
    ledger.feed([replace(r, route="gone") for r in rows(1, 3)])
    assert ledger.snapshots() == {} and ledger.cursor == 3


def test_a_record_further_along_is_adopted():
    ahead, behind = Ledger({"auto": SETTINGS}), Ledger({"auto": SETTINGS})
    ahead.feed(rows(1, 20))
    behind.feed(rows(1, 5))
    changes, replays = behind.reconcile([record_of(ahead, version=7)])
    assert replays == [] and behind.snapshots()[("auto", "math")].n == 20
    behind.feed(rows(1, 25))  # only 21..25 are new to it
    assert behind.snapshots()[("auto", "math")].n == 25 and behind.state_version == 7


def test_a_demotion_elsewhere_is_adopted_and_the_rows_after_it_fed_again():
    demoted, fine = Ledger({"auto": SETTINGS}), Ledger({"auto": SETTINGS})
    demoted.feed(rows(1, 40, student=0.0))
    assert demoted.snapshots()[("auto", "math")].verdict == "unsafe"
    record = record_of(demoted, version=3)
    fine.feed(rows(1, 30) + rows(31, 20, student=1.0, category="chat"))
    record = replace(record, through=30)  # it demoted at 30; this ledger has read up to 50
    changes, replays = fine.reconcile([record])
    assert [(c.before, c.after, c.adopted) for c in changes] == [("uncertain", "unsafe", True)]
    assert replays == [Replay("auto", "math", 30, 50)]
    assert fine.demotions({})[("auto", "math")].grader == "agreement:exact"


def test_a_record_with_other_settings_is_written_over():
    ours, theirs = Ledger({"auto": SETTINGS}), Ledger({"auto": MonitorSettings(0.10, 0.9)})
    ours.feed(rows(1, 5))
    theirs.feed(rows(1, 9))
    ours.records_to_write(checkpoint=True)
    changes, replays = ours.reconcile([record_of(theirs, version=4)])
    assert (changes, replays) == ([], []) and ours.snapshots()[("auto", "math")].n == 5
    [(_record, expected)] = ours.records_to_write(checkpoint=True)
    assert expected == 4  # ours replaces theirs at the next write


def test_a_reset_is_adopted_even_when_behind():
    ledger = Ledger({"auto": SETTINGS})
    ledger.feed(rows(1, 40, student=0.0))
    reset = replace(reset_record("auto", "math", SETTINGS, through=35, by="ops", at=1.0), version=9)
    changes, replays = ledger.reconcile([reset])
    assert [(c.before, c.after) for c in changes] == [("unsafe", "uncertain")]
    assert replays == [Replay("auto", "math", 35, 40)]
    assert LiveMonitor.from_dict(reset.state).snapshot().n == 0


def test_a_write_that_lost_the_race_stays_pending():
    ledger = Ledger({"auto": SETTINGS})
    ledger.feed(rows(1, 40, student=0.0))
    [(record, expected)] = ledger.records_to_write(checkpoint=False)  # the demotion is urgent
    assert expected == 0 and record.verdict == "unsafe"
    assert not ledger.written(record, None)
    assert ledger.records_to_write(checkpoint=False) != []
    assert ledger.written(record, replace(record, version=1))
    assert ledger.records_to_write(checkpoint=True) == []
