"""The live runtime: what the engine holds when the policy has ``live:``.

- **Shadow traffic** (``sdk.live.shadow``): per route with ``shadow`` on, answered requests are
  sampled (:meth:`LiveRuntime.answered`, :meth:`LiveRuntime.stream_tap`), answered by the other
  side in the background and graded; each graded pair is an observation.
- **Store and monitors** (``sdk.live.ledger``): observations are appended to the store in
  batches, off the event loop (``asyncio.to_thread``), every ``tick`` seconds while there are
  some; each sync then reads the log's new rows (this replica's and the others') and feeds them
  to the monitors in id order. Every ``refresh_seconds`` a sync also reads the records other
  replicas (or a person's reset) wrote, writes this replica's checkpoints and adds its counters
  (requests, undetected tasks, spend) to the store's: replicas share evidence and verdicts within
  a refresh. A verdict change is written at once.
- **Verdict changes** are logged (one line; a demotion or promotion as a warning) and POSTed to
  ``live.webhook`` when set (``sdk.live.webhook``: bounded, never blocking).
- **The view decide reads**: :meth:`LiveRuntime.demotion` (route, category) -> the
  :class:`~sdk.decide.LiveDemotion`, or None; a plain dict lookup, updated after each sync.

A store that fails (``BackendUnavailable``) is logged and tried again at the next sync; the
observations waiting meanwhile are kept up to ``max_pending`` (the oldest dropped and counted).
Routing never waits for the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sdk.checks import answer_of, answer_of_chunks
from sdk.decide import LiveDemotion
from sdk.decision import Decision
from sdk.errors import BackendUnavailable
from sdk.live.capture import Redactor
from sdk.live.config import LiveConfig
from sdk.live.ledger import Key, Ledger, LiveChange
from sdk.live.monitor import LiveMonitor, LiveSnapshot, MonitorSettings
from sdk.live.records import MonitorRecord, Observation
from sdk.live.shadow import BackendCall, RouteShadow, ShadowCounters, ShadowJob, answer_text
from sdk.live.store import ObservationStore, open_store
from sdk.live.webhook import Post, Webhook
from sdk.policy import Policy
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = [
    "LiveView",
    "LiveRuntime",
    "StreamTap",
    "Traffic",
    "counter_labels",
    "counter_name",
    "monitor_settings",
    "reset_record",
]

log = logging.getLogger("bitrate.live")

StoreOpener = Callable[..., ObservationStore]
_PRUNE_SECONDS = 600.0
"""Seconds between retention passes (each replica runs its own; they are idempotent)."""
_READ_BATCH = 1000


def monitor_settings(policy: Policy) -> dict[str, MonitorSettings]:
    """Each route's monitor settings: its tolerance and ``shadow.auto_promote``."""
    return {
        name: MonitorSettings(r.tolerance.max_loss, r.tolerance.confidence, r.shadow.auto_promote)
        for name, r in policy.routes.items()
    }


def counter_name(kind: str, *labels: str) -> str:
    """The store counter of ``kind`` (``requests``, ``undetected`` per route; ``spend_micro``,
    in millionths of a dollar, per route and category; ``graded`` per route, category and
    grader) for ``labels``: a JSON array, so any name round-trips."""
    return json.dumps([kind, *labels], ensure_ascii=False, separators=(",", ":"))


def counter_labels(name: str) -> tuple[str, list[str]] | None:
    """``(kind, labels)`` of a :func:`counter_name`, or None for a name it did not make."""
    try:
        parts = json.loads(name)
    except ValueError:
        return None
    if not (isinstance(parts, list) and parts and all(isinstance(p, str) for p in parts)):
        return None
    return parts[0], parts[1:]


def reset_record(
    route: str, category: str, settings: MonitorSettings, *, through: int, by: str, at: float | None = None
) -> MonitorRecord:
    """The record of a person's reset of (route, category): a fresh monitor that starts after
    observation ``through`` (the store's last id), written with ``put_state(expected=None)``;
    every replica adopts it at its next refresh."""
    monitor = LiveMonitor(settings)
    return MonitorRecord(
        route=route,
        category=category,
        verdict=monitor.verdict,
        state=monitor.to_dict(),
        reset_by=by,
        reset_at=time.time() if at is None else at,
        through=through,
    )


@dataclass
class Traffic:
    """One route's routed requests (this replica, since start)."""

    requests: int = 0
    """Requests answered through the route."""
    undetected: int = 0
    """Of them, those whose task was not detected (novel traffic)."""

    @property
    def novel_share(self) -> float | None:
        """``undetected / requests``; None before the first request."""
        return self.undetected / self.requests if self.requests else None


class StreamTap:
    """Collects a sampled stream's chunks; when the stream finished, offers its shadow job."""

    def __init__(self, offer: Callable[[ShadowJob], object], job: Callable[[str], ShadowJob]):
        self._offer, self._job = offer, job
        self._chunks: list[ChatCompletionChunk] = []

    def batch(self, chunks: Sequence[ChatCompletionChunk]) -> None:
        """Chunks as they were sent to the caller."""
        self._chunks.extend(chunks)

    def done(self) -> None:
        """The stream ended well: offer the job built from the assembled answer."""
        chunks, self._chunks = self._chunks, []
        self._offer(self._job(answer_text(answer_of_chunks(chunks))))


class LiveView(Protocol):
    """What the engine and the gateway's metrics use of a live runtime: :class:`LiveRuntime` in
    the engine's process, or ``sdk.live.isolated.IsolatedLive`` with the work in a child."""

    @property
    def traffic(self) -> Mapping[str, Traffic]:
        """Per route, the routed requests and those whose task was not detected."""
        ...

    @property
    def demotions_seen(self) -> Mapping[Key, int]:
        """(route, category) -> live demotions seen."""
        ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def demotion(self, route: str, category: str) -> LiveDemotion | None: ...

    def answered(self, request: ChatRequest, decision: Decision, completion: ChatCompletion) -> None: ...

    def stream_tap(self, request: ChatRequest, decision: Decision) -> StreamTap | None: ...

    def snapshots(self) -> dict[Key, LiveSnapshot]:
        """Every monitor's figures now."""
        ...

    def grader(self, route: str, category: str) -> str:
        """The grader of (route, category)'s evidence, or ``""``."""
        ...

    def shadow_figures(self) -> dict[str, tuple[ShadowCounters, int]]:
        """Per route with shadow traffic: its counters and the jobs waiting now."""
        ...


class LiveRuntime:
    """Shadow traffic, the store and the monitors of one engine (see the module docstring)."""

    def __init__(
        self,
        policy: Policy,
        call: BackendCall,
        *,
        known: Mapping[str, Collection[str]],
        open_store: StoreOpener = open_store,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        post: Post | None = None,
        tick: float = 0.2,
        max_pending: int = 50_000,
    ):
        """``call`` reaches a model's backend (shadow and judge calls); ``known`` each route's
        categories (profile, rule tasks, pins); ``open_store``, ``clock``, ``rng`` and ``post``
        (the webhook's sender) are injectable; ``tick``: seconds between flushes of this
        replica's observations."""
        if policy.live is None:
            raise ValueError("a live runtime needs the policy's `live:` section")
        self.config: LiveConfig = policy.live
        base = Path(policy.source).resolve().parent if policy.source else Path.cwd()
        self.location = self.config.store_location(base)
        self.ledger = Ledger(monitor_settings(policy), clock=clock)
        self.traffic = {name: Traffic() for name in policy.routes}
        self.demotions_seen: dict[Key, int] = {}
        """(route, category) -> demotions this replica saw (its own or adopted)."""
        self.store_dropped = 0
        """Observations dropped because the store was unreachable for too long."""
        self.shadows: dict[str, RouteShadow] = {}
        for name, route in policy.routes.items():
            if route.shadow.enabled:
                self.shadows[name] = RouteShadow(
                    name,
                    route,
                    call,
                    lambda model: policy.models[model].price,
                    known=known.get(name, ()),
                    sink=self._observed,
                    capture=self.config.capture,
                    redact=Redactor(self.config.redact),
                    rng=rng,
                )
        self._open, self._tick, self._max_pending = open_store, tick, max_pending
        self._store: ObservationStore | None = None
        self._pending: list[Observation] = []
        self._demotions: dict[Key, LiveDemotion] = {}
        self._graded: dict[str, int] = {}
        self._flushed: dict[str, int] = {}
        self._webhook = Webhook(self.config.webhook, post=post) if self.config.webhook else None
        self._loop_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._failing = False
        self._pruned_at = 0.0

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Open the store, seed the monitors from its records and catch up with its log (so the
        demotions known anywhere apply from the first request), then start the background work."""
        self._store = await asyncio.to_thread(self._open, self.location, capture=self.config.capture)
        records = await asyncio.to_thread(self._store.states)
        self.ledger.seed(records)
        await self._sync(full=True)
        for shadow in self.shadows.values():
            shadow.start()
        if self._webhook is not None:
            self._webhook.start()
        self._loop_task = asyncio.create_task(self._run(), name="live-sync")

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop the shadow workers, write what is pending (for up to ``grace`` seconds), close."""
        for shadow in self.shadows.values():
            await shadow.aclose()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._store is not None:
            with contextlib.suppress(BackendUnavailable, TimeoutError):
                await asyncio.wait_for(self._sync(full=True), grace)
        if self._webhook is not None:
            await self._webhook.aclose()
        store, self._store = self._store, None
        if store is not None:
            await asyncio.to_thread(store.close)

    # ------------------------------------------------------------------ the request path

    def demotion(self, route: str, category: str) -> LiveDemotion | None:
        """The live demotion of (route, category), or None (what ``decide`` reads)."""
        return self._demotions.get((route, category))

    def demoted(self, route: str, category: str) -> float | None:
        """When (route, category) was demoted (Unix seconds), or None."""
        found = self._demotions.get((route, category))
        return found.since if found is not None else None

    def answered(self, request: ChatRequest, decision: Decision, completion: ChatCompletion) -> None:
        """A JSON answer was complete: count it, and maybe queue its shadow job (never waits)."""
        shadow = self._count(decision)
        direction = shadow.sample(decision) if shadow is not None else None
        if shadow is not None and direction is not None:
            served = answer_text(answer_of(completion))
            shadow.offer(ShadowJob(decision.task, direction, request, served))

    def stream_tap(self, request: ChatRequest, decision: Decision) -> StreamTap | None:
        """A stream starts: count it; a tap to give the finished stream to, when it is sampled."""
        shadow = self._count(decision)
        direction = shadow.sample(decision) if shadow is not None else None
        if shadow is None or direction is None:
            return None
        return StreamTap(shadow.offer, lambda served: ShadowJob(decision.task, direction, request, served))

    def snapshots(self) -> dict[Key, LiveSnapshot]:
        """Every monitor's figures now."""
        return self.ledger.snapshots()

    def grader(self, route: str, category: str) -> str:
        """The grader of the last observation of (route, category), or ``""``."""
        return self.ledger.grader(route, category)

    def shadow_figures(self) -> dict[str, tuple[ShadowCounters, int]]:
        """Per route with shadow traffic: its counters and the jobs waiting now."""
        return {route: (shadow.counters, shadow.queued) for route, shadow in self.shadows.items()}

    def _count(self, decision: Decision) -> RouteShadow | None:
        traffic = self.traffic.get(decision.route)
        if traffic is None or decision.side == "direct":
            return None
        traffic.requests += 1
        if decision.task == "unknown":
            traffic.undetected += 1
        return self.shadows.get(decision.route)

    def _observed(self, observation: Observation) -> None:
        self._pending.append(observation)
        name = counter_name("graded", observation.route, observation.category, observation.grader)
        self._graded[name] = self._graded.get(name, 0) + 1
        if len(self._pending) > self._max_pending:
            del self._pending[0]
            self.store_dropped += 1

    # ------------------------------------------------------------------ syncing with the store

    async def _run(self) -> None:
        refresh_at = time.monotonic() + self.config.refresh_seconds
        while True:
            await asyncio.sleep(self._tick)
            full = time.monotonic() >= refresh_at
            if not (full or self._pending):
                continue
            if full:
                refresh_at = time.monotonic() + self.config.refresh_seconds
            try:
                await self._sync(full=full)
            except BackendUnavailable as exc:
                if not self._failing:
                    log.warning("live store unavailable; will retry: %s", exc)
                self._failing = True
            else:
                if self._failing:
                    log.warning("live store reachable again")
                self._failing = False

    async def sync(self) -> None:
        """One full sync now: write pending observations, read new rows and records, checkpoint."""
        await self._sync(full=True)

    async def _sync(self, *, full: bool) -> None:
        store = self._store
        if store is None:
            return
        async with self._lock:
            batch, self._pending = self._pending, []
            if batch:
                try:
                    await asyncio.to_thread(store.add, batch)
                except BaseException:
                    self._pending[:0] = batch
                    raise
            changes = await self._read_log(store)
            if full:
                records = await asyncio.to_thread(store.states, self.ledger.state_version)
                changes += await self._reconcile(store, records)
            changes += await self._write_records(store, checkpoint=full)
            if full:
                await self._add_counts(store)
                await self._prune(store)
            self._demotions = self.ledger.demotions(self._demotions)
        for change in changes:
            self._report(change)

    async def _read_log(
        self, store: ObservationStore, *, after: int | None = None, only: Key | None = None
    ) -> list[LiveChange]:
        """Feed the log's rows after ``after`` (default: the cursor) to the monitors, a batch at a
        time; with ``only``, just that category's rows up to the cursor (a replay)."""
        changes: list[LiveChange] = []
        upto = self.ledger.cursor if only is not None else None
        position = self.ledger.cursor if after is None else after
        route = only[0] if only is not None else None
        while True:
            rows = await asyncio.to_thread(store.read, position, limit=_READ_BATCH, route=route)
            changes += self.ledger.feed(rows, only=only, upto=upto)
            if len(rows) < _READ_BATCH or (upto is not None and (rows[-1].id or 0) >= upto):
                return changes
            position = rows[-1].id or position

    async def _reconcile(self, store: ObservationStore, records: list[MonitorRecord]) -> list[LiveChange]:
        changes, replays = self.ledger.reconcile(records)
        for replay in replays:
            changes += await self._read_log(store, after=replay.after, only=(replay.route, replay.category))
        return changes

    async def _write_records(self, store: ObservationStore, *, checkpoint: bool) -> list[LiveChange]:
        changes: list[LiveChange] = []
        for record, expected in self.ledger.records_to_write(checkpoint=checkpoint):
            stored = await asyncio.to_thread(store.put_state, record, expected=expected)
            if not self.ledger.written(record, stored):
                theirs = await asyncio.to_thread(store.state, record.route, record.category)
                if theirs is not None:
                    changes += await self._reconcile(store, [theirs])
        return changes

    async def _add_counts(self, store: ObservationStore) -> None:
        totals = dict(self._graded)
        for route, traffic in self.traffic.items():
            totals[counter_name("requests", route)] = traffic.requests
            totals[counter_name("undetected", route)] = traffic.undetected
        for route, shadow in self.shadows.items():
            for category, dollars in shadow.counters.spend_by_category.items():
                totals[counter_name("spend_micro", route, category)] = round(dollars * 1e6)
        deltas = {name: value - self._flushed.get(name, 0) for name, value in totals.items()}
        await asyncio.to_thread(store.add_counts, deltas)
        self._flushed = totals

    async def _prune(self, store: ObservationStore) -> None:
        now = time.monotonic()
        if self._pruned_at and now - self._pruned_at < _PRUNE_SECONDS:
            return
        self._pruned_at = now
        config = self.config
        await asyncio.to_thread(store.prune, retention_days=config.retention_days, max_rows=config.max_rows)

    def _report(self, change: LiveChange) -> None:
        if change.before == "unknown":
            return  # a category's first observation here: the monitor takes over, nothing changed
        key = (change.route, change.category)
        if change.after == "unsafe":
            self.demotions_seen[key] = self.demotions_seen.get(key, 0) + 1
        level = logging.WARNING if "unsafe" in (change.before, change.after) else logging.INFO
        log.log(level, change.line())
        if self._webhook is not None:
            self._webhook.notify(change.to_json())
