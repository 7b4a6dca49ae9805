"""The live monitors of every route, kept in step with the store that the replicas share. Pure:
the store's rows and records come in, the records to write go out; the runtime
(``sdk.live.runtime``) does the I/O.

How replicas agree
------------------
The store's observation log is the one source of evidence. Every replica feeds each category's
monitor with every observation of it, its own and the others', in id order (ids are monotone in
commit order), so replicas that read the same rows hold the same monitors and demote at the same
row. Each (route, category) remembers ``through``, the last id fed to it, and skips rows at or
below it, so a row is never fed twice.

Monitor records (``MonitorRecord``, versioned) carry a monitor's state; a replica writes its own
when a verdict changes and at each refresh (a checkpoint that lets a new replica, or ``bitrate
profile live``, start from it), with ``expected=`` the version it last saw. A record read from the
store is **adopted** (the monitor replaced by its state, then fed the rows after its ``through``)
when it

1. is the category's first sight here, or
2. is a reset this replica has not applied (newer ``reset_at``: a person's reset reaches every
   replica), or
3. is further along (larger ``through``), or
4. says demoted while the monitor here is not (a demotion anywhere applies everywhere);

otherwise the replica keeps its monitor and writes it over the record at its next write. A record
whose monitor settings differ from the route's (the policy changed) is never adopted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

from sdk.decide import LiveDemotion
from sdk.decision import Verdict
from sdk.live.board import MonitorBoard
from sdk.live.monitor import LiveMonitor, LiveSnapshot, MonitorSettings
from sdk.live.records import MonitorRecord, Observation

__all__ = ["Ledger", "LiveChange", "Replay"]

Key = tuple[str, str]
"""(route, category)."""


@dataclass(frozen=True, slots=True)
class LiveChange:
    """A category's live verdict changed (logged, posted to the webhook, counted)."""

    route: str
    """The route."""
    category: str
    """The category."""
    before: Verdict
    """The verdict before (``unknown`` at a category's first observation here)."""
    after: Verdict
    """The verdict now."""
    at: int
    """Id of the observation that changed it (for an adopted record: the record's ``through``)."""
    snapshot: LiveSnapshot
    """The monitor's figures right after."""
    grader: str
    """The grader of the observations behind it."""
    adopted: bool = False
    """True when the change came from another replica's (or a person's) record."""

    def line(self) -> str:
        """One line for the log."""
        s = self.snapshot
        loss = "-" if s.loss is None else f"{s.loss:.3f}"
        figures = f"loss {loss}, {s.confidence * 100:g}% [{s.loss_low:.3f}, {s.loss_high:.3f}], n={s.n}"
        how = "from the store" if self.adopted else f"at observation {self.at}"
        return (
            f"live verdict of '{self.category}' on route '{self.route}': {self.before} -> {self.after} "
            f"{how} ({figures}, {self.grader or 'no grader'})"
        )

    def to_json(self) -> dict[str, object]:
        """The webhook's body."""
        s = self.snapshot
        return {
            "route": self.route,
            "category": self.category,
            "from": self.before,
            "to": self.after,
            "at": self.at,
            "n": s.n,
            "loss": s.loss,
            "loss_low": s.loss_low,
            "loss_high": s.loss_high,
            "confidence": s.confidence,
            "max_loss": s.max_loss,
            "demoted_since": s.demoted_since,
            "grader": self.grader,
        }


@dataclass(frozen=True, slots=True)
class Replay:
    """Rows to feed again to one category after adopting a record: ids in (``after``, ``upto``]."""

    route: str
    category: str
    after: int
    upto: int


@dataclass
class _Entry:
    """What this replica knows of one (route, category) besides its monitor."""

    through: int = 0
    version: int = 0
    reset_at: float | None = None
    reset_by: str | None = None
    grader: str = ""
    dirty: bool = False
    """Fed since the last write (or behind the store's record): write at the next checkpoint."""
    urgent: bool = False
    """Its verdict changed: write at the next sync."""


class Ledger:
    """Every route's :class:`MonitorBoard`, fed from the store's log (see the module docstring)."""

    def __init__(self, settings: Mapping[str, MonitorSettings], *, clock: Callable[[], float] = time.time):
        """``settings``: each route's monitor settings (its tolerance, ``auto_promote``)."""
        self._clock = clock
        self.boards = {route: MonitorBoard(s, clock=clock) for route, s in settings.items()}
        self._settings = {route: asdict(s) for route, s in settings.items()}
        self._entries: dict[Key, _Entry] = {}
        self.cursor = 0
        """The largest observation id read from the log."""
        self.state_version = 0
        """The largest record version read from the store."""

    # ------------------------------------------------------------------ reading the store

    def seed(self, records: Iterable[MonitorRecord]) -> None:
        """Start from the store's records (at startup): adopt each, then read the log from the
        smallest ``through`` adopted (categories with no record are read from there too)."""
        throughs = []
        for record in records:
            self.state_version = max(self.state_version, record.version)
            if self._adoptable(record):
                self._adopt(record)
                throughs.append(record.through)
        self.cursor = min(throughs, default=0)

    def feed(
        self, rows: Iterable[Observation], *, only: Key | None = None, upto: int | None = None
    ) -> list[LiveChange]:
        """Feed rows (in id order) to their categories' monitors, skipping what each has seen;
        ``only``: just that category's rows (a replay), ``upto``: stop past that id. Rows of
        routes this policy does not have are skipped. The verdict changes made."""
        changes = []
        for row in rows:
            row_id = row.id or 0
            if upto is not None and row_id > upto:
                break
            if only is None:
                self.cursor = max(self.cursor, row_id)
            key = (row.route, row.category)
            board = self.boards.get(row.route)
            if board is None or (only is not None and key != only):
                continue
            entry = self._entries.setdefault(key, _Entry())
            if row_id <= entry.through:
                continue
            monitor = board.get(row.category)
            before: Verdict = monitor.verdict if monitor is not None else "unknown"
            after = board.monitor(row.category).observe(row.student, row.frontier)
            entry.through, entry.grader, entry.dirty = row_id, row.grader, True
            if after != before:
                entry.urgent = True
                snapshot = board.monitor(row.category).snapshot()
                change = LiveChange(row.route, row.category, before, after, row_id, snapshot, row.grader)
                changes.append(change)
        return changes

    def reconcile(self, records: Iterable[MonitorRecord]) -> tuple[list[LiveChange], list[Replay]]:
        """Take in records written since the last look (by any replica, or a person's reset):
        the verdict changes adopted and the rows to feed again."""
        changes, replays = [], []
        for record in records:
            self.state_version = max(self.state_version, record.version)
            key = (record.route, record.category)
            entry = self._entries.get(key)
            if entry is not None and record.version <= entry.version:
                continue  # our own write, or older than what we hold
            if not self._adoptable(record):
                if entry is not None and record.route in self.boards:
                    entry.version, entry.dirty = record.version, True
                continue
            if not self._should_adopt(record, entry):
                assert entry is not None  # _should_adopt adopts a first sight
                entry.version = record.version
                entry.dirty = entry.dirty or record.through != entry.through
                continue
            change = self._adopt(record)
            if change is not None:
                changes.append(change)
            if record.through < self.cursor:
                replays.append(Replay(record.route, record.category, record.through, self.cursor))
        return changes, replays

    # ------------------------------------------------------------------ writing the store

    def records_to_write(self, *, checkpoint: bool) -> list[tuple[MonitorRecord, int]]:
        """``(record, expected version)`` for each category whose verdict changed, and with
        ``checkpoint`` each one fed since its last write."""
        out = []
        for (route, category), entry in self._entries.items():
            if not (entry.urgent or (checkpoint and entry.dirty)):
                continue
            monitor = self.boards[route].get(category)
            if monitor is not None:
                out.append((self._record(route, category, monitor, entry), entry.version))
        return out

    def written(self, sent: MonitorRecord, stored: MonitorRecord | None) -> bool:
        """Note the outcome of writing ``sent``: the stored record, or None when another writer
        got there first (the caller reads the store's record and :meth:`reconcile` s it). True
        when written."""
        entry = self._entries[(sent.route, sent.category)]
        if stored is None:
            return False
        entry.version = max(entry.version, stored.version)
        if entry.through == sent.through:
            entry.dirty = entry.urgent = False
        return True

    # ------------------------------------------------------------------ views

    def demotions(self, previous: Mapping[Key, LiveDemotion]) -> dict[Key, LiveDemotion]:
        """Every demoted category with the figures of its demotion; an unchanged demotion keeps
        its object from ``previous`` (decisions are memoised on it)."""
        out = {}
        for route, board in self.boards.items():
            for category, snapshot in board.snapshots().items():
                since = snapshot.demoted_since
                if since is None:
                    continue
                key = (route, category)
                old = previous.get(key)
                if old is not None and old.since == since:
                    out[key] = old
                    continue
                out[key] = LiveDemotion(
                    since=since,
                    loss=snapshot.loss,
                    low=snapshot.loss_low,
                    high=snapshot.loss_high,
                    confidence=snapshot.confidence,
                    grader=self.grader(route, category),
                    n=snapshot.n,
                )
        return out

    def grader(self, route: str, category: str) -> str:
        """The grader of the last observation fed to (route, category), or ``""``."""
        entry = self._entries.get((route, category))
        return entry.grader if entry is not None else ""

    def snapshots(self) -> dict[Key, LiveSnapshot]:
        """Every monitor's figures now."""
        return {
            (route, category): snapshot
            for route, board in self.boards.items()
            for category, snapshot in board.snapshots().items()
        }

    # ------------------------------------------------------------------ internals

    def _adoptable(self, record: MonitorRecord) -> bool:
        settings = self._settings.get(record.route)
        return settings is not None and record.state.get("settings") == settings

    def _should_adopt(self, record: MonitorRecord, entry: _Entry | None) -> bool:
        if entry is None:
            return True
        if record.reset_at is not None and (entry.reset_at is None or record.reset_at > entry.reset_at):
            return True
        if record.through > entry.through:
            return True
        monitor = self.boards[record.route].get(record.category)
        return record.demoted_since is not None and (monitor is None or monitor.demoted_since is None)

    def _adopt(self, record: MonitorRecord) -> LiveChange | None:
        board = self.boards[record.route]
        old = board.get(record.category)
        before: Verdict = old.verdict if old is not None else "unknown"
        monitor = LiveMonitor.from_dict(record.state, clock=self._clock)
        board.put(record.category, monitor)
        entry = self._entries.setdefault((record.route, record.category), _Entry())
        entry.through, entry.version = record.through, record.version
        entry.reset_at, entry.reset_by = record.reset_at, record.reset_by
        entry.dirty = entry.urgent = False
        if monitor.verdict == before or old is None:
            return None
        snapshot = monitor.snapshot()
        grader = entry.grader
        return LiveChange(
            record.route, record.category, before, monitor.verdict, record.through, snapshot, grader, True
        )

    def _record(self, route: str, category: str, monitor: LiveMonitor, entry: _Entry) -> MonitorRecord:
        return MonitorRecord(
            route=route,
            category=category,
            verdict=monitor.verdict,
            state=monitor.to_dict(),
            demoted_since=monitor.demoted_since,
            reset_by=entry.reset_by,
            reset_at=entry.reset_at,
            through=entry.through,
        )
