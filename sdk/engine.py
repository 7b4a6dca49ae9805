"""The substitution engine: detect the task, decide, call the backend, fall back, escalate.

Both faces (the gateway and ``sdk.Client``) call this one engine. Per request:

1. ``explain``: the route's detection pipeline names the task; ``decide()`` (pure)
   picks the target from the profile's verdicts, what each side lacks for this request
   (``sdk.capabilities``) and the circuit states.
2. Call the target. On a ``BackendError`` (not a caller's fault) retry once on the
   other side when the route's ``fallback`` allows it. On ``Unsupported`` (the model
   cannot serve the request: tools, images, too long a prompt) retry once on the other
   side when that side serves it (``capability_fallback``). Any other ``RequestError``
   never moves.
3. Escalate: when an enabled check fails on the student's answer, the frontier answers
   (if the frontier then fails, its error is raised: the student's answer failed the check).
4. Attach ``decision.to_meta()`` as ``bitrate`` (completion; last stream chunk).
5. Live (the policy's ``live:``, ``sdk.live.runtime``): ``decide()`` reads the live monitor's
   demotions (rule ``live``); an answered request may be queued for shadow traffic (JSON: once
   the completion is ready; stream: once it finished), never waiting for it.

The answer's ``model`` field is left as the backend wrote it: it names the model
that really answered, which is what a caller of a router wants to know; the name the
caller sent is ``bitrate.route``.

Health: a small per-model :class:`Circuit` opens after consecutive backend failures;
``decide()`` sees the open ones as ``unavailable`` and routes around them when the
route's fallback rules allow (rule ``health``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sdk import tracing
from sdk.backends import Backend, Price, make_backend
from sdk.bounded import BoundedCache
from sdk.capabilities import NOTHING, Lacks, RouteCapabilities, capabilities_of
from sdk.cascade import CascadeGate, cascade_answer, cascade_gate
from sdk.checks import AnswerCheck, answer_of, answer_of_chunks, build_checks, failed_check
from sdk.decide import CategoryVerdict, LiveDemotion, capability_fallback, decide, fallback_decision
from sdk.decision import Decision, TaskGuess
from sdk.detect import DetectContext, DetectionPipeline, build_pipeline
from sdk.detect.offline import EvidenceDetection
from sdk.engine_stream import RoutedStream, buffer_stream, open_stream
from sdk.errors import (
    BackendError,
    BackendUnavailable,
    InternalError,
    UnknownModel,
    Unsupported,
    UpstreamStatusError,
)
from sdk.live.capture import CaptureWriter, start_capture_writer
from sdk.policy import Policy, RouteConfig
from sdk.profile import load_profile
from sdk.protocol import ChatCompletion, ChatRequest

if TYPE_CHECKING:
    from sdk.estimate import PromptEstimator
    from sdk.live.runtime import LiveView

__all__ = ["Circuit", "Engine", "RouteRuntime"]

T = TypeVar("T")

_NO_GUESS = TaskGuess("unknown", "none", 0.0)
_DECISION_CACHE = 4096
"""Most memoised decisions kept (inputs rarely vary that much; the oldest leave first)."""
_DECISION_CACHE_BYTES = 4 << 20
"""Most bytes of memoised decisions kept: a key carries the task, which a caller may choose."""
_MEMO_ENTRY_BYTES = 640
"""A memo entry's objects apart from its own strings (key tuple, guess, decision, set, slots)."""

_MemoKey = tuple[str, TaskGuess, frozenset[str], Lacks, LiveDemotion | None]


def _memo_bytes(key: _MemoKey, decision: Decision) -> int:
    """About what one memoised decision holds: its objects and the strings only it carries."""
    guess = key[1]
    return _MEMO_ENTRY_BYTES + sys.getsizeof(guess.task) + sys.getsizeof(decision.reason)


class Circuit:
    """Per-model circuit breaker: ``threshold`` consecutive backend failures open it for
    ``cooldown`` seconds. While open, ``decide()`` routes around the model when fallback
    allows, and a call that still targets it fails fast (503 ``circuit_open``) without
    reaching the backend. After the cooldown one probe goes through (half-open): a success
    closes the circuit, a failure opens it for another cooldown."""

    def __init__(
        self, threshold: int = 3, cooldown: float = 10.0, clock: Callable[[], float] = time.monotonic
    ):
        self.threshold, self.cooldown, self.clock = threshold, cooldown, clock
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._probing: set[str] = set()

    def acquire(self, model: str) -> bool:
        """May a call go to ``model`` now? False while open, and while a probe is in flight."""
        until = self._open_until.get(model)
        if until is None:
            return True
        if until > self.clock() or model in self._probing:
            return False
        self._probing.add(model)
        return True

    def release(self, model: str) -> None:
        """A call ended without a verdict on the backend (cancelled, or the caller's fault)."""
        self._probing.discard(model)

    def success(self, model: str) -> None:
        """Record a good answer: closes the circuit."""
        self._failures.pop(model, None)
        self._open_until.pop(model, None)
        self._probing.discard(model)

    def failure(self, model: str) -> None:
        """Record a backend failure."""
        count = self._failures.get(model, 0) + 1
        self._failures[model] = count
        self._probing.discard(model)
        if count >= self.threshold:
            self._open_until[model] = self.clock() + self.cooldown

    def state(self, model: str) -> str:
        """``closed``, ``open``, or ``half_open`` (the cooldown is over: the next call probes)."""
        until = self._open_until.get(model)
        if until is None:
            return "closed"
        return "open" if until > self.clock() else "half_open"

    def retry_in(self, model: str) -> float:
        """Seconds until ``model`` may be probed again (0 when it may be now)."""
        return max(0.0, self._open_until.get(model, 0.0) - self.clock())

    def unavailable(self) -> frozenset[str]:
        """Models not to route to now: open, or half-open with a probe in flight."""
        now = self.clock()
        return frozenset(m for m, until in self._open_until.items() if until > now or m in self._probing)


@dataclass
class RouteRuntime:
    """What the engine holds per route, built once (profile, detectors, checks, estimator)."""

    name: str
    config: RouteConfig
    pipeline: DetectionPipeline
    categories: dict[str, CategoryVerdict] = field(default_factory=dict)
    checks: list[AnswerCheck] = field(default_factory=list)
    estimator: PromptEstimator | None = None
    own_notes: list[str] = field(default_factory=list)
    capabilities: RouteCapabilities = field(default_factory=RouteCapabilities)
    detection: EvidenceDetection | None = None
    cascade: CascadeGate | None = None

    def verdicts_for(self, guess: TaskGuess) -> Mapping[str, CategoryVerdict]:
        """The verdicts a guess is read against: for a learnt detector's guess, those certified on
        what the detectors assign to the evidence (``sdk.detect.offline``), else the profile's."""
        return self.detection.verdicts_for(guess, self.categories) if self.detection else self.categories

    @property
    def notes(self) -> list[str]:
        """What is missing on this route and why (detectors skipped, no estimator)."""
        return [*self.pipeline.notes, *self.own_notes]


def _load_route(policy: Policy, name: str) -> RouteRuntime:
    config = policy.routes[name]
    path = policy.profile_path(name)
    profile = load_profile(path) if path is not None else None
    tol = config.tolerance
    categories = {
        cat: CategoryVerdict.from_stats(stats, tol.max_loss, tol.confidence)
        for cat, stats in (profile.categories.items() if profile else ())
    }
    ctx = DetectContext(name, config, profile)
    pipeline = build_pipeline(ctx)
    detection = EvidenceDetection(pipeline, profile, tol.max_loss, tol.confidence)
    estimator, notes = _load_estimator(ctx, detection), []
    if config.per_prompt and estimator is None:
        notes.append("per_prompt: no estimator (no evidence in the profile)")
    capabilities = RouteCapabilities(
        capabilities_of(policy.models[config.student]), capabilities_of(policy.models[config.frontier])
    )
    checks = build_checks(config.escalate)
    runtime = RouteRuntime(
        name, config, pipeline, categories, checks, estimator, notes, capabilities, detection
    )
    runtime.cascade = cascade_gate(runtime, profile)
    return runtime


def _load_estimator(ctx: DetectContext, detection: EvidenceDetection) -> PromptEstimator | None:
    """The per-prompt estimator (``sdk.estimate.from_context``), when the route wants one."""
    if not ctx.route.per_prompt or ctx.profile is None or not ctx.profile.evidence:
        return None
    from sdk.estimate import from_context  # numpy: loaded only for a route that routes per prompt

    return from_context(ctx, detection=detection)


def _stream_shape(request: ChatRequest) -> dict[str, Any]:
    """What ends a streamed answer: ``n`` finished choices, or the usage chunk when asked for."""
    options = request.stream_options
    return {"choices": request.n, "usage": bool(options and options.include_usage)}


def _caller_fault(exc: BackendError) -> bool:
    return isinstance(exc, UpstreamStatusError) and exc.is_caller_fault


class Engine:
    """Routes chat requests between the policy's models. See the module docstring."""

    def __init__(
        self,
        policy: Policy,
        *,
        backends: Mapping[str, Backend] | None = None,
        circuit: Circuit | None = None,
        redact: Callable[[str], str] | None = None,
    ):
        """``backends`` supplies ready backends by model name (the rest are built by ``start()``
        from the policy); ``circuit`` replaces the default circuit breaker; ``redact`` rewrites
        captured texts before they are stored, after the policy's ``live.redact`` patterns."""
        self.policy = policy
        self._redact = redact
        self.captures: CaptureWriter | None = None
        """Frontier answers kept as training data (``sdk.live.capture``), when a route captures."""
        self.circuit = circuit or Circuit()
        self._given = dict(backends or {})
        self._backends: dict[str, Backend] = dict(self._given)
        self._routes: dict[str, RouteRuntime] | None = None
        self._decisions = BoundedCache[_MemoKey, Decision](
            _DECISION_CACHE, _DECISION_CACHE_BYTES, _memo_bytes
        )
        self.live: LiveView | None = None
        """Shadow traffic and the live monitors (``sdk.live.runtime``), from ``start()`` when the
        policy has ``live:``."""

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Load the routes' profiles and detectors, and build every backend (loads local models)."""
        for runtime in self.routes().values():
            await asyncio.to_thread(runtime.pipeline.warm)  # embedding detectors index their examples
            if runtime.detection is not None:  # and are measured on the evidence (sdk.detect.offline)
                await asyncio.to_thread(runtime.detection.warm)
        self._backends.update(self._given)
        for name, config in self.policy.models.items():
            if name not in self._backends:
                # local backends load weights here: keep the event loop free meanwhile
                self._backends[name] = await asyncio.to_thread(make_backend, name, config)
        if self.captures is None:
            verdicts = {name: runtime.categories for name, runtime in self.routes().items()}
            self.captures = await start_capture_writer(self.policy, verdicts, self._redact)
        if self.policy.live is not None and self.live is None:
            known = self.known_tasks()
            from sdk.live.isolated import build_live  # the monitors need numpy: only with `live:`

            live = build_live(self.policy, self._shadow_call, known=known, given=frozenset(self._given))
            await live.start()
            self.live = live

    async def aclose(self) -> None:
        """Close the backends the engine built (those passed in stay open: their owner closes them)."""
        live, self.live = self.live, None
        if live is not None:
            await live.aclose()
        captures, self.captures = self.captures, None
        if captures is not None:
            await captures.aclose()
        backends, self._backends = self._backends, {}
        for name, backend in backends.items():
            if name not in self._given:
                await backend.close()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def routes(self) -> dict[str, RouteRuntime]:
        """Per-route runtime (profiles, detectors), loaded on first use; no backend is built."""
        if self._routes is None:
            self._routes = {name: _load_route(self.policy, name) for name in self.policy.routes}
        return self._routes

    def known_tasks(self) -> dict[str, frozenset[str]]:
        """The tasks each route knows: its profile's categories, its rule tasks and its pin keys
        (the tasks metrics name and shadow traffic samples; any other hint is ``other``)."""
        return {
            name: frozenset(rt.categories)
            | {r.task for r in rt.config.tasks.rules}
            | frozenset(rt.config.pin)
            for name, rt in self.routes().items()
        }

    # ------------------------------------------------------------------ queries

    def model_names(self) -> list[str]:
        """Names a caller may send as ``model``: routes first, then direct models."""
        return [*self.policy.routes, *self.policy.models]

    def price(self, target: str) -> Price:
        """The price of a policy model."""
        return self.policy.models[target].price

    async def health(self, timeout: float = 5.0) -> dict[str, bool]:
        """Each built backend's health now, checked all at once; a check that fails, raises or
        takes over ``timeout`` seconds counts as unhealthy (so a round takes at most ``timeout``)."""
        backends = list(self._backends.items())

        async def check(backend: Backend) -> bool:
            # the check's coroutine is made only once this runs: a round cancelled before it
            # starts (shutdown) leaves no coroutine behind un-awaited
            return await asyncio.wait_for(backend.health(), timeout)

        results = await asyncio.gather(*(check(b) for _name, b in backends), return_exceptions=True)
        return {name: ok is True for (name, _b), ok in zip(backends, results, strict=True)}

    def detect(self, request: ChatRequest, task_hint: str | None = None) -> TaskGuess | None:
        """The task guess for a routed request (``None`` for a direct model)."""
        runtime = self.routes().get(request.model)
        return runtime.pipeline.detect(request, task_hint) if runtime else None

    def explain(self, request: ChatRequest, task_hint: str | None = None) -> Decision:
        """Detect and decide, without calling any model. Unknown name -> ``UnknownModel``."""
        name = request.model
        runtime = self.routes().get(name)
        if runtime is None:
            if name not in self.policy.models:
                known = ", ".join(self.model_names())
                raise UnknownModel(f"no route or model named '{name}' (have: {known})", param="model")
            return self._decided(name, None, _NO_GUESS, frozenset(), NOTHING)
        guess = runtime.pipeline.detect(request, task_hint)
        lacks = runtime.capabilities.lacks(request)
        estimator = runtime.estimator if guess.task != "unknown" else None
        estimate = estimator.estimate(request, guess) if estimator is not None else None
        demotion = self.live.demotion(name, guess.task) if self.live is not None else None
        if estimate is None:
            return self._decided(name, runtime, guess, self.circuit.unavailable(), lacks, demotion)
        return decide(
            name,
            runtime.config,
            guess,
            categories=runtime.verdicts_for(guess),
            estimate=estimate,
            lacks=lacks,
            unavailable=self.circuit.unavailable(),
            demotion=demotion,
        )

    def _decided(
        self,
        name: str,
        runtime: RouteRuntime | None,
        guess: TaskGuess,
        unavailable: frozenset[str],
        lacks: Lacks,
        demotion: LiveDemotion | None = None,
    ) -> Decision:
        """``decide()`` without a per-prompt estimate, memoised: it is pure, its inputs repeat
        (a handful of tasks per route), and its reason strings were ~3% of a proxied call."""
        key = (name, guess, unavailable, lacks, demotion)
        decision = self._decisions.get(key)
        if decision is None:
            config, categories = (runtime.config, runtime.verdicts_for(guess)) if runtime else (None, None)
            decision = decide(
                name,
                config,
                guess,
                categories=categories,
                lacks=lacks,
                unavailable=unavailable,
                demotion=demotion,
            )
            self._decisions.put(key, decision)
        return decision

    # ------------------------------------------------------------------ calls

    async def complete(
        self, request: ChatRequest, task_hint: str | None = None
    ) -> tuple[ChatCompletion, Decision]:
        """Answer in one piece; the completion carries ``bitrate`` (``decision.to_meta()``)."""
        decision = tracing.decide(self.explain, request, task_hint)
        gate = self._cascade(request, decision)
        if gate is not None:
            route = self.policy.routes[decision.route]
            completion, decision = await cascade_answer(gate, route, request, decision, self._run)
        else:
            completion, decision = await self._with_fallback(request, decision, lambda b: b.complete(request))
        completion, decision = await self._escalate(request, completion, decision)
        if self.captures is not None and decision.side == "frontier":
            self.captures.offer(decision.route, decision.task, decision.target, request, completion)
        completion.set_extra("bitrate", decision.to_meta())
        if self.live is not None:
            self.live.answered(request, decision, completion)  # queues a shadow job; never waits
        return completion, decision

    def _cascade(self, request: ChatRequest, decision: Decision) -> CascadeGate | None:
        """The route's cascade gate when the student may answer ``request`` first (``sdk.cascade``)."""
        runtime = self.routes().get(decision.route)
        gate = runtime.cascade if runtime is not None else None
        if gate is None or runtime is None:
            return None
        return gate if gate.applies(decision, runtime.capabilities.lacks(request).student) else None

    async def stream(self, request: ChatRequest, task_hint: str | None = None) -> RoutedStream:
        """Start a routed stream (see :meth:`_stream`); with live traffic on, a sampled stream's
        shadow job is queued once it finished."""
        routed = await self._stream(request, task_hint)
        if self.live is not None:
            routed.tap = self.live.stream_tap(request, routed.decision)
        return routed

    async def _stream(self, request: ChatRequest, task_hint: str | None = None) -> RoutedStream:
        """Start a routed stream (see ``sdk.engine_stream``). Routing, fallback and the first
        chunk happen before this returns; a request an escalation check applies to is buffered
        whole on the student first, and streams from the frontier when the check fails."""
        decision = tracing.decide(self.explain, request, task_hint)
        checks = self._applicable_checks(request, decision)
        if not checks:
            opened = await self._with_fallback(request, decision, lambda b: open_stream(b, request))
            (head, tail), decision = opened
            return RoutedStream(decision, head, batches=tail, **_stream_shape(request))
        try:
            chunks = await self._run(decision.target, lambda b: buffer_stream(b, request))
        except (BackendError, Unsupported) as exc:
            decision = self._fallback_or_raise(request, decision, exc)
        else:
            failed = failed_check(checks, request, answer_of_chunks(chunks))
            if failed is None:
                return RoutedStream(decision, chunks, **_stream_shape(request))
            decision = self._escalated(decision, failed)
        with tracing.step("escalation" if decision.escalated else "fallback", decision):
            head, tail = await self._run(decision.target, lambda b: open_stream(b, request))
        return RoutedStream(decision, head, batches=tail, **_stream_shape(request))

    # ------------------------------------------------------------------ internals

    def _shadow_call(self, target: str, request: ChatRequest) -> Awaitable[ChatCompletion]:
        """A shadow or judge call: the backend directly (no routing, circuit or fallback)."""
        return self._backend(target).complete(request)

    def _backend(self, target: str) -> Backend:
        backend = self._backends.get(target)
        if backend is None:
            raise InternalError("Engine.start() must be awaited before calls")
        return backend

    async def _run(self, target: str, op: Callable[[Backend], Awaitable[T]]) -> T:
        if not self.circuit.acquire(target):
            wait = self.circuit.retry_in(target)
            raise BackendUnavailable(
                f"circuit open after repeated failures; next probe in {wait:.0f}s",
                backend=target,
                code="circuit_open",
            )
        try:
            result = await tracing.backend_call(op(self._backend(target)), target, self.policy)
        except BackendError as exc:
            if not _caller_fault(exc):
                self.circuit.failure(target)
            tracing.backend_failed(target, self.policy, exc)
            raise
        finally:
            self.circuit.release(target)  # a no-op once success/failure was recorded
        self.circuit.success(target)
        return result

    async def _with_fallback(
        self, request: ChatRequest, decision: Decision, op: Callable[[Backend], Awaitable[T]]
    ) -> tuple[T, Decision]:
        try:
            return await self._run(decision.target, op), decision
        except (BackendError, Unsupported) as exc:
            other = self._fallback_or_raise(request, decision, exc)
        with tracing.step("fallback", other):
            return await self._run(other.target, op), other

    def _fallback_or_raise(
        self, request: ChatRequest, decision: Decision, exc: BackendError | Unsupported
    ) -> Decision:
        """The decision to retry with after ``exc``; re-raises ``exc`` when the policy forbids it."""
        route = self.policy.route_of(decision.route)
        if isinstance(exc, Unsupported):
            other = self._capability_fallback(request, decision, exc)
        elif _caller_fault(exc):
            other = None
        else:
            other = fallback_decision(route, decision, why=f"failed ({exc.code})")
        if other is None:
            raise exc
        return other

    def _capability_fallback(
        self, request: ChatRequest, decision: Decision, exc: Unsupported
    ) -> Decision | None:
        runtime = self.routes().get(decision.route)
        if runtime is None or decision.side == "direct":
            return None
        other = "frontier" if decision.side == "student" else "student"
        other_lacks = runtime.capabilities.lacks_besides(request, other, exc.need)
        return capability_fallback(runtime.config, decision, exc.need, other_lacks)

    def _applicable_checks(self, request: ChatRequest, decision: Decision) -> list[AnswerCheck]:
        runtime = self.routes().get(decision.route)
        if runtime is None or decision.side != "student" or decision.lacking:
            return []  # (lacking: the student answers because the frontier cannot)
        return [c for c in runtime.checks if c.applies(request)]

    def _escalated(self, decision: Decision, check: str) -> Decision:
        route = self.policy.routes[decision.route]
        reason = f"frontier: the student's answer failed check '{check}'; escalated ({decision.reason})"
        return decision.with_(target=route.frontier, side="frontier", escalated=True, reason=reason)

    async def _escalate(
        self, request: ChatRequest, completion: ChatCompletion, decision: Decision
    ) -> tuple[ChatCompletion, Decision]:
        checks = self._applicable_checks(request, decision)
        failed = failed_check(checks, request, answer_of(completion))
        if failed is None:
            return completion, decision
        decision = self._escalated(decision, failed)
        with tracing.step("escalation", decision):
            return await self._run(decision.target, lambda b: b.complete(request)), decision
