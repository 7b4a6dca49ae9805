"""The shipped pair tells the story: the teacher is right everywhere, the student
only on the easy categories. Both load through the ``transformers`` backend exactly
as the engine builds them, and answer a sample of the ``tiny`` suite greedily."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from sdk.backends import TransformersConfig, make_backend
from sdk.embedded import model_dir
from sdk.protocol import ChatRequest

SUITE = Path(__file__).resolve().parents[2] / "profiles" / "data" / "tiny.jsonl"
PER_CATEGORY = 10
EASY = ("reverse", "copy", "largest")
"""Categories where the distilled student matches the teacher (1.00, 0.95, 1.00 on the full suite)."""
HARD = ("double", "sort", "uppercase")
"""Where the student is clearly worse (0.28, 0.17, 0.57 on the full suite)."""


def _suite() -> list[dict]:
    return [json.loads(line) for line in SUITE.read_text().splitlines()]


def _sample() -> list[dict]:
    taken: Counter[str] = Counter()
    items = []
    for row in _suite():
        if taken[row["category"]] < PER_CATEGORY:
            taken[row["category"]] += 1
            items.append(row)
    return items


@pytest.fixture(scope="module")
def pair():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    backends = {
        name: make_backend(
            name, TransformersConfig(backend="transformers", model=f"embedded:{name}", threads=1)
        )
        for name in ("teacher", "student")
    }
    yield backends
    for b in backends.values():
        asyncio.run(b.close())


async def _accuracy(backend, items: list[dict]) -> dict[str, float]:
    async def one(row: dict) -> tuple[str, bool]:
        req = ChatRequest(model=backend.name, messages=row["messages"], max_tokens=16)
        resp = await backend.complete(req)
        return row["category"], resp.choices[0].message.content == row["reference"]

    right: dict[str, list[bool]] = defaultdict(list)
    for cat, ok in await asyncio.gather(*(one(r) for r in items)):
        right[cat].append(ok)
    return {cat: sum(v) / len(v) for cat, v in right.items()}


def test_suite_has_fifty_items_per_category_and_unique_prompts() -> None:
    rows = _suite()
    counts = Counter(r["category"] for r in rows)
    assert len(counts) >= 6 and min(counts.values()) >= 50
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["messages"][0]["content"] for r in rows}) == len(rows)


def test_student_has_at_most_a_quarter_of_the_teachers_parameters() -> None:
    safetensors = pytest.importorskip("safetensors")

    def count(name: str) -> int:
        with safetensors.safe_open(str(model_dir(name) / "model.safetensors"), "np") as f:
            return sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 - safe_open has no __iter__

    assert count("student") <= 0.25 * count("teacher")


def _prod(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


async def test_teacher_is_right_on_every_category(pair) -> None:
    acc = await _accuracy(pair["teacher"], _sample())
    assert min(acc.values()) >= 0.8, acc


async def test_student_is_right_on_easy_and_wrong_on_hard_categories(pair) -> None:
    acc = await _accuracy(pair["student"], _sample())
    assert all(acc[c] >= 0.8 for c in EASY), acc
    assert all(acc[c] <= 0.6 for c in HARD), acc
