"""Task detection: which category a request belongs to, who said so, how sure.

Detectors (``hint``, ``rules``, ``embeddings``, ``lexical``) are strategy objects
with ``detect(request, hint) -> TaskGuess | None``, built by name from
:data:`sdk.detect.registry.REGISTRY` (each module exports ``from_context(ctx)``).
:func:`build_pipeline` runs a route's detectors in the policy's order.
"""

from sdk.detect.base import DetectContext, Detector, last_user_text
from sdk.detect.pipeline import UNKNOWN, DetectionPipeline, build_pipeline
from sdk.detect.registry import REGISTRY

__all__ = [
    "REGISTRY",
    "UNKNOWN",
    "DetectContext",
    "DetectionPipeline",
    "Detector",
    "build_pipeline",
    "last_user_text",
]
