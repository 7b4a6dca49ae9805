"""The human report of a profile: a Markdown page and a PNG chart of loss per category.

``write_report(profile, out_dir)`` writes ``report.md`` and ``loss.png``. The
chart shows each category's loss (f - s) with its interval, the tolerance as a
dashed line, points coloured by verdict, the worst category at the top.
matplotlib (Agg backend) is imported only here, lazily.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from sdk.errors import ConfigError, DependencyMissing
from sdk.profile import CategoryStats, Profile

__all__ = ["CHART_NAME", "REPORT_NAME", "VERDICT_COLOURS", "render_markdown", "worst_first", "write_report"]

REPORT_NAME = "report.md"
CHART_NAME = "loss.png"
VERDICT_COLOURS = {"safe": "#2e7d32", "uncertain": "#ef8f00", "unsafe": "#c62828"}


def worst_first(profile: Profile) -> list[tuple[str, CategoryStats]]:
    """Categories ordered worst first: by loss, then by the interval's upper end, then name."""
    return sorted(profile.categories.items(), key=lambda kv: (-kv[1].loss, -kv[1].loss_high, kv[0]))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _signed(value: float) -> str:
    return f"{100 * value:+.1f}"


_EXPLAIN = """\
How to read this:

- **Loss** is how many points of quality (on a 0-100 scale) are lost, on average,
  when the student answers instead of the frontier: the mean of frontier score
  minus student score. Negative loss means the student did better.
- The **interval** is the range the true loss lies in with {conf:.0f}% confidence
  (two-sided; each end alone holds with {one_sided:.0f}%).
- **Breaks** is the share of items the frontier got right (or better) and the student
  got wrong; **fixes** is the share the student got right and the frontier did not.
  Loss is breaks minus fixes for pass/fail items, so a student can break many items
  and still lose little overall: both sides are shown.
- The **verdict** compares the interval with the tolerance of {tol} points: `safe`
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
        f"Tolerance: at most {100 * tol.max_loss:.1f} points lost, "
        f"at {100 * tol.confidence:.0f}% confidence.",
        "",
    ]
    if chart_name:
        lines += [f"![Loss per category]({chart_name})", ""]
    lines += [
        "| category | n | student | frontier | loss (points) | interval | breaks | fixes | verdict |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, c in worst_first(profile):
        lines.append(
            f"| {name} | {c.n} | {_pct(c.student_accuracy)} | {_pct(c.frontier_accuracy)} "
            f"| {_signed(c.loss)} "
            f"| [{_signed(c.loss_low)}, {_signed(c.loss_high)}] | {_pct(c.breaks)} | {_pct(c.fixes)} "
            f"| **{c.verdict}** |"
        )
    one_sided = 100 * (1 - (1 - tol.confidence) / 2)
    explain = _EXPLAIN.format(conf=100 * tol.confidence, one_sided=one_sided, tol=f"{100 * tol.max_loss:g}")
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
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(rows)), dpi=120)
    for y, (_, c) in enumerate(rows):
        colour = VERDICT_COLOURS[c.verdict]
        ax.plot(
            [100 * c.loss_low, 100 * c.loss_high], [y, y], color=colour, linewidth=3, solid_capstyle="butt"
        )
        ax.plot([100 * c.loss], [y], "o", color=colour, markersize=7, markeredgecolor="white")
    ax.axvline(100 * profile.tolerance.max_loss, color="#333333", linestyle="--", linewidth=1)
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{name} (n={c.n})" for name, c in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # worst at the top
    ax.set_xlabel("quality loss, points (frontier - student), with interval")
    conf = 100 * profile.tolerance.confidence
    student = profile.student.model or profile.student.name
    frontier = profile.frontier.model or profile.frontier.name
    pair = textwrap.fill(f"student {student} vs frontier {frontier}", 90)
    ax.set_title(f"Loss per category, {conf:.0f}% intervals\n{pair}", fontsize=10)
    present = {c.verdict for _, c in rows}
    handles = [
        plt.Line2D([], [], color=col, marker="o", linewidth=3, label=name)
        for name, col in VERDICT_COLOURS.items()
        if name in present
    ]
    tol_label = f"tolerance ({100 * profile.tolerance.max_loss:g} points)"
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
