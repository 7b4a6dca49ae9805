"""Cascade vs category vs per-prompt routing on the embedded pair, on held-out probe items.

The data set is what ``bitrate profile build --suite tiny`` records on the embedded pair (the
tiny teacher plays the frontier): 360 probe items in 6 categories, each with both scores and
the student's confidence (its answer's token log-probabilities). The bench builds it (or takes
``--profile``), then for each split seed shuffles the items, builds a profile on one half
(``profiles.assemble``) and replays the other half through five routes of one policy with
``bitrate route eval``'s code path (``profiles.replay.replay_route``), calling no model:

- ``category``: the profile's verdicts;
- ``per-prompt``: ``per_prompt: true`` (``sdk.estimate``);
- ``cascade-mean``, ``cascade-min``, ``cascade-comb``: ``cascade: {signal: mean_logprob |
  min_logprob | combined}`` (``sdk.cascade``), calibrated on the profile half's confidences.

Per router: student share, realised loss on the student-routed items with its interval
against ``max_loss``, APGR (RouteLLM's; a cascade's sweep score is its answer score), and for a
cascade how many requests the student answered first (each one a student call) and how many
of those it kept (the rest also cost a frontier call)::

    .venv/bin/python bench/cascade_quality.py [--seeds 0 1 2 3 4] [--max-loss 0.10] [--profile P]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.assemble import ItemOutcome, assemble_profile  # noqa: E402
from profiles.outcomes import OutcomeRow  # noqa: E402
from profiles.replay import replay_report, replay_route  # noqa: E402
from sdk.engine import Engine  # noqa: E402
from sdk.policy import load_policy  # noqa: E402
from sdk.profile import EvidenceItem, Profile, SuiteInfo, Tolerance, load_profile  # noqa: E402

ROUTES = {
    "category": "",
    "per-prompt": "per_prompt: true",
    "cascade-mean": "cascade: {signal: mean_logprob}",
    "cascade-min": "cascade: {signal: min_logprob}",
    "cascade-comb": "cascade: {signal: combined}",
}
MODEL = '{backend: openai, base_url: "http://127.0.0.1:9/v1", model: m}'


def policy(max_loss: float, confidence: float) -> str:
    """One route per router over the split's profile (models never called)."""
    lines = ["version: 1", "models:", f"  frontier: {MODEL}", f"  student: {MODEL}", "routes:"]
    for name, option in ROUTES.items():
        lines += [
            f"  {name}:",
            "    student: student",
            "    frontier: frontier",
            "    profile: profile.json",
            "    profile_models_must_match: false",
            f"    tolerance: {{max_loss: {max_loss}, confidence: {confidence}}}",
            "    tasks: {detect: [hint, rules]}",
        ]
        lines += [f"    {option}"] if option else []
    return "\n".join(lines) + "\n"


def recorded(profile_path: Path | None, work: Path) -> Profile:
    """The embedded pair's tiny-suite profile with confidences (built with the CLI when not given)."""
    if profile_path is not None:
        return load_profile(profile_path)
    out = work / "tiny_profile.json"
    env = {**os.environ, "BITRATE_CACHE_DIR": str(work / "cache")}
    cmd = [sys.executable, "-c", "import bitrate_cli; bitrate_cli.main()", "profile", "build"]
    subprocess.run([*cmd, "--suite", "tiny", "--out", str(out)], check=True, env=env, cwd=ROOT)
    return load_profile(out)


def outcome(item: EvidenceItem) -> ItemOutcome:
    conf = item.confidence
    return ItemOutcome(
        item.id,
        item.category,
        item.prompt,
        item.student,
        item.frontier,
        student_mean_logprob=conf.mean_logprob if conf else None,
        student_min_logprob=conf.min_logprob if conf else None,
    )


def run_split(source: Profile, seed: int, args: argparse.Namespace, work: Path) -> dict[str, dict]:
    items = list(source.evidence or [])
    random.Random(seed).shuffle(items)
    half = len(items) // 2
    fit, held = items[:half], items[half:]
    assemble_profile(
        [outcome(i) for i in fit],
        student=source.student,
        frontier=source.frontier,
        suite=SuiteInfo(names=["tiny-half"], sha256="0" * 64, n_items=len(fit)),
        tolerance=Tolerance(max_loss=args.max_loss, confidence=args.confidence),
        method="import",
    ).save(work / "profile.json")
    (work / "policy.yaml").write_text(policy(args.max_loss, args.confidence))
    rows = [
        OutcomeRow(
            id=i.id,
            category=i.category,
            prompt=i.prompt,
            student=i.student,
            frontier=i.frontier,
            student_mean_logprob=i.confidence.mean_logprob if i.confidence else None,
            student_min_logprob=i.confidence.min_logprob if i.confidence else None,
        )
        for i in held
    ]
    routes = Engine(load_policy(work / "policy.yaml")).routes()
    out = {}
    for name in ROUTES:
        report = replay_report(
            replay_route(rows, routes[name]), max_loss=args.max_loss, confidence=args.confidence
        )
        out[name] = {
            "share": report.student_share,
            "loss": report.realised_loss,
            "high": report.realised_loss_high,
            "within": report.within_tolerance,
            "apgr": report.apgr,
            "quality": report.quality,
            "cascaded": report.cascaded,
            "kept": report.cascade_kept,
            "n": report.n,
        }
    return out


def fmt(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--max-loss", type=float, default=0.10)
    parser.add_argument("--confidence", type=float, default=0.90)
    parser.add_argument("--profile", type=Path, help="A tiny-suite profile with confidences.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = recorded(args.profile, work)
        runs = {seed: run_split(source, seed, args, work) for seed in args.seeds}
    head = f"{'seed':>4} {'router':<13} {'share':>6} {'loss':>7} {'high':>7} {'within':>6} {'APGR':>6}"
    print(head + f" {'quality':>7} {'first':>5} {'kept':>4}")
    for seed, results in runs.items():
        for name, r in results.items():
            print(
                f"{seed:>4} {name:<13} {r['share']:>6.1%} {fmt(r['loss']):>7} {fmt(r['high']):>7} "
                f"{str(r['within']):>6} {fmt(r['apgr']):>6} {r['quality']:>7.3f} "
                f"{r['cascaded']:>5} {r['kept']:>4}"
            )
    print(f"\nmean over {len(runs)} splits (max_loss {args.max_loss:g}, confidence {args.confidence:g}):")
    print(f"{'router':<13} {'share':>6} {'loss':>7} {'APGR':>6} {'within':>7} {'first':>6} {'kept':>6}")
    for name in ROUTES:
        rs = [runs[s][name] for s in runs]
        losses = [r["loss"] for r in rs if r["loss"] is not None]
        print(
            f"{name:<13} {statistics.mean(r['share'] for r in rs):>6.1%} "
            f"{fmt(statistics.mean(losses) if losses else None):>7} "
            f"{statistics.mean(r['apgr'] or 0.0 for r in rs):>6.3f} "
            f"{sum(r['within'] for r in rs):>4}/{len(rs):<2} "
            f"{statistics.mean(r['cascaded'] for r in rs):>6.1f} "
            f"{statistics.mean(r['kept'] for r in rs):>6.1f}"
        )


if __name__ == "__main__":
    main()
