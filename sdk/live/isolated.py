"""The live runtime in a child process: shadow calls, grading, the store and the monitors run
in ``python -m sdk.live.worker``, so none of their CPU is spent on the event loop that answers
callers. The engine's process keeps only what a request needs: the sampling draw, the demotions
``decide`` reads, and the traffic counts.

The wire: one JSON object per line (``orjson``), on the child's stdin and stdout.

==================== =============================================================================
parent -> child      ``{"init": {"policy", "source", "known"}}`` once; then jobs
                     ``{"j": [route, category, direction, at, served], "r": REQUEST}`` and every
                     ``tick`` the cumulative traffic ``{"traffic": {route: [requests, undetected]}}``;
                     EOF: write what is pending, close, exit
child -> parent      ``{"ready": true}`` once started (or ``{"error": message}``, then exit 2);
                     then every ``tick`` the figures :meth:`IsolatedLive._apply` reads
==================== =============================================================================

A job is written only while fewer than the route's ``queue_size`` jobs wait (on their way to the
child, or in its queue); past that, and while the child is down, jobs are dropped and counted
(``queue_full``, ``worker_down``): the caller never waits. A child that exits is started
again after ``restart_seconds``; its shadow jobs meanwhile are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from sdk.checks import answer_of
from sdk.decide import LiveDemotion
from sdk.decision import Decision
from sdk.errors import ConfigError
from sdk.live.ledger import Key
from sdk.live.monitor import LiveSnapshot
from sdk.live.records import Direction
from sdk.live.runtime import LiveRuntime, LiveView, StreamTap, Traffic
from sdk.live.shadow import BackendCall, Sampler, ShadowCounters, ShadowJob, answer_text
from sdk.policy import Policy
from sdk.protocol import ChatCompletion, ChatRequest

__all__ = [
    "WORKER_MODULE",
    "IsolatedLive",
    "build_live",
    "decode_figures",
    "encode_figures",
    "isolatable",
    "shadowed_models",
]

log = logging.getLogger("bitrate.live")

WORKER_MODULE = "sdk.live.worker"
"""The child's module (``python -m``)."""
LINE_LIMIT = 64 << 20
"""Longest line either side reads (a job carries the caller's request)."""
_BUFFER_LIMIT = 32 << 20
"""Bytes of jobs the parent holds for a child that is slow to read them, at most."""
_BATCH_SECONDS = 0.005
"""Jobs are written to the child in batches this far apart at most."""


def shadowed_models(policy: Policy) -> set[str]:
    """Every model a route with shadow traffic calls (its student, frontier and judge)."""
    names = set()
    for route in policy.routes.values():
        if route.shadow.enabled:
            names |= {route.student, route.frontier, route.shadow.judge or route.frontier}
    return names


def isolatable(policy: Policy, given: Collection[str] = ()) -> str | None:
    """Why the live runtime cannot run in a child process, or None when it can: some route must
    shadow, and each model it shadows with must be an HTTP backend the engine builds itself
    (``given``: models the engine was handed ready-made)."""
    models = shadowed_models(policy)
    if not models:
        return "no route has shadow traffic"
    for name in sorted(models):
        if name in given:
            return f"model '{name}' was given to the engine ready-made"
        if policy.models[name].backend != "openai":
            return f"model '{name}' is a local {policy.models[name].backend} model"
    return None


def build_live(
    policy: Policy, call: BackendCall, *, known: Mapping[str, frozenset[str]], given: Collection[str] = ()
) -> LiveView:
    """The live runtime for an engine: in a child process when ``live.isolate`` asks for it (a
    ``ConfigError`` when it cannot be: :func:`isolatable`), else in this process, calling
    backends through ``call``."""
    live = policy.live
    if live is None:
        raise ValueError("a live runtime needs the policy's `live:` section")
    if not live.isolate:
        return LiveRuntime(policy, call, known=known)
    why_not = isolatable(policy, given)
    if why_not is not None:
        raise ConfigError(f"live.isolate is true, but {why_not}", key="live.isolate")
    return IsolatedLive(policy, known=known)


def encode_figures(
    *,
    taken: Mapping[str, int],
    shadows: Mapping[str, tuple[ShadowCounters, int]],
    snapshots: Mapping[Key, LiveSnapshot],
    graders: Mapping[Key, str],
    demotions: Mapping[Key, LiveDemotion],
    seen: Mapping[Key, int],
) -> bytes:
    """The child's figures as one line (see :func:`decode_figures`)."""
    body = {
        "taken": dict(taken),
        "shadows": {
            route: {
                "calls": [[d, o, n] for (d, o), n in counters.calls.items()],
                "drops": counters.drops,
                "spend": counters.spend,
                "by_category": counters.spend_by_category,
                "peak": counters.peak_queue,
                "queued": queued,
            }
            for route, (counters, queued) in shadows.items()
        },
        "monitors": [
            [route, category, _fields(s), graders.get((route, category), "")]
            for (route, category), s in snapshots.items()
        ],
        "demotions": [[route, category, _fields(d)] for (route, category), d in demotions.items()],
        "seen": [[route, category, n] for (route, category), n in seen.items()],
    }
    return orjson.dumps(body) + b"\n"


def _fields(value: LiveSnapshot | LiveDemotion) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


@dataclass
class Figures:
    """What the parent knows of the child's work (from its last figures line)."""

    taken: dict[str, int] = field(default_factory=dict)
    shadows: dict[str, tuple[ShadowCounters, int]] = field(default_factory=dict)
    snapshots: dict[Key, LiveSnapshot] = field(default_factory=dict)
    graders: dict[Key, str] = field(default_factory=dict)
    demotions: dict[Key, LiveDemotion] = field(default_factory=dict)
    seen: dict[Key, int] = field(default_factory=dict)


def decode_figures(line: bytes) -> Figures:
    """A figures line read back; ``ValueError`` when it is not one."""
    try:
        body = orjson.loads(line)
        figures = Figures(taken={k: int(v) for k, v in body["taken"].items()})
        for route, s in body["shadows"].items():
            counters = ShadowCounters(
                calls={(d, o): int(n) for d, o, n in s["calls"]},
                drops=dict(s["drops"]),
                spend=dict(s["spend"]),
                spend_by_category=dict(s["by_category"]),
                peak_queue=int(s["peak"]),
            )
            figures.shadows[route] = (counters, int(s["queued"]))
        for route, category, snapshot, grader in body["monitors"]:
            figures.snapshots[(route, category)] = LiveSnapshot(**snapshot)
            figures.graders[(route, category)] = grader
        for route, category, demotion in body["demotions"]:
            figures.demotions[(route, category)] = LiveDemotion(**demotion)
        figures.seen = {(route, category): int(n) for route, category, n in body["seen"]}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # (orjson's error is a ValueError)
        raise ValueError(f"not a figures line from the live worker ({exc})") from exc
    return figures


class IsolatedLive:
    """The parent's side of the live runtime in a child process (see the module docstring)."""

    def __init__(
        self,
        policy: Policy,
        *,
        known: Mapping[str, frozenset[str]],
        tick: float = 0.2,
        restart_seconds: float = 5.0,
        start_timeout: float = 120.0,
    ):
        """``known``: each route's categories (only those are shadowed)."""
        self.policy = policy
        self.traffic = {name: Traffic() for name in policy.routes}
        self._known = known
        self._samplers = {
            name: Sampler(route.shadow, known.get(name, ())) for name, route in policy.routes.items()
        }
        self._limits = {name: route.shadow.queue_size for name, route in policy.routes.items()}
        self._sent = dict.fromkeys(policy.routes, 0)
        self._drops: dict[str, dict[str, int]] = {name: {} for name in policy.routes}
        self._figures = Figures()
        self._demotions: dict[Key, LiveDemotion] = {}
        self._tick, self._restart, self._start_timeout = tick, restart_seconds, start_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._frames: list[bytes] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def demotions_seen(self) -> dict[Key, int]:
        """(route, category) -> demotions the child saw."""
        return self._figures.seen

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Start the child and wait until its runtime started (the store opened and read), so
        the demotions known anywhere apply from the first request. A child that cannot start
        raises ``ConfigError`` with its reason."""
        await self._spawn()
        self._tasks = [
            asyncio.create_task(self._supervise(), name="live-worker"),
            asyncio.create_task(self._report_traffic(), name="live-traffic"),
        ]

    async def aclose(self, grace: float = 10.0) -> None:
        """Let the child write what it holds (for up to ``grace`` seconds), then stop it."""
        self._closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._flush_to(proc)
        self._send_traffic(proc)
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(self._drain(proc), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def _drain(self, proc: asyncio.subprocess.Process) -> None:
        """Read the child's last figures until it exits."""
        if proc.stdout is not None:
            while line := await proc.stdout.readline():
                self._apply(line)
        await proc.wait()

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        assert proc.stdin is not None and proc.stdout is not None
        init = {
            "policy": self.policy.model_dump(mode="json", by_alias=True),
            "source": self.policy.source,
            "known": {route: sorted(tasks) for route, tasks in self._known.items()},
        }
        proc.stdin.write(orjson.dumps({"init": init}) + b"\n")
        try:
            first = await asyncio.wait_for(proc.stdout.readline(), self._start_timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ConfigError(f"the live worker did not start within {self._start_timeout:g}s") from None
        answer = orjson.loads(first) if first.strip() else {"error": "it exited before starting"}
        if not answer.get("ready"):
            await proc.wait()
            raise ConfigError(f"the live worker could not start: {answer.get('error', answer)}")
        self._proc = proc

    async def _supervise(self) -> None:
        """Read the child's figures; start it again when it exits."""
        while True:
            proc = self._proc
            if proc is not None and proc.stdout is not None:
                while line := await proc.stdout.readline():
                    self._apply(line)
                code = await proc.wait()
                self._proc = None
                log.error("the live worker exited (status %s); starting it again in %gs", code, self._restart)
            await asyncio.sleep(self._restart)
            try:
                self._sent, self._frames = dict.fromkeys(self._sent, 0), []
                self._figures.taken = {}
                await self._spawn()
            except ConfigError as exc:
                log.error("%s", exc)

    def _apply(self, line: bytes) -> None:
        try:
            figures = decode_figures(line)
        except ValueError as exc:
            log.warning("%s", exc)
            return
        self._demotions = figures.demotions  # equal demotions hash alike: the decision memo still hits
        self._figures = figures

    async def _report_traffic(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            if self._proc is not None:
                self._send_traffic(self._proc)

    def _send_traffic(self, proc: asyncio.subprocess.Process) -> None:
        if proc.stdin is None or proc.stdin.is_closing():
            return
        counts = {route: [t.requests, t.undetected] for route, t in self.traffic.items()}
        proc.stdin.write(orjson.dumps({"traffic": counts}) + b"\n")

    # ------------------------------------------------------------------ the request path

    def demotion(self, route: str, category: str) -> LiveDemotion | None:
        """The live demotion of (route, category), or None (what ``decide`` reads)."""
        return self._demotions.get((route, category))

    def answered(self, request: ChatRequest, decision: Decision, completion: ChatCompletion) -> None:
        """A JSON answer was complete: count it, and maybe send its shadow job (never waits)."""
        direction = self._sample(decision)
        if direction is not None:
            served = answer_text(answer_of(completion))
            self._offer(decision.route, ShadowJob(decision.task, direction, request, served))

    def stream_tap(self, request: ChatRequest, decision: Decision) -> StreamTap | None:
        """A stream starts: count it; a tap to give the finished stream to, when it is sampled."""
        direction = self._sample(decision)
        if direction is None:
            return None

        def offer(job: ShadowJob) -> None:
            self._offer(decision.route, job)

        return StreamTap(offer, lambda served: ShadowJob(decision.task, direction, request, served))

    def _sample(self, decision: Decision) -> Direction | None:
        traffic = self.traffic.get(decision.route)
        if traffic is None or decision.side == "direct":
            return None
        traffic.requests += 1
        if decision.task == "unknown":
            traffic.undetected += 1
        return self._samplers[decision.route](decision)

    def _offer(self, route: str, job: ShadowJob) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            self._drop(route, "worker_down")
            return
        if (
            self._waiting(route) >= self._limits[route]
            or proc.stdin.transport.get_write_buffer_size() > _BUFFER_LIMIT
        ):
            self._drop(route, "queue_full")
            return
        head = orjson.dumps([route, job.category, job.direction, job.at, job.served])
        body = job.request.model_dump_json(exclude_unset=True, by_alias=True).encode()
        self._frames.append(b'{"j":' + head + b',"r":' + body + b"}\n")
        self._sent[route] += 1
        if len(self._frames) == 1:  # one write (and one wake-up of the child) per batch
            asyncio.get_running_loop().call_later(_BATCH_SECONDS, self._flush)

    def _flush(self) -> None:
        if self._proc is not None:
            self._flush_to(self._proc)

    def _flush_to(self, proc: asyncio.subprocess.Process) -> None:
        frames, self._frames = self._frames, []
        if frames and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(b"".join(frames))

    def _waiting(self, route: str) -> int:
        """Jobs on their way to the child or in its queue, at most: the child's last figures
        are late by up to a tick, and both its counts only lag (taken, queued), so this bounds
        the true number from above."""
        shadow = self._figures.shadows.get(route)
        queued = shadow[1] if shadow is not None else 0
        return max(0, self._sent.get(route, 0) - self._figures.taken.get(route, 0)) + queued

    def _drop(self, route: str, reason: str) -> None:
        drops = self._drops[route]
        drops[reason] = drops.get(reason, 0) + 1

    # ------------------------------------------------------------------ figures

    def snapshots(self) -> dict[Key, LiveSnapshot]:
        """Every monitor's figures, as the child last sent them."""
        return self._figures.snapshots

    def grader(self, route: str, category: str) -> str:
        """The grader of (route, category)'s evidence, or ``""``."""
        return self._figures.graders.get((route, category), "")

    def shadow_figures(self) -> dict[str, tuple[ShadowCounters, int]]:
        """Per route with shadow traffic: the child's counters (with the jobs dropped here added)
        and the jobs waiting (in the child's queue and on their way to it)."""
        out = {}
        for route, (counters, _queued) in self._figures.shadows.items():
            drops = dict(counters.drops)
            for reason, n in self._drops.get(route, {}).items():
                drops[reason] = drops.get(reason, 0) + n
            merged = ShadowCounters(counters.calls, drops, counters.spend, counters.spend_by_category)
            merged.peak_queue = counters.peak_queue
            out[route] = (merged, self._waiting(route))
        return out
