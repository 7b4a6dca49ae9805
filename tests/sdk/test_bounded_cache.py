"""``sdk.bounded.BoundedCache``: at most N entries and about B bytes, oldest out first; the
engine's decision memo, flooded with distinct hints, stays inside both bounds; and the
embedding cache, keyed by callers' prompts, is bounded by bytes as well as entries."""

from __future__ import annotations

from sdk import engine as engine_module
from sdk.bounded import BoundedCache
from sdk.embed import CachedEmbedder, HashingEmbedder
from sdk.engine import Engine
from sdk.policy import Policy
from sdk.protocol import ChatMessage, ChatRequest


def _by_length(key: str, value: str) -> int:
    return len(key) + len(value)


def test_a_hit_returns_the_value_and_a_miss_none():
    cache = BoundedCache[str, str](4, 1000, _by_length)
    cache.put("a", "1")
    assert cache.get("a") == "1"
    assert cache.get("b") is None
    assert len(cache) == 1 and cache.bytes == 2


def test_the_entry_bound_evicts_the_oldest_first():
    cache = BoundedCache[str, str](3, 1000, _by_length)
    for key in "abcd":
        cache.put(key, key)
    assert [cache.get(k) for k in "abcd"] == [None, "b", "c", "d"]
    assert len(cache) == 3 and cache.bytes == 6


def test_the_byte_bound_evicts_until_the_new_entry_fits():
    cache = BoundedCache[str, str](100, 10, _by_length)
    cache.put("a", "xxxx")  # 5 bytes
    cache.put("b", "xxxx")  # 10
    cache.put("c", "xx")  # 13 > 10: "a" leaves
    assert cache.get("a") is None and cache.get("b") == "xxxx" and cache.get("c") == "xx"
    assert cache.bytes == 8


def test_an_entry_larger_than_the_byte_bound_is_never_stored_and_evicts_nothing():
    cache = BoundedCache[str, str](100, 10, _by_length)
    cache.put("a", "x")
    cache.put("huge", "x" * 100)
    assert cache.get("huge") is None and cache.get("a") == "x"
    assert cache.bytes == 2


def test_storing_a_key_again_replaces_it_and_its_size():
    cache = BoundedCache[str, str](2, 1000, _by_length)
    cache.put("a", "x" * 10)
    cache.put("a", "y")
    assert cache.get("a") == "y" and len(cache) == 1 and cache.bytes == 2
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and cache.get("a") is None


def test_the_engine_memo_flooded_with_distinct_hints_stays_within_its_bounds(monkeypatch):
    monkeypatch.setattr(engine_module, "_DECISION_CACHE", 500)
    monkeypatch.setattr(engine_module, "_DECISION_CACHE_BYTES", 200_000)
    policy = Policy.model_validate(
        {
            "version": 1,
            "models": {
                "small": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "s"},
                "big": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "b"},
            },
            "routes": {"auto": {"student": "small", "frontier": "big", "tasks": {"detect": ["hint"]}}},
        }
    )
    engine = Engine(policy)
    request = ChatRequest(model="auto", messages=[ChatMessage(role="user", content="hi")])
    largest = 0
    for i in range(3000):
        decision = engine.explain(request, f"{i:06d}" + "t" * 58)  # the longest valid hint
        assert decision.task.startswith(f"{i:06d}")
        memo = engine._decisions
        largest = max(largest, len(memo))
        assert memo.bytes <= 200_000
    assert 100 < largest <= 500
    again = engine.explain(request, "002999" + "t" * 58)
    assert again is engine.explain(request, "002999" + "t" * 58), "a repeated input is a hit"


def test_the_embedding_cache_of_long_prompts_stays_within_its_byte_bound():
    cache = CachedEmbedder(HashingEmbedder(dim=64), maxsize=4096, max_bytes=1 << 20)
    for i in range(40):  # 40 distinct prompts of 100 kB: 4 MB of text were it only bounded by entries
        cache.embed([f"{i:04d} " + "word " * 20_000])
    assert cache._bytes <= 1 << 20
    assert 5 <= len(cache._cache) <= 10
    short = ["translate this", "sort these numbers"]
    first = cache.embed(short)
    assert (cache.embed(short) == first).all() and cache.hits >= 2, "short prompts are still cached"
