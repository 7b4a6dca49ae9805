"""The detection pipeline: the route's detectors in order; the first confident guess wins.

Detectors built from the registry are lazy: one is constructed the first time a
request reaches it (or at ``warm()``, which the engine calls at start), so a
one-off ``route explain`` answered by a rule never loads an embedding model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sdk.decision import TaskGuess
from sdk.detect.base import DetectContext, Detector
from sdk.detect.registry import REGISTRY
from sdk.errors import DependencyMissing
from sdk.protocol import ChatRequest

__all__ = ["UNKNOWN", "DetectionPipeline", "LazyDetector", "build_pipeline"]

UNKNOWN = TaskGuess("unknown", "none", 0.0)


class LazyDetector:
    """A registry detector built on first use. A missing optional dependency makes it a
    no-op with a ``note`` saying why."""

    def __init__(self, name: str, build: Callable[[], Detector]):
        self.name = name
        self._build: Callable[[], Detector] | None = build
        self._detector: Detector | None = None
        self.note: str | None = None

    def get(self) -> Detector | None:
        """The detector, built now if needed; ``None`` when it cannot be built."""
        if self._build is not None:
            build, self._build = self._build, None
            try:
                self._detector = build()
            except DependencyMissing as exc:
                self.note = f"detector '{self.name}' skipped: {exc}"
        return self._detector

    def detect(self, request: ChatRequest, hint: str | None) -> TaskGuess | None:
        """The built detector's guess; ``None`` when it is unavailable."""
        detector = self.get()
        return detector.detect(request, hint) if detector is not None else None


@dataclass
class DetectionPipeline:
    """Runs ``detectors`` in order and returns the first guess at or above ``min_confidence``."""

    detectors: Sequence[Detector]
    min_confidence: float = 0.5
    _notes: list[str] = field(default_factory=list)

    def detect(self, request: ChatRequest, hint: str | None = None) -> TaskGuess:
        """The winning guess, or ``unknown`` (source ``none``, confidence 0)."""
        for detector in self.detectors:
            guess = detector.detect(request, hint)
            if guess is not None and guess.task != "unknown" and guess.confidence >= self.min_confidence:
                return guess
        return UNKNOWN

    def warm(self) -> None:
        """Build every lazy detector now (the engine does this at start)."""
        for detector in self.detectors:
            if isinstance(detector, LazyDetector):
                detector.get()

    @property
    def notes(self) -> list[str]:
        """Why detectors built so far are unavailable (e.g. an optional dependency is missing)."""
        lazy = [d.note for d in self.detectors if isinstance(d, LazyDetector) and d.note]
        return [*self._notes, *lazy]

    @property
    def names(self) -> list[str]:
        """Names of the detectors that run, in order (builds lazy ones to know)."""
        self.warm()
        return [d.name for d in self.detectors if not isinstance(d, LazyDetector) or d.get() is not None]


def build_pipeline(ctx: DetectContext) -> DetectionPipeline:
    """The route's detectors from the registry, in the policy's order, each built on first use."""

    def builder(name: str) -> Callable[[], Detector]:
        return lambda: REGISTRY[name](ctx)

    detectors = [LazyDetector(name, builder(name)) for name in ctx.route.tasks.detect]
    return DetectionPipeline(detectors, ctx.route.tasks.min_confidence)
