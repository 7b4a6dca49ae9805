"""The routing decision: what ``decide()`` returns and what every answer carries.

A ``Decision`` is plain data. The engine attaches ``decision.to_meta()`` to each
answer as the ``bitrate`` object (JSON body, last stream chunk) and the gateway
copies ``route``, ``task`` and ``reason`` into the ``x-bitrate-*`` headers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = ["Decision", "Side", "TaskGuess", "Verdict"]

Side = Literal["student", "frontier", "direct"]
Verdict = Literal["safe", "uncertain", "unsafe", "unknown"]


@dataclass(frozen=True, slots=True)
class TaskGuess:
    """A task detector's answer: the category, who said so, and how sure."""

    task: str
    """Category name, or ``unknown``."""
    source: str
    """``hint``, ``rule``, ``embedding``, ``lexical`` or ``none``."""
    confidence: float = 1.0
    """In [0, 1]; below the detector's threshold the guess becomes ``unknown``."""
    rule: str | None = None
    """For ``rule``: the pattern that matched."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes and why."""

    route: str
    """The name the caller sent as ``model`` (a route or a direct model)."""
    target: str
    """The policy model name that serves the request."""
    side: Side
    """``student`` or ``frontier`` for a route; ``direct`` for a direct model name."""
    task: str = "unknown"
    """Detected task category."""
    task_source: str = "none"
    """Which detector named the task."""
    task_confidence: float = 0.0
    """The detector's confidence."""
    verdict: Verdict = "unknown"
    """The profile's verdict for the task (or for this prompt, per-prompt)."""
    estimated_loss: float | None = None
    """Expected quality loss if the student answers (category or per-prompt estimate)."""
    rule: str = "direct"
    """What decided: ``direct``, ``pin``, ``verdict``, ``per_prompt``, ``uncertain``, ``unknown_task``,
    ``live`` (the live monitor demoted the task),
    ``capability`` (the first choice cannot serve the request), ``health`` (the first choice's
    circuit was open)."""
    reason: str = ""
    """One line for a human."""
    fallback_from: str | None = None
    """Set when the first target failed and this one answered instead."""
    escalated: bool = False
    """True when the student's answer failed a check and the frontier answered."""
    lacking: tuple[str, ...] = ()
    """For rule ``capability``: what the request needs that the first choice's model lacks
    (``tools``, ``vision``, ``json_schema``, ``context``; see ``sdk.capabilities``)."""

    def with_(self, **changes: Any) -> Decision:
        """A copy with some fields changed (fallback, escalation)."""
        return replace(self, **changes)

    def to_meta(self) -> dict[str, Any]:
        """The ``bitrate`` object sent with the answer: every field, in declaration order.

        Built by hand: ``dataclasses.asdict`` deep-copies recursively and cost ~10x more
        on the gateway's hot path (every field here is a plain value)."""
        return {
            "route": self.route,
            "target": self.target,
            "side": self.side,
            "task": self.task,
            "task_source": self.task_source,
            "task_confidence": self.task_confidence,
            "verdict": self.verdict,
            "estimated_loss": self.estimated_loss,
            "rule": self.rule,
            "reason": self.reason,
            "fallback_from": self.fallback_from,
            "escalated": self.escalated,
            "lacking": self.lacking,
        }
