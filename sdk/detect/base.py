"""The detector contract.

A detector is a small strategy object: ``detect(request, hint) -> TaskGuess | None``
(``None``: no opinion). Each is built by a factory ``from_context(ctx)`` living in
its own module, listed by name in :data:`sdk.detect.registry.REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sdk.decision import TaskGuess
from sdk.policy import RouteConfig
from sdk.profile import Profile
from sdk.protocol import ChatRequest, text_of

__all__ = ["DetectContext", "Detector", "DetectorFactory", "last_user_text"]


class Detector(Protocol):
    """Names a request's task category, or has no opinion."""

    name: str
    """The detector's registry name (``hint``, ``rules``...)."""

    def detect(self, request: ChatRequest, hint: str | None) -> TaskGuess | None:
        """The guess for ``request``; ``hint`` is the caller's explicit task hint (header)."""
        ...


@dataclass(frozen=True, slots=True)
class DetectContext:
    """What a factory may use to build its detector for one route."""

    route_name: str
    """The route's name in the policy."""
    route: RouteConfig
    """The route's configuration (rules, thresholds)."""
    profile: Profile | None = None
    """The route's loaded profile, or ``None`` (evidence for embeddings)."""


DetectorFactory = Callable[[DetectContext], Detector]


def last_user_text(request: ChatRequest) -> str:
    """The text of the last ``user`` message (empty when there is none)."""
    for message in reversed(request.messages):
        if message.role == "user":
            return text_of(message)
    return ""
