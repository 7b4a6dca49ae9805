"""What the live store keeps: :class:`Observation` (one graded live pair) and
:class:`MonitorRecord` (a (route, category)'s shared monitor state and verdict)."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sdk.stats import VerdictName

__all__ = ["DIRECTIONS", "Direction", "MonitorRecord", "Observation", "prompt_hash"]

Direction = Literal["shadow", "spot_check", "replay"]
"""How a pair was observed: ``shadow`` (frontier served, student answered in the background),
``spot_check`` (student served, frontier in the background), ``replay`` (recorded rows fed in)."""
DIRECTIONS = frozenset(get_args(Direction))
"""The directions, as a set."""
_VERDICTS = frozenset(get_args(VerdictName))


def prompt_hash(messages: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of a request's messages as canonical JSON (sorted keys, no spaces): the same
    conversation always gets the same hash, whichever replica saw it."""
    text = json.dumps(list(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Observation:
    """One live pair: a request answered by both sides and graded without a reference."""

    route: str
    """The route that served the request."""
    category: str
    """The request's task category."""
    student: float
    """Student score in [0, 1]."""
    frontier: float
    """Frontier score in [0, 1]."""
    grader: str
    """Name of the grader that scored the pair (shown wherever live figures are shown)."""
    direction: Direction
    """``shadow``, ``spot_check`` or ``replay`` (see :data:`Direction`)."""
    prompt_hash: str
    """:func:`prompt_hash` of the request's messages."""
    at: float = field(default_factory=time.time)
    """When it was observed (Unix seconds)."""
    request_id: str | None = None
    """The gateway's id of the request, when there is one."""
    messages: str | None = None
    """The request's messages as JSON text (a list of chat messages); stored only with capture."""
    student_answer: str | None = None
    """The student's answer as JSON text (its message); stored only with capture."""
    frontier_answer: str | None = None
    """The frontier's answer as JSON text (its message); stored only with capture."""
    id: int | None = None
    """The store's id (monotone in commit order); None before the observation is stored."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.student <= 1.0 and 0.0 <= self.frontier <= 1.0):
            raise ValueError(
                f"scores must be in [0, 1], got student={self.student}, frontier={self.frontier}"
            )
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {self.direction!r}")
        if not (self.route and self.category and self.grader and self.prompt_hash):
            raise ValueError("route, category, grader and prompt_hash must be non-empty")
        if not math.isfinite(self.at):
            raise ValueError(f"at must be a finite time, got {self.at}")

    @property
    def captured(self) -> bool:
        """True when the messages or an answer are kept."""
        return any(x is not None for x in (self.messages, self.student_answer, self.frontier_answer))


@dataclass(frozen=True, slots=True)
class MonitorRecord:
    """A (route, category)'s monitor as the replicas share it: verdict, demotion and full state."""

    route: str
    """The route."""
    category: str
    """The category."""
    verdict: VerdictName
    """The live verdict: ``safe``, ``uncertain`` or ``unsafe`` (demoted)."""
    state: dict[str, Any]
    """The monitor's state (``LiveMonitor.to_dict()``: plain JSON values)."""
    demoted_since: float | None = None
    """When the category was demoted (Unix seconds), or None."""
    reset_by: str | None = None
    """Who last reset the monitor (a person's name, as given to the reset), or None."""
    reset_at: float | None = None
    """When it was last reset (Unix seconds), or None."""
    through: int = 0
    """Id of the last observation the state has seen (a replica resuming from the record feeds
    it the observations after this id); 0 when none."""
    updated_at: float = field(default_factory=time.time)
    """When the record was written (Unix seconds); the store sets it on every write."""
    version: int = 0
    """The store's version of this record (0 before it is stored); see ``put_state``."""

    def __post_init__(self) -> None:
        if self.verdict not in _VERDICTS:
            raise ValueError(f"verdict must be one of {sorted(_VERDICTS)}, got {self.verdict!r}")
        if not (self.route and self.category):
            raise ValueError("route and category must be non-empty")
