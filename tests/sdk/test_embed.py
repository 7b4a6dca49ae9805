"""Embedders: hashing (no model), the LRU cache, the vector index, and MiniLM loaded offline."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sdk import embed
from sdk.embed import CachedEmbedder, HashingEmbedder, MiniLMEmbedder, VectorIndex, default_embedder
from sdk.errors import DependencyMissing

TEXTS = [
    "Translate this sentence into French: the cat sleeps.",
    "Translate the following paragraph into German please.",
    "Write a Python function that reverses a linked list.",
]


class Counting:
    """A real HashingEmbedder that counts the texts it was asked to embed."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder(dim=512)
        self.name, self.dim, self.seen = self.inner.name, self.inner.dim, []

    def embed(self, texts):
        self.seen.extend(texts)
        return self.inner.embed(texts)


def test_hashing_rows_are_unit_and_deterministic():
    h = HashingEmbedder()
    a, b = h.embed(TEXTS), HashingEmbedder().embed(TEXTS)
    assert a.shape == (3, h.dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a, b)  # crc32 buckets: stable across instances and runs


def test_hashing_similarity_follows_shared_text():
    v = HashingEmbedder().embed(TEXTS)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_hashing_empty_text_is_a_zero_row():
    v = HashingEmbedder().embed(["", "   "])
    assert not v.any()


def test_hashing_sparse_matches_dense():
    h = HashingEmbedder().fit(TEXTS)
    idx, val = h.sparse(TEXTS[2])
    dense = h.embed([TEXTS[2]])[0]
    np.testing.assert_allclose(dense[idx], val)
    assert np.count_nonzero(dense) == len(idx)


def test_fit_downweights_ngrams_every_text_shares():
    corpus = [f"please answer: {w}" for w in ("apple", "river", "mountain", "violin")]
    plain, fitted = HashingEmbedder(), HashingEmbedder().fit(corpus)
    assert fitted.name.endswith("-idf") and plain.idf is None
    p, f = plain.embed(corpus[:2]), fitted.embed(corpus[:2])
    assert f[0] @ f[1] < p[0] @ p[1]


def test_cache_embeds_each_text_once_and_evicts_least_recent():
    inner = Counting()
    cached = CachedEmbedder(inner, maxsize=2)
    first = cached.embed([TEXTS[0], TEXTS[1], TEXTS[0]])
    assert inner.seen == [TEXTS[0], TEXTS[1]]
    np.testing.assert_array_equal(first[0], first[2])
    cached.embed([TEXTS[1]])  # hit; TEXTS[0] is now the least recent
    cached.embed([TEXTS[2]])  # evicts TEXTS[0]
    cached.embed([TEXTS[0]])
    assert inner.seen == [TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[0]]
    assert (cached.hits, cached.misses) == (2, 4)
    assert cached.embed([]).shape == (0, inner.dim)


def test_index_nearest_and_typical_similarity_ignore_duplicates():
    h = HashingEmbedder()
    texts = [TEXTS[0], TEXTS[0], TEXTS[1], TEXTS[2]]  # the same text under two labels
    index = VectorIndex.build(h, texts, ["a", "b", "a", "c"])
    sims = index.similarities(h.embed([TEXTS[1]])[0])
    assert list(index.nearest(sims, 2)) in ([2, 0], [2, 1])
    assert len(index.nearest(sims, 10)) == 4
    typical, background = index.scale()
    assert background < typical < 0.99  # a copy of the same text is not "a typical neighbour"


def test_without_the_model_package_hashing_is_the_default(monkeypatch):
    from sdk.detect import embedding

    monkeypatch.setitem(sys.modules, embed.MINILM_PACKAGE, None)  # find_spec -> None
    embedding.shared_minilm.cache_clear()
    assert not embed.minilm_available()
    assert isinstance(default_embedder(), HashingEmbedder)
    with pytest.raises(DependencyMissing, match=r"bitrate\[embeddings\]"):
        embedding.shared_minilm()
    embedding.shared_minilm.cache_clear()


# ---------------------------------------------------------------- MiniLM (real model, offline)

needs_minilm = pytest.mark.skipif(not embed.minilm_available(), reason="bitrate[embeddings] not installed")


@pytest.fixture(scope="module")
def minilm():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return MiniLMEmbedder(threads=1).load()


@needs_minilm
def test_minilm_gives_unit_vectors_that_see_paraphrase(minilm):
    v = minilm.embed(["How do I bake bread at home?", "What's a good recipe for homemade bread?", TEXTS[2]])
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2]


@needs_minilm
def test_minilm_batches_like_single_calls(minilm):
    batched = minilm.embed(TEXTS)
    single = np.stack([minilm.embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


@needs_minilm
def test_default_embedder_is_cached_minilm():
    e = default_embedder(threads=1)
    assert isinstance(e, CachedEmbedder) and e.name == "all-MiniLM-L6-v2"


@needs_minilm
@pytest.mark.slow
def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(embed._minilm_dir()), device="cpu")
    expected = reference.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(minilm.embed(TEXTS), expected, atol=1e-5)
