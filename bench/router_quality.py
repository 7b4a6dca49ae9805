"""Router quality on recorded IFEval outcomes: random vs category vs per-prompt routing.

For each (frontier, student) pair, the IFEval prompts are split in two by a seeded
shuffle of their keys (a prompt's instructions stay together). A profile is built on
one half (``profiles.ifeval_outcomes`` + ``profiles.assemble``); the other half is
replayed through a policy's routes with ``bitrate route eval``'s code path
(``profiles.replay``), calling no model:

- ``random``: a coin per item, scores uniform (the RouteLLM baseline, APGR ~0.5);
- ``category``: the profile's verdicts (sweep score: the category's loss upper bound);
- ``per-prompt``: ``sdk.estimate`` over the profile half's evidence (its default
  TF-IDF character n-gram space), neighbour count and shrinkage tuned by
  leave-prompt-out APGR on the profile half only;
- ``pp-minilm``: the same estimator over all-MiniLM-L6-v2 embeddings, for comparison.

APGR noise is a cluster bootstrap over the eval half's prompts (``--boot`` resamples);
``- category`` is the paired difference to category routing on the same resamples.

    .venv/bin/python bench/router_quality.py [--max-loss 0.05] [--boot 1000] [--students ID ...]

``--students`` takes student ids from ``profiles.ifeval_outcomes.list_models`` (default:
the 0.5B and 7B Qwen2.5 pair against gpt-4o).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.assemble import ItemOutcome, assemble_profile  # noqa: E402
from profiles.ifeval_outcomes import ifeval_outcomes  # noqa: E402
from profiles.outcomes import OutcomeRow  # noqa: E402
from profiles.replay import RoutedItem, replay, replay_report, replay_route, route_with  # noqa: E402
from profiles.router_metrics import apgr, sweep  # noqa: E402
from sdk.decision import Decision  # noqa: E402
from sdk.embed import minilm_available  # noqa: E402
from sdk.engine import Engine  # noqa: E402
from sdk.estimate import EstimatorSettings, PromptEstimator, make_embedder  # noqa: E402
from sdk.policy import load_policy  # noqa: E402
from sdk.profile import ModelIdentity, Profile, SuiteInfo, Tolerance, load_profile  # noqa: E402

FRONTIER = "gpt-4o-2024-08-06"
STUDENTS = ["Qwen__Qwen2.5-0.5B-Instruct-GPTQ-Int4", "Qwen__Qwen2.5-7B-Instruct-GPTQ-Int4"]
GRID = [EstimatorSettings(k=k, k0=k0) for k in (10, 20, 40) for k0 in (2.0, 4.0, 8.0, 16.0)]

POLICY = """\
version: 1
models:
  frontier: {{backend: openai, base_url: "http://127.0.0.1:9/v1", model: frontier}}
  student: {{backend: openai, base_url: "http://127.0.0.1:9/v1", model: student}}
routes:
  category:
    student: student
    frontier: frontier
    profile: profile.json
    tolerance: {{max_loss: {max_loss}, confidence: {confidence}}}
    tasks: {{detect: [hint]}}
  per_prompt:
    student: student
    frontier: frontier
    profile: profile.json
    per_prompt: true
    tolerance: {{max_loss: {max_loss}, confidence: {confidence}}}
    tasks: {{detect: [hint]}}
  category_detected:
    student: student
    frontier: frontier
    profile: profile.json
    tolerance: {{max_loss: {max_loss}, confidence: {confidence}}}
    tasks: {{detect: [{detectors}]}}
  per_prompt_detected:
    student: student
    frontier: frontier
    profile: profile.json
    per_prompt: true
    tolerance: {{max_loss: {max_loss}, confidence: {confidence}}}
    tasks: {{detect: [{detectors}]}}
"""


def split(outcomes: list[ItemOutcome], seed: int) -> tuple[list[ItemOutcome], list[ItemOutcome]]:
    """Profile half and eval half, by prompt key."""
    keys = sorted({o.id.split("/")[0] for o in outcomes})
    random.Random(seed).shuffle(keys)
    first = set(keys[: len(keys) // 2])
    return [o for o in outcomes if o.id.split("/")[0] in first], [
        o for o in outcomes if o.id.split("/")[0] not in first
    ]


def short_name(student: str) -> str:
    """``Qwen__Qwen2.5-7B-Instruct-GPTQ-Int4`` -> ``Qwen2.5-7B``; ``...Meta-Llama-3.1-8B-Instruct-AWQ-INT4``
    -> ``Llama-3.1-8B``."""
    name = student.split("__")[-1].removeprefix("Meta-")
    return name.replace("-Instruct-GPTQ-Int4", "").replace("-Instruct-AWQ-INT4", "")


def build_profile(items: list[ItemOutcome], max_loss: float, confidence: float, student: str) -> Profile:
    return assemble_profile(
        items,
        student=ModelIdentity(name="student", model=student, backend="import"),
        frontier=ModelIdentity(name="frontier", model=FRONTIER, backend="import"),
        suite=SuiteInfo(names=["ifeval"], sha256="0" * 64, n_items=len(items)),
        tolerance=Tolerance(max_loss=max_loss, confidence=confidence),
        method="import",
    )


def tune(estimator: PromptEstimator, profile: Profile) -> tuple[EstimatorSettings, float]:
    """The grid setting with the best leave-prompt-out APGR on the profile half."""
    s = np.array([i.student for i in profile.evidence])
    f = np.array([i.frontier for i in profile.evidence])
    best = (GRID[0], -1.0)
    for settings in GRID:
        estimator.settings = settings
        value = apgr(sweep(estimator.loo_estimates(), s, f)) or 0.0
        if value > best[1]:
            best = (settings, value)
    return best


def random_items(rows: list[OutcomeRow], seed: int) -> list[RoutedItem]:
    rng = random.Random(seed)

    def coin(_row: OutcomeRow) -> tuple[Decision, float]:
        side = "student" if rng.random() < 0.5 else "frontier"
        return Decision(route="random", target=side, side=side, rule="random"), rng.random()

    return replay(rows, coin)


def cluster_boot(items: list[RoutedItem], n_boot: int, seed: int) -> np.ndarray:
    """APGR on ``n_boot`` resamples of the eval prompts (same resamples for every router: same seed)."""
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.id.split("/")[0], []).append(i)
    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    sc = np.array([i.score for i in items])
    s = np.array([i.student for i in items])
    f = np.array([i.frontier for i in items])
    out = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([groups[keys[j]] for j in rng.integers(0, len(keys), len(keys))])
        out[b] = apgr(sweep(sc[idx], s[idx], f[idx])) or np.nan
    return out


def run_pair(student: str, args: argparse.Namespace, work: Path) -> list[dict]:
    outcomes = ifeval_outcomes(args.data, frontier=FRONTIER, student=student, mode=args.mode)
    prof_items, eval_items = split(outcomes, args.seed)
    profile = build_profile(prof_items, args.max_loss, args.confidence, student)
    profile.save(work / "profile.json")
    (work / "policy.yaml").write_text(policy_text(args))
    rows = [
        OutcomeRow(id=o.id, category=o.category, prompt=o.prompt, student=o.student, frontier=o.frontier)
        for o in eval_items
    ]
    routes = Engine(load_policy(work / "policy.yaml")).routes()
    routed = {
        "random": random_items(rows, args.seed),
        "category": replay(rows, route_with(routes["category"])),
    }
    tuned = {}
    prompts = [i.prompt for i in profile.evidence]
    for label, kind in (("per-prompt", "lexical"), ("pp-minilm", "minilm")):
        if kind == "minilm" and not minilm_available():
            continue
        probe = PromptEstimator.from_profile(
            profile, make_embedder(kind, prompts), max_loss=args.max_loss, confidence=args.confidence
        )
        settings, loo_apgr = tune(probe, profile)
        estimator = PromptEstimator(
            probe.embedder,
            probe.index,
            probe.student,
            probe.frontier,
            probe.category_loss,
            max_loss=args.max_loss,
            confidence=args.confidence,
            settings=settings,
            safe_categories=probe.safe_categories,
        )
        runtime = dataclasses.replace(routes["per_prompt"], estimator=estimator)
        routed[label] = replay(rows, route_with(runtime))
        tuned[label] = f"k={settings.k} k0={settings.k0:g} (LOO APGR {loo_apgr:.3f})"
    boots = {name: cluster_boot(items, args.boot, args.seed + 1) for name, items in routed.items()}
    results = []
    for name, items in routed.items():
        report = replay_report(items, max_loss=args.max_loss, confidence=args.confidence)
        boot, diff = boots[name], boots[name] - boots["category"]
        results.append(
            {
                "pair": short_name(student),
                "router": name,
                "n": report.n,
                "apgr": report.apgr,
                "apgr_se": float(np.nanstd(boot)),
                "minus_cat": float(np.nanmean(diff)),
                "minus_cat_se": float(np.nanstd(diff)),
                "student_share": report.student_share,
                "quality": report.quality,
                "student_quality": report.student_quality,
                "frontier_quality": report.frontier_quality,
                "realised_loss": report.realised_loss,
                "realised_loss_high": report.realised_loss_high,
                "within": report.within_tolerance,
                "cpt50": report.cpt50,
                "cpt80": report.cpt80,
                "settings": tuned.get(name, ""),
            }
        )
    return results


def policy_text(args: argparse.Namespace) -> str:
    return POLICY.format(max_loss=args.max_loss, confidence=args.confidence, detectors=args.detectors)


def run_detected(student: str, seed: int, args: argparse.Namespace, work: Path) -> list[dict]:
    """The eval half replayed WITHOUT its categories (the route's detectors name each row's
    task), through category and per-prompt routing, with verdicts read two ways: ``labelled``
    (the profile's verdicts applied to the detected task: what routing did before) and
    ``detected`` (verdicts and thresholds certified on what the detectors assign to the
    profile's evidence, ``sdk.detect.offline``: what it does now)."""
    outcomes = ifeval_outcomes(args.data, frontier=FRONTIER, student=student, mode=args.mode)
    prof_items, eval_items = split(outcomes, seed)
    build_profile(prof_items, args.max_loss, args.confidence, student).save(work / "profile.json")
    (work / "policy.yaml").write_text(policy_text(args))
    labels = {o.id: o.category for o in eval_items}
    rows = [OutcomeRow(id=o.id, prompt=o.prompt, student=o.student, frontier=o.frontier) for o in eval_items]
    out = []
    for way in ("labelled", "detected"):
        routes = Engine(load_policy(work / "policy.yaml")).routes()
        for router, name in (("category", "category_detected"), ("per-prompt", "per_prompt_detected")):
            runtime = routes[name]
            if way == "labelled":  # the profile's own verdicts and thresholds, whatever detection does
                runtime = dataclasses.replace(runtime, detection=None)
                if runtime.estimator is not None:
                    profile = load_profile(work / "profile.json")
                    prompts = [i.prompt for i in profile.evidence or []]
                    plain = PromptEstimator.from_profile(
                        profile,
                        make_embedder("lexical", prompts),
                        max_loss=args.max_loss,
                        confidence=args.confidence,
                    )
                    runtime = dataclasses.replace(runtime, estimator=plain)
            items = [dataclasses.replace(i, label=labels[i.id]) for i in replay_route(rows, runtime)]
            report = replay_report(items, max_loss=args.max_loss, confidence=args.confidence)
            out.append(
                {
                    "seed": seed,
                    "pair": short_name(student),
                    "router": router,
                    "verdicts": way,
                    "share": report.student_share,
                    "loss": report.realised_loss,
                    "low": report.realised_loss_low,
                    "high": report.realised_loss_high,
                    "within": report.within_tolerance,
                    "certified": report.realised_loss_high is None
                    or report.realised_loss_high <= args.max_loss,
                    "accuracy": report.detection_accuracy,
                    "undetected": report.undetected_share,
                }
            )
    return out


def print_detected(args: argparse.Namespace) -> None:
    """The promise with the task detected, not given: one line per (split, pair, router, verdicts)."""
    print(f"\ndetected tasks ({args.detectors}), max_loss {args.max_loss:g}:")
    print(
        f"{'seed':>4} {'pair':<14} {'router':<10} {'verdicts':<9} {'acc':>6} {'undet':>6} {'share':>6} "
        f"{'loss':>7} {'interval':>17} {'within':>6} {'cert':>5}"
    )
    tally: dict[tuple[str, str], list[bool]] = {}
    for seed in [args.seed, *args.more_seeds]:
        for student in args.students:
            with tempfile.TemporaryDirectory() as tmp:
                for r in run_detected(student, seed, args, Path(tmp)):
                    interval = f"[{fmt(r['low'])}, {fmt(r['high'])}]"
                    print(
                        f"{seed:>4} {r['pair']:<14} {r['router']:<10} {r['verdicts']:<9} "
                        f"{fmt(r['accuracy'], '.1%'):>6} {fmt(r['undetected'], '.1%'):>6} {r['share']:>6.1%} "
                        f"{fmt(r['loss']):>7} {interval:>17} {str(r['within']):>6} {str(r['certified']):>5}"
                    )
                    tally.setdefault((r["router"], r["verdicts"]), []).append(r["within"])
    for (router, way), oks in tally.items():
        print(f"{router} with {way} verdicts: within the promise on {sum(oks)} of {len(oks)} runs")


def fmt(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def print_table(results: list[dict], max_loss: float) -> None:
    head = (
        f"{'pair':<14} {'router':<10} {'n':>4} {'APGR':>6} {'+-se':>6} {'z(>0.5)':>7} {'- category':>13} "
        f"{'share':>6} {'quality':>7} {'S/F':>11} {'loss':>6} {'high':>6} {'CPT50':>6} {'CPT80':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        z = (r["apgr"] - 0.5) / r["apgr_se"] if r["apgr_se"] > 0 else float("nan")
        vs = f"{r['minus_cat']:+.3f}+-{r['minus_cat_se']:.3f}" if r["router"] not in ("category",) else ""
        print(
            f"{r['pair']:<14} {r['router']:<10} {r['n']:>4} {fmt(r['apgr']):>6} {r['apgr_se']:>6.3f} "
            f"{z:>7.1f} {vs:>13} {r['student_share']:>6.1%} {r['quality']:>7.3f} "
            f"{r['student_quality']:.3f}/{r['frontier_quality']:.3f} "
            f"{fmt(r['realised_loss']):>6} {fmt(r['realised_loss_high']):>6} "
            f"{fmt(r['cpt50'], '.1%'):>6} {fmt(r['cpt80'], '.1%'):>6}"
        )
    for r in results:
        if r["settings"]:
            print(f"{r['pair']} {r['router']}: tuned on the profile half: {r['settings']}")
    print(f"tolerance: max_loss {max_loss:g}; z(>0.5) = (APGR - 0.5) / bootstrap se")


def verdict(results: list[dict]) -> dict[str, object]:
    """The acceptance checks per pair: beats random by more than 1.645 bootstrap se (one-sided 95%),
    per-prompt not worse than category by more than 1.645 se of the paired difference."""
    out: dict[str, object] = {}
    for pair in dict.fromkeys(r["pair"] for r in results):
        rs = {r["router"]: r for r in results if r["pair"] == pair}
        cat, pp = rs["category"], rs["per-prompt"]
        tag = pair.replace(".", "").lower()
        out[f"{tag}_cat_apgr"] = round(cat["apgr"], 4)
        out[f"{tag}_pp_apgr"] = round(pp["apgr"], 4)
        out[f"{tag}_cat_beats_random"] = cat["apgr"] - 0.5 > 1.645 * cat["apgr_se"]
        out[f"{tag}_pp_beats_random"] = pp["apgr"] - 0.5 > 1.645 * pp["apgr_se"]
        out[f"{tag}_pp_matches_cat"] = pp["minus_cat"] > -1.645 * pp["minus_cat_se"]
        out[f"{tag}_within_tolerance"] = cat["within"] and pp["within"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ifeval")
    parser.add_argument("--students", nargs="+", default=STUDENTS)
    parser.add_argument("--mode", default="strict", choices=["strict", "loose"])
    parser.add_argument("--max-loss", type=float, default=0.05)
    parser.add_argument("--confidence", type=float, default=0.90)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the profile/eval split.")
    parser.add_argument(
        "--more-seeds", type=int, nargs="*", default=[], help="Also summarise these splits (no bootstrap)."
    )
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    parser.add_argument(
        "--detect",
        action="store_true",
        help="Only replay the eval halves without categories (detected tasks), every seed.",
    )
    parser.add_argument("--detectors", default="lexical", help="tasks.detect of the detected routes.")
    args = parser.parse_args()
    if not (args.data / "ifeval_en_outcomes.jsonl.gz").is_file():
        sys.exit(f"no IFEval outcomes under {args.data}")
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    if args.detect:
        print_detected(args)
        return
    results = []
    for student in args.students:
        with tempfile.TemporaryDirectory() as tmp:
            results.extend(run_pair(student, args, Path(tmp)))
    print_table(results, args.max_loss)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.more_seeds:
        print_seeds(args)
    print(" ".join(f"{k}={v}" for k, v in verdict(results).items()))


def print_seeds(args: argparse.Namespace) -> None:
    """One line per (split, pair): the split-to-split spread of the figures above."""
    print(
        f"\n{'seed':>4} {'pair':<14} {'cat APGR':>8} {'pp APGR':>8} {'cat share':>9} {'cat loss':>8} "
        f"{'pp share':>8} {'pp loss':>8} {'within':>6}"
    )
    for seed in [args.seed, *args.more_seeds]:
        for student in args.students:
            one = argparse.Namespace(**{**vars(args), "seed": seed, "boot": 1})
            with tempfile.TemporaryDirectory() as tmp:
                rs = {r["router"]: r for r in run_pair(student, one, Path(tmp))}
            cat, pp = rs["category"], rs["per-prompt"]
            print(
                f"{seed:>4} {cat['pair']:<14} {cat['apgr']:>8.3f} {pp['apgr']:>8.3f} "
                f"{cat['student_share']:>9.1%} {fmt(cat['realised_loss']):>8} "
                f"{pp['student_share']:>8.1%} {fmt(pp['realised_loss']):>8} "
                f"{str(cat['within'] and pp['within']):>6}"
            )


if __name__ == "__main__":
    main()
