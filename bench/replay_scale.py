"""``bitrate route eval`` at production scale: unlabelled rows replayed against a large profile.

Builds a data set from the public prompts in ``../shared/data`` (BIG-Bench Hard, GSM8K,
IFEval, MT-Bench: ~8,450 prompts in 30 categories), each prompt in up to three wordings
(a plain one and two with a short preamble), so the profile's evidence and the replayed
rows are distinct texts, as live traffic is. Scores are synthetic and seeded: per category
a frontier and a student accuracy, per prompt a difficulty shared by its wordings. It writes

- ``profile.json``: a profile of ``--profile-items`` evidence items (categories labelled);
- ``outcomes.jsonl``: ``--rows`` rows **without** categories (the route's detectors name the task);
- ``policy.yaml``: one route, the default detectors (hint, rules, embeddings, lexical; or
  ``--detectors``) and per-prompt estimates on (what the issue measured), models never called,

then times ``bitrate route eval`` on them in a fresh process (``--tree`` runs another
checkout's code on the same data, for a before/after comparison)::

    .venv/bin/python bench/replay_scale.py --work /tmp/scale [--profile-items 10000] [--rows 10000]
    .venv/bin/python bench/replay_scale.py --work /tmp/scale --reuse --tree /tmp/before

The last line is ``key=value`` pairs: seconds, rows per second, and the report's figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.assemble import ItemOutcome, assemble_profile  # noqa: E402
from profiles.outcomes import write_outcomes  # noqa: E402
from sdk.profile import ModelIdentity, SuiteInfo, Tolerance  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PREAMBLES = ("", "Answer carefully.\n\n", "Please reply in a few sentences.\n\n")
POLICY = """\
version: 1
models:
  frontier: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: frontier}
  student: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: student}
routes:
  auto:
    student: student
    frontier: frontier
    profile: profile.json
    per_prompt: true
    tolerance: {max_loss: 0.05, confidence: 0.90}
    tasks: {detect: [DETECTORS]}
"""


def _jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def base_prompts(data: Path) -> list[tuple[str, str]]:
    """``(category, prompt)`` for every public prompt the bench draws from."""
    out = [(f"bbh_{r['task']}", r["input"]) for r in _jsonl_gz(data / "bbh" / "bbh_all.jsonl.gz")]
    out += [("gsm8k", r["question"]) for r in _jsonl_gz(data / "gsm8k" / "gsm8k_test.jsonl.gz")]
    ifeval = (data / "ifeval" / "en_input_data.jsonl").read_text(encoding="utf-8").splitlines()
    out += [("ifeval", json.loads(line)["prompt"]) for line in ifeval if line.strip()]
    mt = (data / "mt_bench" / "mt_bench_question.jsonl").read_text(encoding="utf-8").splitlines()
    out += [
        (f"mt_{json.loads(line)['category']}", json.loads(line)["turns"][0]) for line in mt if line.strip()
    ]
    return out


def outcomes(data: Path, n: int, seed: int) -> list[ItemOutcome]:
    """``n`` distinct (category, wording) items with seeded synthetic scores."""
    rng = random.Random(seed)
    bases = base_prompts(data)
    cats = sorted({c for c, _ in bases})
    acc = {c: (rng.uniform(0.6, 0.95), rng.uniform(-0.02, 0.35)) for c in cats}
    pool = [(i, p) for i in range(len(bases)) for p in range(len(PREAMBLES))]
    rng.shuffle(pool)
    if n > len(pool):
        raise SystemExit(f"only {len(pool)} distinct prompts available, asked for {n}")
    difficulty = [rng.gauss(0.0, 0.15) for _ in bases]
    items = []
    for j, (i, p) in enumerate(pool[:n]):
        category, text = bases[i]
        frontier_acc, gap = acc[category]
        f_acc = min(1.0, max(0.0, frontier_acc - difficulty[i]))
        s_acc = min(1.0, max(0.0, frontier_acc - gap - 2 * difficulty[i]))
        items.append(
            ItemOutcome(
                id=f"{j}",
                category=category,
                prompt=PREAMBLES[p] + text,
                student=float(rng.random() < s_acc),
                frontier=float(rng.random() < f_acc),
            )
        )
    return items


def make_data(work: Path, profile_items: int, rows: int, seed: int, detectors: str) -> None:
    """Write ``profile.json``, ``outcomes.jsonl`` (no categories) and ``policy.yaml`` under ``work``."""
    items = outcomes(DATA, profile_items + rows, seed)
    evidence, replayed = items[:profile_items], items[profile_items:]
    profile = assemble_profile(
        evidence,
        student=ModelIdentity(name="student", model="student", backend="import"),
        frontier=ModelIdentity(name="frontier", model="frontier", backend="import"),
        suite=SuiteInfo(names=["scale"], sha256="0" * 64, n_items=len(evidence)),
        tolerance=Tolerance(max_loss=0.05, confidence=0.90),
        method="import",
    )
    work.mkdir(parents=True, exist_ok=True)
    data = profile.model_dump(mode="json")
    for item in data["evidence"]:  # no confidence recorded: leave the key out, so older code reads it
        item.pop("confidence", None)
    (work / "profile.json").write_text(json.dumps(data), encoding="utf-8")
    write_outcomes(work / "outcomes.jsonl", replayed)
    labelled = work / "outcomes.jsonl"
    unlabelled = [
        json.dumps({k: v for k, v in json.loads(line).items() if k != "category"})
        for line in labelled.read_text(encoding="utf-8").splitlines()
    ]
    (work / "labels.jsonl").write_text(labelled.read_text(encoding="utf-8"), encoding="utf-8")
    labelled.write_text("\n".join(unlabelled) + "\n", encoding="utf-8")
    (work / "policy.yaml").write_text(POLICY.replace("DETECTORS", detectors), encoding="utf-8")


def time_eval(work: Path, tree: Path, extra: list[str]) -> tuple[float, dict]:
    """Seconds ``bitrate route eval --json`` took in a fresh process running ``tree``'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-c",
        "import bitrate_cli; bitrate_cli.main()",
        "route",
        "eval",
        "--policy",
        str(work / "policy.yaml"),
        "--outcomes",
        str(work / "outcomes.jsonl"),
        "--json",
        *extra,
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"route eval failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="Folder for the data set.")
    parser.add_argument("--profile-items", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="Keep the data already in --work.")
    parser.add_argument("--tree", type=Path, default=ROOT, help="Checkout whose code runs route eval.")
    parser.add_argument("--eval-arg", action="append", default=[], help="Passed on to route eval.")
    parser.add_argument(
        "--detectors",
        default="hint, rules, embeddings, lexical",
        help="The route's tasks.detect (default: the policy default; 'hint, rules, lexical' needs no model).",
    )
    args = parser.parse_args()
    if not (args.reuse and (args.work / "policy.yaml").is_file()):
        if not (DATA / "bbh").is_dir():
            raise SystemExit(f"no public data under {DATA}")
        make_data(args.work, args.profile_items, args.rows, args.seed, args.detectors)
    seconds, report = time_eval(args.work, args.tree.resolve(), args.eval_arg)
    figures = {
        "seconds": round(seconds, 1),
        "rows_per_s": round(report["n"] / seconds, 1),
        "n": report["n"],
        "student_share": round(report["student_share"], 4),
        "realised_loss": report["realised_loss"] and round(report["realised_loss"], 4),
        "within": report["within_tolerance"],
        "rules": json.dumps(report["rules"], separators=(",", ":")),
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
