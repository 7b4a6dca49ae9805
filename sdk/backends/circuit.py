"""A circuit breaker around a backend: stop calling one that keeps failing, probe it back later.

::

    CLOSED ──threshold consecutive backend failures──► OPEN ──cooldown passes──► HALF_OPEN
      ▲                                                  ▲                          │
      └──────────────── the probe succeeds ──────────────┼──────────────────────────┤
                                                         └──── the probe fails ─────┘

- **closed**: calls go through; backend failures are counted, a success resets the count.
- **open**: calls fail fast with ``BackendUnavailable`` (code ``circuit_open``) without
  touching the backend, for ``cooldown`` seconds.
- **half-open**: the first call after the cooldown is the *probe* and goes through;
  calls made while it runs fail fast. Its success closes the circuit, its failure
  opens it again for another ``cooldown``.

What counts: a :class:`~sdk.errors.BackendError` is a failure, except an upstream
4xx that is the caller's fault (``UpstreamStatusError.is_caller_fault``) and every
:class:`~sdk.errors.RequestError`: the backend answered, so those count as
successes. A stream counts when it ends: completed is a success, a
``BackendError`` at any point (before or after the first chunk) a failure, and a
stream the caller closed early counts as neither (a half-open probe slot is
freed). Cancellation counts as neither.

The engine reads :attr:`CircuitBackend.is_open` (or :func:`open_circuits`) to give
``decide()`` the set of unavailable models, so a route sends around an open
circuit before trying it; the fail-fast error covers direct calls and routes
whose fallback is off. The clock is injectable, so tests never wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Literal

from sdk.backends.base import Backend
from sdk.errors import BackendError, BackendUnavailable, RequestError, UpstreamStatusError
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["CircuitBackend", "CircuitBreaker", "CircuitState", "open_circuits", "wrap_backends"]

CircuitState = Literal["closed", "open", "half_open"]
CIRCUIT_OPEN = "circuit_open"
"""The ``code`` of the fail-fast ``BackendUnavailable``."""


def counts_as_failure(exc: BaseException) -> bool | None:
    """``True`` for a backend failure, ``False`` for an answer (the caller's fault), ``None``
    for neither (cancellation, or an exception that is not a bitrate error)."""
    if isinstance(exc, UpstreamStatusError) and exc.is_caller_fault:
        return False
    if isinstance(exc, BackendError):
        return True
    if isinstance(exc, RequestError):
        return False
    return None


class CircuitBreaker:
    """The state machine of one backend's circuit (see the module docstring). Thread-safe."""

    def __init__(
        self, threshold: int = 5, cooldown: float = 30.0, *, clock: Callable[[], float] = time.monotonic
    ):
        """Open after ``threshold`` consecutive failures, for ``cooldown`` seconds of ``clock``."""
        if threshold < 1 or cooldown < 0:
            raise ValueError("threshold must be >= 1 and cooldown >= 0")
        self.threshold = threshold
        """Consecutive backend failures that open the circuit."""
        self.cooldown = cooldown
        """Seconds the circuit stays open before a probe is let through."""
        self.clock = clock
        """Monotonic seconds; inject a fake one in tests."""
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        """``closed``, ``open`` (cooling down, or a probe in flight) or ``half_open`` (a probe may go)."""
        with self._lock:
            return self._state()

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._probing or self.clock() < self._opened_at + self.cooldown:
            return "open"
        return "half_open"

    @property
    def is_open(self) -> bool:
        """True when a call now would fail fast (what the engine routes around)."""
        return self.state == "open"

    @property
    def failures(self) -> int:
        """Consecutive backend failures counted so far."""
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a probe may go (0 when a call may go now)."""
        with self._lock:
            if self._opened_at is None or self._probing:
                return 0.0
            return max(0.0, self._opened_at + self.cooldown - self.clock())

    def acquire(self) -> bool:
        """Ask to make a call: ``True`` lets it through (as the probe when half-open), ``False``
        means fail fast. Every ``True`` must be followed by one ``record(...)``."""
        with self._lock:
            state = self._state()
            if state == "open":
                return False
            if state == "half_open":
                self._probing = True
            return True

    def record(self, failed: bool | None) -> None:
        """The outcome of a call ``acquire`` let through: failed, succeeded, or ``None`` (neither)."""
        with self._lock:
            probe, self._probing = self._probing, False
            if failed is None:
                return
            if not failed:
                self._failures, self._opened_at = 0, None
                return
            self._failures += 1
            if probe or self._failures >= self.threshold:
                self._opened_at = self.clock()


class CircuitBackend(Backend):
    """``inner`` behind a :class:`CircuitBreaker`; same name, same interface."""

    def __init__(
        self,
        inner: Backend,
        breaker: CircuitBreaker | None = None,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Wrap ``inner``; ``breaker`` or ``threshold``/``cooldown``/``clock`` build its circuit."""
        self.inner = inner
        """The wrapped backend."""
        self.name = inner.name
        self.breaker = breaker or CircuitBreaker(threshold, cooldown, clock=clock)
        """This backend's circuit."""

    def __repr__(self) -> str:
        return f"CircuitBackend({self.inner!r}, state={self.state!r})"

    @property
    def state(self) -> CircuitState:
        """The circuit's state (see :attr:`CircuitBreaker.state`)."""
        return self.breaker.state

    @property
    def is_open(self) -> bool:
        """True when a call now would fail fast."""
        return self.breaker.is_open

    def _admit(self) -> None:
        if not self.breaker.acquire():
            wait = self.breaker.retry_in()
            when = f"next probe in {wait:.1f}s" if wait > 0 else "a probe is in flight"
            raise BackendUnavailable(
                f"circuit open after {self.breaker.failures} consecutive failures; {when}",
                backend=self.name,
                code=CIRCUIT_OPEN,
            )

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        """The inner backend's answer, or fail fast while the circuit is open."""
        self._admit()
        try:
            result = await self.inner.complete(request)
        except BaseException as exc:
            self.breaker.record(counts_as_failure(exc))
            raise
        self.breaker.record(False)
        return result

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """The inner backend's chunks; the outcome is recorded when the stream ends."""
        self._admit()
        outcome: bool | None = None
        try:
            async for chunk in self.inner.stream(request):
                yield chunk
            outcome = False
        except BaseException as exc:
            outcome = counts_as_failure(exc)
            raise
        finally:
            self.breaker.record(outcome)

    async def health(self) -> bool:
        """The inner backend's health (the circuit does not change it, nor is it changed by it)."""
        return await self.inner.health()

    async def close(self) -> None:
        """Close the inner backend."""
        await self.inner.close()


def wrap_backends(backends: Mapping[str, Backend], **circuit: object) -> dict[str, CircuitBackend]:
    """Every backend behind its own circuit; ``circuit`` are :class:`CircuitBackend` keywords."""
    return {
        name: b if isinstance(b, CircuitBackend) else CircuitBackend(b, **circuit)  # type: ignore[arg-type]
        for name, b in backends.items()
    }


def open_circuits(backends: Mapping[str, Backend]) -> frozenset[str]:
    """Names of the backends whose circuit is open now (the ``unavailable`` set for ``decide()``)."""
    return frozenset(name for name, b in backends.items() if isinstance(b, CircuitBackend) and b.is_open)
