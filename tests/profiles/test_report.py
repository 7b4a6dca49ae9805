"""profiles.report: the Markdown page and the PNG chart."""

from __future__ import annotations

import pytest

from profiles.assemble import ItemOutcome, assemble_profile
from profiles.report import (
    VERDICT_COLOURS,
    VERDICT_MARKERS,
    format_interval,
    format_loss,
    render_markdown,
    tolerance_in_words,
    worst_first,
    write_report,
)
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


OKABE_ITO = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
# Machado et al. (2009), severity 1: linear RGB as seen with deuteranopia and protanopia
CVD = {
    "deuteranopia": [[0.367, 0.861, -0.228], [0.280, 0.673, 0.047], [-0.012, 0.043, 0.969]],
    "protanopia": [[0.152, 1.053, -0.205], [0.115, 0.786, 0.099], [-0.004, -0.048, 1.052]],
}


def _linear(colour: str) -> list[float]:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    return [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]


def _seen(colour: str, matrix: list[list[float]]) -> list[float]:
    rgb = _linear(colour)
    return [min(1.0, max(0.0, sum(m * c for m, c in zip(row, rgb, strict=True)))) for row in matrix]


def test_verdicts_differ_in_a_colour_blind_safe_palette_and_in_shape():
    assert set(VERDICT_COLOURS.values()) <= OKABE_ITO
    assert len(set(VERDICT_MARKERS.values())) == len(VERDICT_MARKERS) == 3
    for matrix in CVD.values():
        seen = {verdict: _seen(colour, matrix) for verdict, colour in VERDICT_COLOURS.items()}
        for a, b in (("safe", "unsafe"), ("safe", "uncertain"), ("uncertain", "unsafe")):
            distance = sum((x - y) ** 2 for x, y in zip(seen[a], seen[b], strict=True)) ** 0.5
            assert distance > 0.15, f"{a} and {b} look alike"


def test_the_chart_draws_each_verdict_in_its_colour(tmp_path, mixed):
    from matplotlib.image import imread

    _, chart = write_report(mixed, tmp_path)
    pixels = imread(chart)[..., :3].reshape(-1, 3)
    for colour in VERDICT_COLOURS.values():
        target = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        nearest = min(sum((p - t) ** 2 for p, t in zip(px, target, strict=True)) for px in pixels[::7])
        assert nearest < 0.001, f"no {colour} in the chart"


def test_report_says_the_tolerance_in_words_and_losses_as_fractions(mixed):
    text = render_markdown(mixed)
    assert "max_loss 0.05 at confidence 0.90 (at most 5 points of quality lost, 90% sure)" in text
    assert "| math | 100 | 42.0% | 70.0% | +0.280 | [+0.195, +0.358] |" in text
    assert tolerance_in_words(0.1, 0.9) == (
        "max_loss 0.10 at confidence 0.90 (at most 10 points of quality lost, 90% sure)"
    )
    assert (format_loss(-0.0123), format_interval(0.01, 0.2)) == ("-0.012", "[+0.010, +0.200]")
