"""The human report of a profile: a Markdown page and a PNG chart of loss per category.

``write_report(profile, out_dir)`` writes ``report.md`` and ``loss.png``. The
chart shows each category's loss (f - s) with its interval, the tolerance as a
dashed line, the worst category at the top, and each verdict twice over: a colour
of the Okabe-Ito palette (told apart under every common colour-vision deficiency)
and a marker shape, with the verdict's word beside the interval.
matplotlib (Agg backend) is imported only here, lazily.

Loss, its interval and the tolerance are fractions of a 0-1 score everywhere (``+0.123``);
:func:`format_loss`, :func:`format_interval`, :func:`format_fraction` and
:func:`tolerance_in_words` are the one way every surface (these reports, the command
line's tables) writes them. Points appear only in words.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from sdk.errors import ConfigError, DependencyMissing
from sdk.profile import CategoryStats, Profile

__all__ = [
    "CHART_NAME",
    "REPORT_NAME",
    "VERDICT_COLOURS",
    "VERDICT_MARKERS",
    "format_fraction",
    "format_interval",
    "format_loss",
    "render_markdown",
    "tolerance_in_words",
    "worst_first",
    "write_report",
]

REPORT_NAME = "report.md"
CHART_NAME = "loss.png"
VERDICT_COLOURS = {"safe": "#0072B2", "uncertain": "#E69F00", "unsafe": "#D55E00"}
"""Okabe-Ito blue, orange and vermillion: apart in hue for most eyes and in lightness for the rest."""
VERDICT_MARKERS = {"safe": "o", "uncertain": "D", "unsafe": "X"}
"""The second cue: circle, diamond, cross."""


def worst_first(profile: Profile) -> list[tuple[str, CategoryStats]]:
    """Categories ordered worst first: by loss, then by the interval's upper end, then name."""
    return sorted(profile.categories.items(), key=lambda kv: (-kv[1].loss, -kv[1].loss_high, kv[0]))


def format_loss(value: float | None) -> str:
    """A loss as a signed fraction with three decimals: ``+0.123``."""
    return "n/a" if value is None else f"{value:+.3f}"


def format_interval(low: float | None, high: float | None) -> str:
    """A loss interval: ``[+0.050, +0.200]``."""
    return f"[{format_loss(low)}, {format_loss(high)}]"


def format_fraction(value: float) -> str:
    """A tolerance or level as a fraction: two decimals (``0.10``, ``0.90``), more only when needed."""
    return f"{value:.2f}" if abs(round(value, 2) - value) < 1e-12 else f"{value:g}"


def tolerance_in_words(max_loss: float, confidence: float) -> str:
    """``max_loss 0.10 at confidence 0.90 (at most 10 points of quality lost, 90% sure)``."""
    return (
        f"max_loss {format_fraction(max_loss)} at confidence {format_fraction(confidence)} "
        f"(at most {100 * max_loss:g} points of quality lost, {100 * confidence:g}% sure)"
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


_EXPLAIN = """\
How to read this:

- **Loss** is the quality lost, on average, when the student answers instead of the
  frontier: the mean of frontier score minus student score, each on a 0-1 scale, so
  +0.10 is 10 points out of 100. Negative loss means the student did better.
- The **interval** is the range the true loss lies in with {conf:g}% confidence
  (two-sided; each end alone holds with {one_sided:g}%).
- **Breaks** is the share of items the frontier got right (or better) and the student
  got wrong; **fixes** is the share the student got right and the frontier did not.
  Loss is breaks minus fixes for pass/fail items, so a student can break many items
  and still lose little overall: both sides are shown.
- The **verdict** compares the interval with the tolerance, {tol}: `safe`
  when even the interval's upper end is within it, `unsafe` when even its lower end
  is above it, `uncertain` otherwise (measure more items to decide).
"""


def render_markdown(profile: Profile, chart_name: str | None = CHART_NAME) -> str:
    """The report page as Markdown text."""
    tol = profile.tolerance
    lines = [
        f"# Capability profile: {profile.student.name} vs {profile.frontier.name}",
        "",
        f"Student `{profile.student.model or profile.student.name}`, frontier "
        f"`{profile.frontier.model or profile.frontier.name}`; suite {', '.join(profile.suite.names)} "
        f"({profile.suite.n_items} items); method `{profile.method}`; "
        f"created {profile.created_at:%Y-%m-%d %H:%M} UTC.",
        f"Tolerance: {tolerance_in_words(tol.max_loss, tol.confidence)}.",
        "",
    ]
    if chart_name:
        lines += [f"![Loss per category]({chart_name})", ""]
    lines += [
        "| category | n | student | frontier | loss | interval | breaks | fixes | verdict |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, c in worst_first(profile):
        lines.append(
            f"| {name} | {c.n} | {_pct(c.student_accuracy)} | {_pct(c.frontier_accuracy)} "
            f"| {format_loss(c.loss)} "
            f"| {format_interval(c.loss_low, c.loss_high)} | {_pct(c.breaks)} | {_pct(c.fixes)} "
            f"| **{c.verdict}** |"
        )
    one_sided = 100 * (1 - (1 - tol.confidence) / 2)
    words = f"{format_fraction(tol.max_loss)} ({100 * tol.max_loss:g} points)"
    explain = _EXPLAIN.format(conf=100 * tol.confidence, one_sided=one_sided, tol=words)
    return "\n".join([*lines, "", *_cost_lines(profile), explain])


_COST_FIELDS = ("student_cost", "frontier_cost", "student_latency", "frontier_latency")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"${value:.6f}" if unit == "$" else f"{value:.3f} s"


def _cost_lines(profile: Profile) -> list[str]:
    """A cost and latency table, only when some category recorded them."""
    rows = [(n, c) for n, c in worst_first(profile) if any(getattr(c, f) is not None for f in _COST_FIELDS)]
    if not rows:
        return []
    lines = [
        "Mean cost and latency per call:",
        "",
        "| category | student cost | frontier cost | student latency | frontier latency |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, c in rows:
        lines.append(
            f"| {name} | {_fmt(c.student_cost, '$')} | {_fmt(c.frontier_cost, '$')} "
            f"| {_fmt(c.student_latency, 's')} | {_fmt(c.frontier_latency, 's')} |"
        )
    return [*lines, ""]


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise DependencyMissing("matplotlib", "dev") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_chart(profile: Profile, path: Path) -> Path:
    """Draw the loss chart to ``path`` (PNG)."""
    plt = _pyplot()
    rows = worst_first(profile)
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.45 * len(rows)), dpi=120)
    for y, (_, c) in enumerate(rows):
        colour = VERDICT_COLOURS[c.verdict]
        ax.plot([c.loss_low, c.loss_high], [y, y], color=colour, linewidth=3, solid_capstyle="butt")
        ax.plot(
            [c.loss], [y], VERDICT_MARKERS[c.verdict], color=colour, markersize=9, markeredgecolor="black",
            markeredgewidth=0.8,
        )  # fmt: skip
        ax.annotate(
            c.verdict, (c.loss_high, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8
        )
    tol = profile.tolerance
    ax.axvline(tol.max_loss, color="#333333", linestyle="--", linewidth=1)
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{name} (n={c.n})" for name, c in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # worst at the top
    ax.margins(x=0.12)  # room for the verdict words
    ax.set_xlabel("quality loss (frontier score - student score, 0-1), with interval")
    student = profile.student.model or profile.student.name
    frontier = profile.frontier.model or profile.frontier.name
    pair = textwrap.fill(f"student {student} vs frontier {frontier}", 90)
    promise = f"at most {100 * tol.max_loss:g} points of quality lost, {100 * tol.confidence:g}% sure"
    ax.set_title(f"Loss per category, {100 * tol.confidence:g}% intervals\n{pair}\n{promise}", fontsize=10)
    present = {c.verdict for _, c in rows}
    handles = [
        plt.Line2D(
            [],
            [],
            color=VERDICT_COLOURS[name],
            marker=VERDICT_MARKERS[name],
            markeredgecolor="black",
            markersize=8,
            linewidth=3,
            label=name,
        )  # fmt: skip
        for name in VERDICT_COLOURS
        if name in present
    ]
    tol_label = f"tolerance {format_fraction(tol.max_loss)}"
    handles.append(plt.Line2D([], [], color="#333333", linestyle="--", label=tol_label))
    ax.legend(handles=handles, loc="best", fontsize=8, frameon=True)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(profile: Profile, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``loss.png`` into ``out_dir``; returns both paths."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        chart = write_chart(profile, folder / CHART_NAME)
        report = folder / REPORT_NAME
        report.write_text(render_markdown(profile, CHART_NAME), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write report: {exc.strerror or exc}", location=str(folder)) from exc
    return report, chart
