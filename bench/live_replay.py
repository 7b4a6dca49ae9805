"""The live monitor's acceptance experiments (issue 14), on recorded IFEval outcomes and synthetic streams.

Streams are built from ``../shared/data/ifeval`` (``profiles.ifeval_outcomes``: one row per
prompt and instruction, category = the instruction group) and replayed with the code path of
``bitrate profile live --replay`` (``profiles.live_replay``), at the route tolerance
``--max-loss`` / ``--confidence``:

- **stationary**: frontier ``--frontier``, student ``--student`` (truly within the tolerance on
  the category: its recorded loss <= max_loss), ``2 x --passes`` passes over the category's
  items, each pass in a fresh shuffled order. ``--orders`` orders (seeds 0..). A demotion here
  is a false one.
- **switch**: the same length, the first half with ``--student``, the second half with
  ``--worse`` on the same questions (reshuffled): the student is swapped mid-way and the loss
  jumps by about 0.3. Reported: orders demoted after the switch (and before it: false), and
  the delay in rows after the switch.
- **synthetic**: stationary streams whose loss is exactly ``max_loss`` (0/1 pairs with and
  without fixes, and continuous scores), ``--runs`` runs of ``--rows`` rows: the share of
  runs ever demoted, against the bound ``(1 - confidence) / 2`` (the promise is ``1 - confidence``).

Prints a table per experiment and a final ``key=value`` line; ``--plot`` saves one switch run's
interval over time (docs/live_replay.png), ``--example DIR`` writes that run as files for the
command line (``DIR/stream.jsonl``, ``DIR/policy.yaml``, ``DIR/profile.json``)::

    .venv/bin/python bench/live_replay.py --plot docs/live_replay.png --example /tmp/live
    .venv/bin/bitrate profile live --policy /tmp/live/policy.yaml --replay /tmp/live/stream.jsonl --json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.assemble import ItemOutcome, assemble_profile  # noqa: E402
from profiles.ifeval_outcomes import ifeval_outcomes  # noqa: E402
from profiles.live_replay import replay_live  # noqa: E402
from profiles.outcomes import OutcomeRow  # noqa: E402
from sdk.live import LiveMonitor, MonitorSettings  # noqa: E402
from sdk.profile import ModelIdentity, SuiteInfo, Tolerance  # noqa: E402
from sdk.stats import wilson_interval  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "ifeval"
FRONTIER = "gpt-4o-2024-08-06"
STUDENT = "Qwen__Qwen2.5-32B-Instruct-GPTQ-Int4"
WORSE = "Qwen__Qwen2.5-0.5B-Instruct-GPTQ-Int4"
POLICY = """\
version: 1
models:
  frontier: {{backend: openai, base_url: "http://127.0.0.1:9/v1", model: {frontier}}}
  student: {{backend: openai, base_url: "http://127.0.0.1:9/v1", model: {student}}}
routes:
  auto:
    student: student
    frontier: frontier
    profile: profile.json
    tolerance: {{max_loss: {max_loss}, confidence: {confidence}}}
    tasks: {{detect: [hint]}}
"""


@dataclass
class Category:
    """One category's items answered by the student and by the worse student (same questions)."""

    name: str
    good: list[OutcomeRow]
    bad: list[OutcomeRow]

    @property
    def loss_good(self) -> float:
        return statistics.fmean(r.frontier - r.student for r in self.good)

    @property
    def loss_bad(self) -> float:
        return statistics.fmean(r.frontier - r.student for r in self.bad)


def _rows(outcomes: Sequence[ItemOutcome], tag: str) -> dict[str, list[OutcomeRow]]:
    by_category: dict[str, list[OutcomeRow]] = defaultdict(list)
    for o in outcomes:
        row = OutcomeRow(
            id=f"{o.id}@{tag}", category=o.category, prompt=o.prompt, student=o.student, frontier=o.frontier
        )
        by_category[o.category].append(row)
    return by_category


def load_categories(frontier: str, student: str, worse: str) -> dict[str, Category]:
    good = _rows(ifeval_outcomes(DATA, frontier=frontier, student=student), "student")
    bad = _rows(ifeval_outcomes(DATA, frontier=frontier, student=worse), "worse")
    return {name: Category(name, good[name], bad[name]) for name in sorted(good)}


def passes(items: Sequence[OutcomeRow], count: int, rng: random.Random) -> list[OutcomeRow]:
    """``count`` passes over ``items``, each in a fresh shuffled order."""
    stream: list[OutcomeRow] = []
    for _ in range(count):
        order = list(items)
        rng.shuffle(order)
        stream += order
    return stream


def settings(args: argparse.Namespace) -> MonitorSettings:
    return MonitorSettings(args.max_loss, args.confidence)


@dataclass
class CategoryResult:
    name: str
    n_items: int
    loss_good: float
    loss_bad: float
    rows: int
    stationary_demoted: int
    stationary_safe: int
    switch_early: int
    switch_detected: int
    delays: list[int]


def run_category(cat: Category, args: argparse.Namespace) -> CategoryResult:
    half = args.passes * len(cat.good)
    stationary_demoted = stationary_safe = early = 0
    delays: list[int] = []
    for seed in range(args.orders):
        rng = random.Random(seed)
        still = replay_live(passes(cat.good, 2 * args.passes, rng), settings(args))
        stationary_demoted += still.first_change_to("unsafe", cat.name) is not None
        stationary_safe += still.snapshots()[cat.name].verdict == "safe"
        switch = replay_live(switch_stream(cat, args.passes, rng), settings(args))
        demoted_at = switch.first_change_to("unsafe", cat.name)
        if demoted_at is not None and demoted_at < half:
            early += 1
        elif demoted_at is not None:
            delays.append(demoted_at - half + 1)
    return CategoryResult(
        cat.name, len(cat.good), cat.loss_good, cat.loss_bad, 2 * half,
        stationary_demoted, stationary_safe, early, len(delays), delays,
    )  # fmt: skip


def switch_stream(cat: Category, count: int, rng: random.Random) -> list[OutcomeRow]:
    return passes(cat.good, count, rng) + passes(cat.bad, count, rng)


def _pct(values: Sequence[int], q: float) -> str:
    return f"{np.percentile(values, q):.0f}" if values else "-"


def print_categories(results: Sequence[CategoryResult], args: argparse.Namespace) -> None:
    print(
        f"IFEval, frontier {args.frontier}, student {args.student} -> {args.worse} at the switch; "
        f"max_loss {args.max_loss}, confidence {args.confidence}, {args.orders} orders, "
        f"2 x {args.passes} passes per stream"
    )
    header = (
        f"{'category':<20} {'items':>5} {'loss':>6} {'after':>6} {'rows':>5} | {'stationary':>10} "
        f"{'safe':>5} | {'early':>5} {'detected':>8} {'median':>6} {'p90':>4} {'max':>4}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<20} {r.n_items:>5} {r.loss_good:>+6.3f} {r.loss_bad:>+6.3f} {r.rows:>5} | "
            f"{args.orders - r.stationary_demoted:>4}/{args.orders:<2} ok {r.stationary_safe:>5} | "
            f"{r.switch_early:>5} {r.switch_detected:>5}/{args.orders:<2} {_pct(r.delays, 50):>6} "
            f"{_pct(r.delays, 90):>4} {_pct(r.delays, 100):>4}"
        )
    print(
        "loss: the student's recorded loss on the category; after: the worse student's. stationary: "
        "orders never demoted; safe: orders ending 'safe'. early: switch orders demoted before the "
        "switch; detected: demoted after it; median/p90/max: rows after the switch until the demotion."
    )


# ---------------------------------------------------------------------------------------- synthetic

Pairs = Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray]]


def _zero_one(fixes: float) -> Pairs:
    def draw(rng: np.random.Generator, n: int, loss: float) -> tuple[np.ndarray, np.ndarray]:
        u = rng.random(n)
        breaks = u < loss + fixes
        fixed = (u >= loss + fixes) & (u < loss + 2 * fixes)
        both = rng.random(n) < 0.7
        student = np.where(breaks, 0.0, np.where(fixed, 1.0, both.astype(float)))
        frontier = np.where(breaks, 1.0, np.where(fixed, 0.0, both.astype(float)))
        return student, frontier

    return draw


def _continuous(rng: np.random.Generator, n: int, loss: float) -> tuple[np.ndarray, np.ndarray]:
    student = rng.uniform(0.3, 0.7, n)
    return student, student + loss + rng.uniform(-0.25, 0.25, n)


SYNTHETIC: dict[str, Pairs] = {
    "0/1, breaks only": _zero_one(0.0),
    "0/1, 10% fixes": _zero_one(0.10),
    "continuous": _continuous,
}


def false_alarms(draw: Pairs, args: argparse.Namespace, seed: int) -> int:
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(args.runs):
        student, frontier = draw(rng, args.rows, args.max_loss)
        monitor = LiveMonitor(settings(args))
        for s, f in zip(student.tolist(), frontier.tolist(), strict=True):
            if monitor.observe(s, f) == "unsafe":
                count += 1
                break
    return count


def print_synthetic(counts: dict[str, int], args: argparse.Namespace) -> float:
    alpha = (1 - args.confidence) / 2
    print(
        f"\nSynthetic stationary streams with loss exactly max_loss = {args.max_loss}: "
        f"{args.runs} runs x {args.rows} rows each"
    )
    print(f"{'stream':<18} {'demoted':>8} {'rate':>6} {'95% upper':>9}   bound (1-c)/2 = {alpha:g}")
    worst = 0.0
    for name, count in counts.items():
        upper = wilson_interval(count, args.runs, 0.90)[1]  # two-sided 0.90: a one-sided 95% upper bound
        worst = max(worst, count / args.runs)
        print(f"{name:<18} {count:>8} {count / args.runs:>6.3f} {upper:>9.3f}")
    return worst


def cost_per_row(args: argparse.Namespace, rows: int = 20000) -> float:
    rng = np.random.default_rng(0)
    student, frontier = _zero_one(0.05)(rng, rows, args.max_loss)
    monitor = LiveMonitor(settings(args))
    pairs = list(zip(student.tolist(), frontier.tolist(), strict=True))
    start = time.process_time()  # CPU time: other processes on a shared machine do not count
    for s, f in pairs:
        monitor.observe(s, f)
    return (time.process_time() - start) / rows * 1e6


# ---------------------------------------------------------------------------------------- outputs


def trace(cat: Category, args: argparse.Namespace) -> tuple[list[OutcomeRow], list[tuple[float, ...]]]:
    """One switch order (seed 0), with the figures after every row."""
    stream = switch_stream(cat, args.passes, random.Random(0))
    monitor = LiveMonitor(settings(args), clock=lambda: 0.0)
    points = []
    for row in stream:
        monitor.observe(row.student, row.frontier)
        s = monitor.snapshot()
        points.append((s.loss_low, s.loss_high, s.loss or 0.0, float(s.verdict == "unsafe")))
    return stream, points


def plot(cat: Category, points: Sequence[tuple[float, ...]], args: argparse.Namespace, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low, high, mean, unsafe = (np.array(column) for column in zip(*points, strict=True))
    x = np.arange(1, len(points) + 1)
    switch = args.passes * len(cat.good)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    ax.fill_between(
        x, low, high, color="tab:blue", alpha=0.25, step="post", label="live interval [low, high]"
    )
    ax.plot(x, mean, color="tab:blue", lw=1, label="mean loss since start")
    ax.axhline(args.max_loss, color="tab:red", ls="--", lw=1, label=f"max_loss {args.max_loss:g}")
    ax.axvline(switch, color="black", ls=":", lw=1, label="student swapped")
    for y, name in ((cat.loss_good, "32B"), (cat.loss_bad, "0.5B")):
        ax.axhline(y, color="gray", lw=0.6)
        ax.annotate(f"recorded loss, {name}: {y:+.2f}", (x[-1], y), ha="right", va="bottom", fontsize=8)
    if unsafe.any():
        at = int(np.argmax(unsafe))
        ax.axvline(at + 1, color="tab:red", lw=1.2, label=f"demoted (row {at}, {at + 1 - switch} after)")
    ax.set(
        xlabel="row",
        ylabel="loss = frontier - student",
        ylim=(-0.3, 0.8),
        title=f"IFEval {cat.name}: anytime-valid loss interval at confidence {args.confidence:g}",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    print(f"wrote {out}")


def write_example(cat: Category, stream: Sequence[OutcomeRow], args: argparse.Namespace, out: Path) -> None:
    """The switch run as files: the stream, a profile measured on the student's rows, a policy."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row.model_dump(exclude_none=True)) for row in stream]
    (out / "stream.jsonl").write_text("\n".join(lines) + "\n")
    evidence = [r.to_outcome() for r in cat.good]
    assemble_profile(
        evidence,
        student=ModelIdentity(name="student", model=args.student),
        frontier=ModelIdentity(name="frontier", model=args.frontier),
        suite=SuiteInfo(names=["ifeval"], sha256="0" * 64, n_items=len(evidence)),
        tolerance=Tolerance(max_loss=args.max_loss, confidence=args.confidence),
        method="import",
    ).save(out / "profile.json")
    (out / "policy.yaml").write_text(
        POLICY.format(
            frontier=args.frontier, student=args.student, max_loss=args.max_loss, confidence=args.confidence
        )
    )
    print(f"wrote {out}/stream.jsonl, policy.yaml, profile.json")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frontier", default=FRONTIER)
    parser.add_argument("--student", default=STUDENT)
    parser.add_argument("--worse", default=WORSE, help="the student after the switch")
    parser.add_argument("--category", default="length_constraints", help="the one plotted and summarised")
    parser.add_argument("--max-loss", type=float, default=0.05)
    parser.add_argument("--confidence", type=float, default=0.90)
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--passes", type=int, default=3, help="passes over the items in each half")
    parser.add_argument("--runs", type=int, default=300, help="synthetic runs per stream kind")
    parser.add_argument("--rows", type=int, default=2000, help="rows per synthetic run")
    parser.add_argument("--plot", type=Path, help="save one switch run's interval over time (PNG)")
    parser.add_argument("--example", type=Path, help="write that run as stream, profile and policy files")
    args = parser.parse_args()

    if not (DATA / "ifeval_en_outcomes.jsonl.gz").is_file():
        print(f"skipped: {DATA} not found (the public IFEval outcomes live next to the repository)")
        return
    categories = load_categories(args.frontier, args.student, args.worse)
    eligible = [c for c in categories.values() if c.loss_good <= args.max_loss]
    results = [run_category(c, args) for c in eligible]
    print_categories(results, args)
    counts = {name: false_alarms(draw, args, seed) for seed, (name, draw) in enumerate(SYNTHETIC.items())}
    worst = print_synthetic(counts, args)
    us = cost_per_row(args)
    print(f"\ncost: {us:.1f} us of CPU per observation (grid {MonitorSettings(0, 0.5).grid_points} points)")

    cat = categories[args.category]
    stream, points = trace(cat, args)
    if args.plot:
        plot(cat, points, args, args.plot)
    if args.example:
        write_example(cat, stream, args, args.example)

    main_result = next(r for r in results if r.name == args.category)
    delays = [d for r in results for d in r.delays]
    total = args.orders * len(results)
    print(
        f"live_replay category={args.category} "
        f"stationary_ok={args.orders - main_result.stationary_demoted}/{args.orders} "
        f"switch_detected={main_result.switch_detected}/{args.orders} "
        f"median_delay={statistics.median(main_result.delays) if main_result.delays else math.nan:g} "
        f"all_stationary_ok={total - sum(r.stationary_demoted for r in results)}/{total} "
        f"all_detected={sum(r.switch_detected for r in results)}/{total} "
        f"all_median_delay={statistics.median(delays) if delays else math.nan:g} "
        f"synthetic_false_alarm_max={worst:.3f} bound={(1 - args.confidence) / 2:g} us_per_obs={us:.1f}"
    )


if __name__ == "__main__":
    main()
