"""The call cache on its own: keys, identities, persistence, threads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from profiles.cache import CachedCall, CallCache, default_cache_dir, model_identity, request_key
from sdk.backends import OpenAIConfig, TransformersConfig


def test_default_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("BITRATE_CACHE_DIR", raising=False)
    assert str(default_cache_dir()) == ".bitrate-cache"
    monkeypatch.setenv("BITRATE_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    with CallCache() as cache:
        assert cache.path == tmp_path / "calls.sqlite"


def test_identity_separates_urls_and_retrained_weights(tmp_path):
    a = OpenAIConfig(backend="openai", base_url="http://127.0.0.1:1/v1/", model="m")
    b = OpenAIConfig(backend="openai", base_url="http://127.0.0.1:2/v1", model="m")
    assert model_identity(a) != model_identity(b)
    assert model_identity(a) == model_identity(a.model_copy(update={"base_url": "http://127.0.0.1:1/v1"}))
    (tmp_path / "model.safetensors").write_bytes(b"v1")
    local = TransformersConfig(backend="transformers", model=str(tmp_path))
    before = model_identity(local)
    (tmp_path / "model.safetensors").write_bytes(b"v2 retrained")
    assert model_identity(local) != before
    assert model_identity(local.model_copy(update={"max_new_tokens": 8})) != model_identity(local)


def test_key_depends_on_every_request_field():
    ident = {"backend": "openai", "model": "m"}
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    assert request_key(ident, body) == request_key(ident, dict(reversed(body.items())))
    assert request_key(ident, body) != request_key(ident, {**body, "temperature": 0.5})
    assert request_key(ident, body) != request_key({**ident, "model": "n"}, body)


def test_persists_and_serves_many_threads(tmp_path):
    calls = {f"k{i}": CachedCall(f"answer {i}", i, 2 * i, i / 10) for i in range(200)}
    with CallCache(tmp_path) as cache, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: cache.put(*kv), calls.items()))
        got = list(pool.map(cache.get, calls))
    assert got == list(calls.values())
    with CallCache(tmp_path) as reopened:
        assert len(reopened) == 200 and reopened.get("k7") == calls["k7"] and reopened.get("nope") is None
    assert os.path.getsize(tmp_path / "calls.sqlite") > 0
