"""Captured frontier answers: training data for the next student, kept in the live store.

The engine hands every answered request to :meth:`CaptureWriter.offer`; a request is captured
when the frontier answered it (served, fallen back to, or escalated to), its route captures
(``sdk.live.capture_config``) and its category is one the route captures. ``offer`` redacts,
then puts the capture on a bounded queue and returns: the caller never waits for the store (a
full queue drops and counts). A background task writes batches off the event loop.

Redaction (:class:`Redactor`) runs in ``offer``, before the capture is queued: the policy's
``live.redact`` patterns and an optional callable (``Engine(..., redact=fn)``) rewrite every
string of the messages and the answer, so a configured pattern never reaches the store, nor
anything exported from it.

The table (:class:`CaptureTable`, ``bitrate_live_captures``) lives in the live store's database,
next to the observations, with ids from the store's counter table (monotone in commit order, as
observations' are) and the same retention (``live.retention_days``, ``live.max_rows`` per route).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sdk.decide import CategoryVerdict
from sdk.errors import BitrateError, ConfigError
from sdk.live.capture_config import CaptureConfig
from sdk.live.records import Observation, prompt_hash
from sdk.live.store import ObservationStore, open_store
from sdk.live.store_base import SqlStore
from sdk.policy import Policy
from sdk.protocol import ChatCompletion, ChatRequest
from sdk.request_context import REQUEST_ID

__all__ = [
    "REDACTED",
    "Capture",
    "CaptureCounters",
    "CaptureTable",
    "CaptureWriter",
    "Redactor",
    "RouteCapture",
    "frontier_answers",
    "observed_answer",
    "open_captures",
    "start_capture_writer",
]

log = logging.getLogger("bitrate.live")

REDACTED = "[REDACTED]"
"""What a redacted match is replaced by."""
_TABLE = "bitrate_live_captures"
_META = "bitrate_live_meta"
_COLUMNS = "route, category, model, prompt_hash, observed_at, request_id, messages, answer, id"
_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
        id {{int}} PRIMARY KEY, route TEXT NOT NULL, category TEXT NOT NULL, model TEXT NOT NULL,
        prompt_hash TEXT NOT NULL, observed_at {{float}} NOT NULL, request_id TEXT,
        messages TEXT NOT NULL, answer TEXT NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_route ON {_TABLE} (route, id)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_time ON {_TABLE} (observed_at)",
    f"INSERT INTO {_META} (name, value) VALUES ('capture', 0) ON CONFLICT (name) DO NOTHING",
)


@dataclass(frozen=True, slots=True)
class Capture:
    """One frontier-served request kept with its answer (texts already redacted)."""

    route: str
    """The route that served it."""
    category: str
    """Its task category."""
    model: str
    """The policy name of the frontier model that answered."""
    prompt_hash: str
    """:func:`~sdk.live.records.prompt_hash` of the (redacted) messages."""
    at: float
    """When the answer was complete (Unix seconds)."""
    request_id: str | None
    """The gateway's id of the request, when there is one."""
    messages: str
    """The request's messages as JSON text (a list of OpenAI chat messages)."""
    answer: str
    """The frontier's answer as JSON text (an assistant message: ``role``, ``content`` and
    ``tool_calls`` when it made any)."""
    id: int | None = None
    """The store's id; None before it is stored."""

    def chat(self) -> list[dict[str, Any]]:
        """The conversation with the answer as its last turn (the fine-tuning ``messages``)."""
        return [*json.loads(self.messages), json.loads(self.answer)]


class Redactor:
    """Replaces the matches of ``patterns`` with ``[REDACTED]`` in text, then applies ``hook``
    (a callable for sdk users: text in, text out)."""

    def __init__(self, patterns: Sequence[str] = (), hook: Callable[[str], str] | None = None):
        self.patterns = [re.compile(p) for p in patterns]
        self.hook = hook

    def __call__(self, text: str) -> str:
        for pattern in self.patterns:
            text = pattern.sub(REDACTED, text)
        return self.hook(text) if self.hook is not None else text

    def tree(self, value: Any) -> Any:
        """Every string in a JSON value redacted (a message's ``role`` is kept as it is)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            return {k: v if k == "role" else self.tree(v) for k, v in value.items()}
        return value


def _answer_message(completion: ChatCompletion) -> dict[str, Any] | None:
    """The first choice's message as an assistant turn, or None when there is no usable answer."""
    if not completion.choices:
        return None
    message = completion.choices[0].message
    turn: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
    if message.tool_calls:
        turn["tool_calls"] = [c.model_dump(mode="json", exclude_none=True) for c in message.tool_calls]
    elif not turn["content"]:
        return None
    return turn


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_capture(
    route: str,
    category: str,
    model: str,
    request: ChatRequest,
    completion: ChatCompletion,
    redactor: Redactor,
    request_id: str | None = None,
) -> Capture | None:
    """The capture of an answered request, redacted; None when the answer has nothing to learn."""
    answer = _answer_message(completion)
    if answer is None:
        return None
    messages = redactor.tree([m.model_dump(mode="json", exclude_none=True) for m in request.messages])
    return Capture(
        route,
        category,
        model,
        prompt_hash(messages),
        time.time(),
        request_id,
        _dumps(messages),
        _dumps(redactor.tree(answer)),
    )


class CaptureTable:
    """The captures in a live store's database (an :class:`~sdk.live.store_base.SqlStore`,
    SQLite or PostgreSQL): its connection, lock and error translation are reused, so a capture
    write is one more short transaction on the store."""

    def __init__(self, store: SqlStore, *, create: bool = True):
        """``create``: make the table when missing; False (a reader): ``ConfigError`` instead."""
        self.store = store
        if not create:
            if not self.exists(store):
                raise ConfigError("no captures in this live store yet", location=store.location)
            return
        with store._locked(), store._transaction() as tx:
            if store._SCHEMA_LOCK:
                tx.run(store._SCHEMA_LOCK, ())
            for statement in _SCHEMA:
                tx.run(statement.format(**store._TYPES), ())

    @staticmethod
    def exists(store: SqlStore) -> bool:
        """Whether ``store``'s database has the captures table."""
        with store._locked():
            return bool(store._query(store._TABLES_SQL, (_TABLE,) * 3)[0][0])  # counts tables so named

    def add(self, captures: Sequence[Capture]) -> list[int]:
        """Store a batch atomically; the ids given, in order."""
        if not captures:
            return []
        insert = f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES ({', '.join('?' * 9)})"
        bump = f"UPDATE {_META} SET value = value + ? WHERE name = 'capture' RETURNING value"
        with self.store._locked(), self.store._transaction() as tx:
            last = int(tx.run(bump, (len(captures),))[0][0])
            ids = list(range(last - len(captures) + 1, last + 1))
            rows = [
                (
                    c.route,
                    c.category,
                    c.model,
                    c.prompt_hash,
                    float(c.at),
                    c.request_id,
                    c.messages,
                    c.answer,
                    i,
                )
                for c, i in zip(captures, ids, strict=True)
            ]
            tx.many(insert, rows)
        return ids

    def read(self, after: int = 0, *, limit: int = 1000, route: str | None = None) -> list[Capture]:
        """Up to ``limit`` captures with id > ``after`` (of ``route``, if given), by id."""
        where = "id > ?" if route is None else "id > ? AND route = ?"
        params: list[Any] = [after] if route is None else [after, route]
        sql = f"SELECT {_COLUMNS} FROM {_TABLE} WHERE {where} ORDER BY id LIMIT ?"
        with self.store._locked():
            rows = self.store._query(sql, [*params, limit])
        return [Capture(*row) for row in rows]

    def export(self, *, route: str | None = None, batch: int = 1000) -> Iterator[Capture]:
        """Every capture (of ``route``, if given) by id, ``batch`` rows at a time."""
        after = 0
        while True:
            rows = self.read(after, limit=batch, route=route)
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1].id or after

    def prune(self, *, retention_days: float | None, max_rows: int | None, now: float | None = None) -> int:
        """Drop captures older than ``retention_days`` and, per route, all but the newest
        ``max_rows`` (as the store's ``prune`` does for observations). Rows dropped."""
        dropped = 0
        with self.store._locked(), self.store._transaction() as tx:
            if retention_days is not None:
                cutoff = (time.time() if now is None else now) - retention_days * 86400.0
                dropped += tx.write(f"DELETE FROM {_TABLE} WHERE observed_at < ?", (cutoff,))
            if max_rows is not None:
                for (route,) in tx.run(f"SELECT DISTINCT route FROM {_TABLE}", ()):
                    newest = f"SELECT id FROM {_TABLE} WHERE route = ? ORDER BY id DESC LIMIT 1 OFFSET ?"
                    sql = f"DELETE FROM {_TABLE} WHERE route = ? AND id <= ({newest})"
                    dropped += tx.write(sql, (route, route, max_rows))
        return dropped


@dataclass
class CaptureCounters:
    """What the writer did since it started."""

    captured: int = 0
    """Captures written to the store."""
    dropped: int = 0
    """Captures dropped because the queue was full."""
    failed: int = 0
    """Captures lost to a store error."""
    by_category: dict[str, int] = field(default_factory=dict)
    """Captures written, per category."""


@dataclass(frozen=True)
class RouteCapture:
    """What the writer needs to know of one capturing route."""

    config: CaptureConfig
    """The route's ``capture`` section."""
    safe: frozenset[str]
    """The categories the route's profile marks safe (captured only when named)."""


class CaptureWriter:
    """Queues captures and writes them in batches from a background task (see the module
    docstring). ``routes`` maps each capturing route to its :class:`RouteCapture`."""

    def __init__(
        self,
        table: CaptureTable,
        routes: dict[str, RouteCapture],
        redactor: Redactor,
        *,
        queue_size: int = 1024,
        batch: int = 64,
        retention: tuple[float | None, int | None] = (None, None),
    ):
        self.table, self.routes, self.redactor = table, routes, redactor
        self.counters = CaptureCounters()
        self._queue: asyncio.Queue[Capture] = asyncio.Queue(queue_size)
        self._batch = batch
        self._retention = retention
        self._task: asyncio.Task[None] | None = None

    def wants(self, route: str, category: str) -> bool:
        """Whether a frontier answer of ``route`` in ``category`` is captured."""
        spec = self.routes.get(route)
        return spec is not None and spec.config.includes(category, spec.safe)

    def offer(
        self,
        route: str,
        category: str,
        model: str,
        request: ChatRequest,
        completion: ChatCompletion,
        request_id: str | None = None,
    ) -> bool:
        """Capture a frontier answer when its route and category say so; never blocks. True
        when a capture was queued."""
        if not self.wants(route, category):
            return False
        request_id = request_id if request_id is not None else REQUEST_ID.get()
        capture = make_capture(route, category, model, request, completion, self.redactor, request_id)
        if capture is None:
            return False
        try:
            self._queue.put_nowait(capture)
        except asyncio.QueueFull:
            self.counters.dropped += 1
            return False
        return True

    async def start(self) -> None:
        """Prune by the store's retention, then start the writing task."""
        days, rows = self._retention
        await asyncio.to_thread(self.table.prune, retention_days=days, max_rows=rows)
        self._task = asyncio.create_task(self._run(), name="bitrate-capture-writer")

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[Capture]) -> None:
        try:
            await asyncio.to_thread(self.table.add, batch)
        except BitrateError as exc:
            self.counters.failed += len(batch)
            log.warning("capture: %d answers not stored: %s", len(batch), exc)
            return
        self.counters.captured += len(batch)
        for capture in batch:
            self.counters.by_category[capture.category] = (
                self.counters.by_category.get(capture.category, 0) + 1
            )

    async def flush(self) -> None:
        """Wait until every capture queued so far is written (or has failed)."""
        if self._task is not None:
            await self._queue.join()

    async def aclose(self) -> None:
        """Write what is queued, stop the task and close the store."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.table.store.close)


def observed_answer(observation: Observation) -> Capture | None:
    """The frontier's answer of a live pair stored with its texts (``live.capture``), as a
    capture: a spot check's (the student served; the frontier answered in the background) or a
    shadow pair's (the frontier served). None when the texts were not kept."""
    if observation.messages is None or observation.frontier_answer is None:
        return None
    return Capture(
        observation.route,
        observation.category,
        "frontier",
        observation.prompt_hash,
        observation.at,
        observation.request_id,
        observation.messages,
        observation.frontier_answer,
    )


def frontier_answers(store: ObservationStore, route: str | None = None) -> list[Capture]:
    """Every frontier answer the store keeps with its conversation, oldest first: the captures
    (when the store has any) and the frontier side of the live pairs stored with their texts."""
    found = [a for o in store.export(route=route) if (a := observed_answer(o)) is not None]
    if isinstance(store, SqlStore) and CaptureTable.exists(store):
        found += CaptureTable(store, create=False).export(route=route)
    return sorted(found, key=lambda c: c.at)


def open_captures(location: str, *, create: bool = True) -> CaptureTable:
    """The capture table of the live store at ``location`` (a file path or ``postgresql://`` URL);
    ``create=False`` (a reader) raises ``ConfigError`` when there is no store there yet."""
    store = open_store(location, capture=True, create=create)
    if not isinstance(store, SqlStore):  # pragma: no cover - both stores are SQL stores
        store.close()
        raise ConfigError("this live store keeps no captures", location=location)
    try:
        return CaptureTable(store, create=create)
    except BaseException:
        store.close()
        raise


async def start_capture_writer(
    policy: Policy,
    verdicts: Mapping[str, Mapping[str, CategoryVerdict]],
    hook: Callable[[str], str] | None = None,
) -> CaptureWriter | None:
    """The engine's capture writer, started; None when no route captures (nothing is opened).
    ``verdicts``: each route's profile verdicts (the default categories are the non-safe ones)."""
    live = policy.live
    if live is None:
        return None
    routes = {
        name: RouteCapture(
            route.capture, frozenset(c for c, v in verdicts.get(name, {}).items() if v.verdict == "safe")
        )
        for name, route in policy.routes.items()
        if route.capture.active(live.capture)
    }
    if not routes:
        return None
    location = live.store_location(policy.base_dir)
    table = await asyncio.to_thread(open_captures, location)
    writer = CaptureWriter(
        table, routes, Redactor(live.redact, hook), retention=(live.retention_days, live.max_rows)
    )
    await writer.start()
    return writer
