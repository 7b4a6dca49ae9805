"""Capture: frontier answers kept as training data, redacted before anything is written.

The engine serves real requests (a real HTTP upstream plays both models); what reaches the live
store is read back from the database file itself, and from the export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiles.distill import export_captures
from sdk.engine import Engine
from sdk.errors import ConfigError
from sdk.live.capture import (
    REDACTED,
    Capture,
    CaptureTable,
    CaptureWriter,
    Redactor,
    RouteCapture,
    open_captures,
)
from sdk.live.capture_config import CaptureConfig
from sdk.live.store import open_store
from sdk.policy import Policy
from sdk.protocol import ChatCompletion, ChatRequest
from tests.support.fault_server import Ok, fault_server

SECRET = "123-45-6789"
PATTERN = r"\b\d{3}-\d{2}-\d{4}\b"


def _policy(url: str, store: Path, *, live: dict | None = None, capture: object = None) -> Policy:
    model = {"backend": "openai", "base_url": url, "model": "m", "max_retries": 0, "transport": "httpx"}
    route: dict = {
        "student": "student",
        "frontier": "frontier",
        "tasks": {
            "detect": ["rules"],
            "rules": [{"match": "^sort:", "task": "sort"}, {"match": "^copy:", "task": "copy"}],
        },
        "pin": {"sort": "frontier", "copy": "student"},
    }
    if capture is not None:
        route["capture"] = capture
    policy = {"version": 1, "models": {"student": model, "frontier": model}, "routes": {"auto": route}}
    if live is not None:
        policy["live"] = {"store": str(store), **live}
    return Policy.model_validate(policy)


def _request(text: str) -> ChatRequest:
    return ChatRequest(model="auto", messages=[{"role": "user", "content": text}])


async def _serve(policy: Policy, prompts: list[str], answer: str) -> dict[str, int]:
    with fault_server() as upstream:
        policy.models["frontier"].base_url = upstream.base_url  # type: ignore[union-attr]
        policy.models["student"].base_url = upstream.base_url  # type: ignore[union-attr]
        upstream.script(*[Ok(text=answer) for _ in prompts])
        async with Engine(policy) as engine:
            for prompt in prompts:
                await engine.complete(_request(prompt))
            counters = engine.captures.counters.by_category if engine.captures else {}
            if engine.captures:
                await engine.captures.flush()
                counters = dict(engine.captures.counters.by_category)
    return counters


def _store_bytes(path: Path) -> bytes:
    """Every byte of the SQLite store on disk (the file and its write-ahead log)."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_a_redaction_pattern_never_reaches_the_store_nor_the_export(tmp_path):
    store = tmp_path / "live.sqlite"
    policy = _policy("http://127.0.0.1:9/v1", store, live={"capture": True, "redact": [PATTERN]})
    counts = await _serve(policy, [f"sort: dcba, my SSN is {SECRET}"], answer=f"abcd (SSN {SECRET})")
    assert counts == {"sort": 1}
    assert SECRET.encode() not in _store_bytes(store)
    table = open_captures(str(store), create=False)
    try:
        (capture,) = list(table.export())
        train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
        export_captures([capture], train, heldout, holdout=0.0)
    finally:
        table.store.close()
    assert capture.chat() == [
        {"role": "user", "content": f"sort: dcba, my SSN is {REDACTED}"},
        {"role": "assistant", "content": f"abcd (SSN {REDACTED})"},
    ]
    assert SECRET not in train.read_text() and REDACTED in train.read_text()


async def test_a_callable_redacts_after_the_patterns(tmp_path):
    store = tmp_path / "live.sqlite"
    policy = _policy("http://127.0.0.1:9/v1", store, live={"capture": True, "redact": [PATTERN]})
    with fault_server() as upstream:
        for model in policy.models.values():
            model.base_url = upstream.base_url  # type: ignore[union-attr]
        async with Engine(policy, redact=lambda text: text.replace("Alice", "<name>")) as engine:
            await engine.complete(_request(f"sort: ba, from Alice {SECRET}"))
            assert engine.captures is not None
            await engine.captures.flush()
    assert b"Alice" not in _store_bytes(store) and SECRET.encode() not in _store_bytes(store)


async def test_nothing_is_captured_unless_configured(tmp_path):
    store = tmp_path / "live.sqlite"
    assert await _serve(_policy("http://127.0.0.1:9/v1", store), ["sort: ba"], "ab") == {}
    assert await _serve(_policy("http://127.0.0.1:9/v1", store, live={}), ["sort: ba"], "ab") == {}
    with pytest.raises(ConfigError, match="no captures"):  # the live store exists; no capture table
        open_captures(str(store), create=False)


async def test_only_frontier_answers_in_the_named_categories_are_captured(tmp_path):
    store = tmp_path / "live.sqlite"
    # default categories: those the route's profile does not mark safe (no profile: all)
    policy = _policy("http://127.0.0.1:9/v1", store, live={"capture": True})
    assert await _serve(policy, ["sort: ba", "copy: ab", "sort: cb"], "x") == {"sort": 2}  # copy: student
    named = _policy("http://127.0.0.1:9/v1", tmp_path / "b.sqlite", live={}, capture={"categories": ["copy"]})
    assert named.routes["auto"].capture == CaptureConfig(categories=["copy"])
    assert await _serve(named, ["sort: ba"], "x") == {}  # only copy, which the student serves
    off = _policy("http://127.0.0.1:9/v1", tmp_path / "c.sqlite", live={"capture": True}, capture=False)
    assert await _serve(off, ["sort: ba"], "x") == {}


def test_route_capture_without_a_live_section_is_a_load_error():
    with pytest.raises(ValueError, match="capture needs the policy's `live:` section"):
        _policy("http://127.0.0.1:9/v1", Path("x"), capture=True)


def test_a_bad_redaction_pattern_is_a_load_error():
    with pytest.raises(ValueError, match="invalid regular expression"):
        _policy("http://127.0.0.1:9/v1", Path("x"), live={"redact": ["(unclosed"]})


def _capture(n: int, route: str = "auto", at: float = 1000.0) -> Capture:
    messages = json.dumps([{"role": "user", "content": f"sort: {n}"}])
    return Capture(
        route, "sort", "frontier", f"{n:064x}", at + n, None, messages, '{"role":"assistant","content":"x"}'
    )


def test_the_table_keeps_ids_in_order_and_honours_retention(store_location):
    store = open_store(store_location, capture=True)
    try:
        table = CaptureTable(store)
        assert table.add([_capture(1), _capture(2)]) == [1, 2]
        assert table.add([_capture(3, route="other")]) == [3]
        assert [c.id for c in table.export()] == [1, 2, 3]
        assert [c.id for c in table.read(after=1, route="auto")] == [2]
        assert table.prune(retention_days=None, max_rows=1) == 1  # route auto keeps its newest
        assert [c.id for c in table.export()] == [2, 3]
        assert table.prune(retention_days=1.0, max_rows=None, now=1000.0 + 2.5 + 86400.0) == 1
        assert [c.id for c in table.export()] == [3]
    finally:
        store.close()


def test_a_reader_of_a_store_without_captures_gets_one_clear_error(tmp_path):
    open_store(str(tmp_path / "live.sqlite")).close()
    with pytest.raises(ConfigError, match="no captures in this live store yet"):
        open_captures(str(tmp_path / "live.sqlite"), create=False)


def test_redactor_keeps_roles_and_rewrites_every_other_string():
    redactor = Redactor([PATTERN])
    tree = [{"role": "user", "content": [{"type": "text", "text": f"id {SECRET}"}], "name": SECRET}]
    assert redactor.tree(tree) == [
        {"role": "user", "content": [{"type": "text", "text": f"id {REDACTED}"}], "name": REDACTED}
    ]


async def test_a_full_queue_drops_and_counts_without_blocking(tmp_path):
    store = open_store(str(tmp_path / "live.sqlite"), capture=True)
    writer = CaptureWriter(
        CaptureTable(store), {"auto": RouteCapture(CaptureConfig(), frozenset())}, Redactor(), queue_size=1
    )
    completion = {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ab"}, "finish_reason": "stop"}],
    }
    answer = ChatCompletion.model_validate(completion)
    assert writer.offer("auto", "sort", "frontier", _request("sort: ba"), answer)  # not started: stays queued
    assert not writer.offer("auto", "sort", "frontier", _request("sort: cb"), answer)
    assert writer.counters.dropped == 1
    await writer.start()
    await writer.aclose()
    assert writer.counters.captured == 1
