"""The lexical detector: the embedding detector's vote over hashed character n-grams.

Needs no model: a :class:`~sdk.embed.HashingEmbedder` with IDF weights fitted on
the labelled prompts (TF-IDF). A request's vector is sparse (a few hundred
buckets), so its similarity to every example is one gather-and-dot over the
columns it touches; the whole detection takes well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Iterable

from sdk.decision import TaskGuess
from sdk.detect.base import DetectContext, last_user_text
from sdk.detect.embedding import DEFAULT_K, NearestVote, examples_from_profile, nearest_guess
from sdk.embed import HashingEmbedder, VectorIndex
from sdk.protocol import ChatRequest

__all__ = ["LexicalDetector", "from_context"]

DEFAULT_MIN_CONFIDENCE = 0.3


class LexicalDetector(NearestVote):
    """k nearest labelled neighbours over TF-IDF-weighted hashed character n-grams.

    Confidence is relative to how similar the examples are to each other (see
    :func:`sdk.detect.embedding.vote`), so the same threshold suits both detectors.
    """

    def __init__(
        self,
        examples: Iterable[tuple[str, str]],
        *,
        k: int = DEFAULT_K,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        embedder: HashingEmbedder | None = None,
    ):
        pairs = [(text, label) for text, label in examples if text.strip()]
        texts = [t for t, _ in pairs]
        self.embedder = (embedder or HashingEmbedder()).fit(texts) if texts else HashingEmbedder()
        self.k = k
        self.min_confidence = min_confidence
        self.name = "lexical"
        self.texts = texts
        self.index = VectorIndex.build(self.embedder, texts, [lab for _, lab in pairs])
        self.scale = self.index.scale()

    def guess_text(self, text: str) -> TaskGuess | None:
        """The guess for a prompt's text (``None`` below ``min_confidence`` or with no examples)."""
        if not text.strip() or len(self.index) == 0:
            return None
        sims = self.index.similarities_to_text(self.embedder, text)
        return nearest_guess(sims, self.index, self.scale, self.k, self.min_confidence, self.name)

    def detect(self, request: ChatRequest, hint: str | None) -> TaskGuess | None:
        """The guess for the last user message."""
        return self.guess_text(last_user_text(request))


def from_context(ctx: DetectContext) -> LexicalDetector:
    """Registry factory: the route's profile evidence as examples."""
    return LexicalDetector(examples_from_profile(ctx.profile))
