"""The detectors by the name a policy gives them (``tasks.detect: [hint, rules, ...]``).

Each factory builds its detector from the route's context. The nearest-neighbour detectors
(``lexical``, ``embeddings``) need numpy and, for ``embeddings``, a sentence model: their
modules load when a policy's pipeline first builds them, so routing by hint and rules
stays light.
"""

from __future__ import annotations

from sdk.detect import hint, rules
from sdk.detect.base import DetectContext, Detector, DetectorFactory

__all__ = ["REGISTRY"]


def _lexical(ctx: DetectContext) -> Detector:
    from sdk.detect import lexical

    return lexical.from_context(ctx)


def _embeddings(ctx: DetectContext) -> Detector:
    from sdk.detect import embedding

    return embedding.from_context(ctx)


REGISTRY: dict[str, DetectorFactory] = {
    "hint": hint.from_context,
    "rules": rules.from_context,
    "embeddings": _embeddings,
    "lexical": _lexical,
}
