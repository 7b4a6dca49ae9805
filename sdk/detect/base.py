"""The detector contract and the registry that builds detectors by name.

A detector is a small strategy object: ``detect(request, hint) -> TaskGuess | None``
(``None``: no opinion). Each is built by a factory ``from_context(ctx)`` living in
its own module, named in ``REGISTRY`` as ``"module:function"`` and imported only
when a policy asks for it, so heavy detectors (embeddings) cost nothing unless used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sdk.decision import TaskGuess
from sdk.protocol import ChatRequest, text_of

if TYPE_CHECKING:
    from sdk.policy import RouteConfig

__all__ = ["REGISTRY", "DetectContext", "Detector", "DetectorFactory", "last_user_text", "load_factory"]


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
    profile: Any | None = None
    """The route's loaded :class:`sdk.profile.Profile`, or ``None`` (evidence for embeddings)."""


DetectorFactory = Callable[[DetectContext], Detector]

# detector name -> "module:factory"; imported only when a policy uses it
REGISTRY: dict[str, str] = {
    "hint": "sdk.detect.hint:from_context",
    "rules": "sdk.detect.rules:from_context",
    "embeddings": "sdk.detect.embedding:from_context",
    "lexical": "sdk.detect.lexical:from_context",
}


def load_factory(name: str) -> DetectorFactory:
    """Import the factory of detector ``name``. Raises ``ImportError`` when its module is absent."""
    module_name, attr = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), attr)


def last_user_text(request: ChatRequest) -> str:
    """The text of the last ``user`` message (empty when there is none)."""
    for message in reversed(request.messages):
        if message.role == "user":
            return text_of(message)
    return ""
