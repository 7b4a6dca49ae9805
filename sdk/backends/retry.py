"""When and how long to retry a call to an HTTP backend: small tenacity strategies.

What is retried (the *retry-on* rule), for at most ``max_retries`` extra tries:

- ``BackendUnavailable``: connection refused, reset or dropped, a connect or pool
  timeout. The request was either never sent or got no answer at all.
- ``UpstreamStatusError`` with status 408, 429 or any 5xx. Never another 4xx:
  the same request would fail again (it is malformed, or the upstream refuses
  the backend's key, model name or URL).
- ``BackendTimeout`` (no answer within the read timeout) at most **once** per
  call. A request that timed out may still have been processed upstream, and
  each such try costs a whole ``timeout``; retrying once is what OpenAI's own
  client does for the transient case, and limiting it to once keeps a call's
  worst case near ``2 * timeout`` plus backoff instead of ``(1 + max_retries) * timeout``.
- Nothing else: a malformed answer, our own bugs, and every failure of a stream
  after its first chunk (the backend never retries past that point).

How long to wait (the *wait* rule): the upstream's ``Retry-After`` (or
``retry-after-ms``) when it sent one, capped at ``retry_after_cap``; otherwise
exponential backoff with jitter. The sleep function is injectable so tests
never wait.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt
from tenacity.retry import retry_base
from tenacity.wait import wait_base

from sdk.backends.config import OpenAIConfig
from sdk.errors import BackendError, BackendTimeout, BackendUnavailable, UpstreamStatusError

__all__ = [
    "RETRY_STATUSES",
    "ExponentialBackoff",
    "RetryOn",
    "RetryPolicy",
    "WaitRetryAfter",
    "parse_retry_after",
]

log = logging.getLogger("bitrate.backends.retry")

RETRY_STATUSES = frozenset({408, 429})
"""Upstream 4xx statuses worth retrying; every 5xx is retried too."""

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the upstream asked us to wait, or ``None`` when it did not say.

    Reads ``retry-after-ms`` (OpenAI's millisecond variant) first, then
    ``Retry-After`` as delta-seconds or an HTTP date. Negative values become 0;
    unparseable values are ignored. ``now`` is the clock for HTTP dates.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = _float_or_none(lowered.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _float_or_none(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _float_or_none(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and number != float("inf") else None  # no NaN / inf


@dataclass(frozen=True)
class ExponentialBackoff:
    """``initial * 2**(n-1)`` seconds before retry ``n``, at most ``maximum``, plus
    up to ``jitter`` seconds drawn from ``rng`` (so replicas do not retry in step)."""

    initial: float = 0.5
    """Wait before the first retry, without jitter."""
    maximum: float = 8.0
    """Longest wait, jitter included."""
    jitter: float = 0.25
    """Largest random addition, in seconds."""
    rng: Callable[[], float] = field(default=random.random, compare=False)
    """Uniform [0, 1) source; inject a constant in tests."""

    def __call__(self, retry_number: int) -> float:
        base = self.initial * 2 ** max(0, retry_number - 1)
        return min(self.maximum, base + self.jitter * self.rng())


class WaitRetryAfter(wait_base):
    """Tenacity wait: the failed try's ``Retry-After`` capped at ``cap``, else ``backoff``."""

    def __init__(self, backoff: ExponentialBackoff, cap: float):
        self.backoff = backoff
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.cap)
        return self.backoff(retry_state.attempt_number)


class RetryOn(retry_base):
    """Tenacity retry rule (see the module docstring). Stateful: it counts timeouts,
    so build one per call (``RetryPolicy.retrying`` does)."""

    def __init__(self, max_timeout_retries: int = 1):
        self.max_timeout_retries = max_timeout_retries
        self.timeouts = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.outcome is None or not retry_state.outcome.failed:
            return False
        return self.should_retry(retry_state.outcome.exception())

    def should_retry(self, exc: BaseException | None) -> bool:
        """True when ``exc`` is worth another try."""
        if isinstance(exc, BackendTimeout):
            self.timeouts += 1
            return self.timeouts <= self.max_timeout_retries
        if isinstance(exc, UpstreamStatusError):
            return exc.upstream_status in RETRY_STATUSES or exc.upstream_status >= 500
        return isinstance(exc, BackendUnavailable)


def _log_retry(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    log.warning(
        "retrying after %s (try %d failed), waiting %.2fs",
        exc,
        retry_state.attempt_number,
        retry_state.upcoming_sleep,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How one backend retries. Build with :meth:`from_config` or directly in tests."""

    max_retries: int = 2
    """Extra tries after the first one."""
    retry_after_cap: float = 10.0
    """Longest ``Retry-After`` honoured, in seconds."""
    backoff: ExponentialBackoff = field(default_factory=ExponentialBackoff)
    """Wait when the upstream gave no ``Retry-After``."""
    max_timeout_retries: int = 1
    """Retries after read timeouts, within ``max_retries``."""
    sleep: Sleep = field(default=asyncio.sleep, compare=False)
    """The sleep coroutine; inject a recorder in tests."""

    @classmethod
    def from_config(cls, config: OpenAIConfig, **overrides: Any) -> RetryPolicy:
        """The policy of an :class:`~sdk.backends.config.OpenAIConfig`, with optional overrides."""
        values: dict[str, Any] = {
            "max_retries": config.max_retries,
            "retry_after_cap": config.retry_after_cap,
        }
        values.update(overrides)
        return cls(**values)

    def retrying(self) -> AsyncRetrying:
        """A fresh tenacity controller for one call; the last error is re-raised as is."""
        return AsyncRetrying(
            sleep=self.sleep,
            stop=stop_after_attempt(self.max_retries + 1),
            wait=WaitRetryAfter(self.backoff, self.retry_after_cap),
            retry=RetryOn(self.max_timeout_retries),
            before_sleep=_log_retry,
            reraise=True,
        )

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` under this policy; ``fn`` must be a coroutine function
        (tenacity tells sync from async callables by that, not by the result).

        Fast path: the first try runs bare (building tenacity's controller cost more than
        the rest of a proxied request's routing); only a ``BackendError`` enters the retry
        machinery, which replays that failure as its first try, so waits, counts and
        logs are exactly those of a fully tenacity-driven call."""
        try:
            return await fn(*args)
        except BackendError as exc:
            first: BackendError | None = exc
        # a first failure: replayed as tenacity's try 1, then real tries

        async def attempt(*call_args: Any) -> T:
            nonlocal first
            if first is not None:
                failed, first = first, None
                raise failed
            return await fn(*call_args)

        return await self.retrying()(attempt, *args)
