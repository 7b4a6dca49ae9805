"""The detection pipeline: the route's detectors in order; the first confident guess wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sdk.decision import TaskGuess
from sdk.detect.base import DetectContext, Detector, load_factory
from sdk.errors import DependencyMissing
from sdk.protocol import ChatRequest

__all__ = ["UNKNOWN", "DetectionPipeline", "build_pipeline"]

UNKNOWN = TaskGuess("unknown", "none", 0.0)


@dataclass
class DetectionPipeline:
    """Runs ``detectors`` in order and returns the first guess at or above ``min_confidence``."""

    detectors: Sequence[Detector]
    min_confidence: float = 0.5
    notes: list[str] = field(default_factory=list)
    """Why configured detectors are missing (e.g. an optional dependency is not installed)."""

    def detect(self, request: ChatRequest, hint: str | None = None) -> TaskGuess:
        """The winning guess, or ``unknown`` (source ``none``, confidence 0)."""
        for detector in self.detectors:
            guess = detector.detect(request, hint)
            if guess is not None and guess.task != "unknown" and guess.confidence >= self.min_confidence:
                return guess
        return UNKNOWN

    @property
    def names(self) -> list[str]:
        """Names of the detectors that run, in order."""
        return [d.name for d in self.detectors]


def build_pipeline(ctx: DetectContext) -> DetectionPipeline:
    """Build the route's detectors from the registry. A detector whose module or optional
    dependency is missing is skipped, with a note saying why."""
    detectors: list[Detector] = []
    notes: list[str] = []
    for name in ctx.route.tasks.detect:
        try:
            detectors.append(load_factory(name)(ctx))
        except (ImportError, DependencyMissing) as exc:
            notes.append(f"detector '{name}' skipped: {exc}")
    return DetectionPipeline(detectors, ctx.route.tasks.min_confidence, notes)
