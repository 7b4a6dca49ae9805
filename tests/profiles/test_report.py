"""profiles.report: the Markdown page and the PNG chart."""

from __future__ import annotations

import pytest

from profiles.assemble import ItemOutcome, assemble_profile
from profiles.report import render_markdown, worst_first, write_report
from sdk.profile import ModelIdentity, Profile, SuiteInfo, Tolerance


def _items(category: str, both: int, breaks: int, fixes: int, neither: int) -> list[ItemOutcome]:
    cells = [(1, 1)] * both + [(0, 1)] * breaks + [(1, 0)] * fixes + [(0, 0)] * neither
    return [
        ItemOutcome(id=f"{category}-{i}", category=category, prompt=f"p{i}", student=s, frontier=f)
        for i, (s, f) in enumerate(cells)
    ]


def make_profile(**categories: tuple[int, int, int, int]) -> Profile:
    """A profile assembled from synthetic 0/1 outcomes, one (both, breaks, fixes, neither) per category."""
    outcomes = [item for name, cells in categories.items() for item in _items(name, *cells)]
    return assemble_profile(
        outcomes,
        student=ModelIdentity(name="student", model="tiny-student"),
        frontier=ModelIdentity(name="frontier", model="tiny-teacher"),
        suite=SuiteInfo(names=["synthetic"], sha256="0" * 64, n_items=len(outcomes)),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        method="build",
    )


@pytest.fixture
def mixed() -> Profile:
    return make_profile(
        translation=(300, 2, 2, 96),  # loss 0: safe
        summary=(60, 6, 3, 11),  # loss ~0.04, wide: uncertain
        math=(40, 30, 2, 28),  # loss 0.28: unsafe
    )


def test_worst_first_orders_by_loss(mixed):
    assert [name for name, _ in worst_first(mixed)] == ["math", "summary", "translation"]
    assert [c.verdict for _, c in worst_first(mixed)] == ["unsafe", "uncertain", "safe"]


def test_markdown_lists_categories_worst_first_and_explains_terms(mixed):
    text = render_markdown(mixed)
    assert text.index("| math |") < text.index("| summary |") < text.index("| translation |")
    assert "| **unsafe** |" in text and "| **safe** |" in text
    for term in ("**Loss**", "**Breaks**", "**fixes**", "**verdict**"):
        assert term in text
    assert "90% confidence" in text and "95%" in text  # two-sided level and its one-sided meaning
    assert "![Loss per category](loss.png)" in text


def test_write_report_writes_markdown_and_a_png(tmp_path, mixed):
    from matplotlib.image import imread

    markdown, chart = write_report(mixed, tmp_path / "out")
    assert markdown.read_text().startswith("# Capability profile: student vs frontier")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(chart).shape
    assert width > 600 and height > 200


def test_cost_and_latency_table_only_when_recorded(mixed):
    assert "Mean cost and latency" not in render_markdown(mixed)
    outcomes = [
        ItemOutcome(
            id=str(i),
            category="math",
            prompt="q",
            student=1,
            frontier=1,
            student_cost=0.001,
            frontier_cost=0.01 * (i + 1),
            frontier_latency=0.5,
        )
        for i in range(4)
    ]
    priced = assemble_profile(
        outcomes,
        student=ModelIdentity(name="s"),
        frontier=ModelIdentity(name="f"),
        suite=SuiteInfo(names=["x"], sha256="0" * 64, n_items=4),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        method="import",
    )
    text = render_markdown(priced)
    assert "| math | $0.001000 | $0.025000 | n/a | 0.500 s |" in text
