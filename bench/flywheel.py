"""The flywheel on the embedded pair, end to end (issue 18): serve, capture, export, distil,
profile, gate; a deliberately worse candidate must fail the gate.

1. ``bitrate serve`` on a policy with ``live: {capture: true}`` over the embedded pair: the
   official ``openai`` client sends ``--requests`` fresh prompts (``examples/distill/tasks.py``,
   none of them a ``tiny`` suite prompt), a workload heavy in the student's unsafe categories
   (``--mix``). The frontier (the tiny teacher) serves the categories the profile does not mark
   safe and its answers are captured; a ``--spot-check`` share of the student-served (safe)
   requests is answered by the frontier too, and those frontier answers are kept with their
   texts: rehearsal, so the next student does not forget what it already does well.
2. ``bitrate capture export --holdout 0.2``: ``train.jsonl`` + ``heldout.jsonl``.
3. ``bitrate student distill`` from ``embedded:student`` with the teacher's token-level KL:
   ``next/``; and from answers shuffled across conversations: ``worse/``.
4. ``bitrate profile build`` of the current student, ``next`` and ``worse`` against the same
   teacher on the held-out split + ``tiny`` (one call cache: the teacher answers each item once).
5. ``bitrate profile diff current next --gate`` must pass; ``... worse --gate`` must fail.

Prints each step's figures and one final ``key=value`` line. Run from the repository root::

    .venv/bin/python bench/flywheel.py --workdir /tmp/flywheel
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "distill"))
from tasks import by_name  # noqa: E402 - the training script's tasks, imported by path

BIN = Path(sys.executable).parent
DEFAULT_MIX = {"sort": 2.0, "uppercase": 1.0, "double": 1.0, "copy": 1.5, "reverse": 1.6, "largest": 1.0}
"""Workload weights: half the requests in the unsafe categories (sort, uppercase, double), against
30% in the current student's own distillation mix (examples/distill/train.py)."""
POLICY = """\
version: 1
models:
  frontier: {{backend: transformers, model: "embedded:teacher", threads: 1,
             price: {{input: 2.5, output: 10.0}}}}
  student: {{backend: transformers, model: "{student}", threads: 1, price: {{input: 0.05, output: 0.1}}}}
routes:
  auto:
    student: student
    frontier: frontier
    profile: "embedded:profile"
    profile_models_must_match: false
    tolerance: {{max_loss: 0.10, confidence: 0.90}}
    tasks:
      detect: [rules]
      rules:
{rules}
    shadow: {{spot_check: {spot_check}, max_concurrency: 2, queue_size: 4096, max_spend_per_hour: null,
             grader: {{kind: agreement, mode: exact}}}}
live: {{store: live.sqlite, capture: true, refresh_seconds: 1}}
"""
CATEGORIES = ("uppercase", "reverse", "copy", "double", "largest", "sort")


def _policy(path: Path, student: str, spot_check: float) -> Path:
    rules = "\n".join(f'        - {{match: "^{c}:", task: {c}}}' for c in CATEGORIES)
    path.write_text(POLICY.format(student=student, rules=rules, spot_check=spot_check))
    return path


def _run(*args: str, check: bool = True, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    print("$ bitrate " + " ".join(args), flush=True)
    done = subprocess.run([str(BIN / "bitrate"), *args], capture_output=True, text=True, cwd=ROOT)
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if check and done.returncode != 0:
        sys.exit(f"bitrate {args[0]} {args[1]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def _prompts(n: int, mix: dict[str, float], seed: int) -> list[tuple[str, str]]:
    suite = [json.loads(line) for line in (ROOT / "profiles/data/tiny.jsonl").read_text().splitlines()]
    exclude = {row["messages"][0]["content"] for row in suite}
    rng = random.Random(f"flywheel-{seed}")
    names = list(mix)
    out = []
    for _ in range(n):
        category = by_name(rng.choices(names, [mix[x] for x in names])[0])
        prompt, _answer = category.make(rng)
        while prompt in exclude:
            prompt, _answer = category.make(rng)
        out.append((category.name, prompt))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("bitrate serve exited before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("bitrate serve was not ready in time")


def serve_workload(
    work: Path, policy: Path, prompts: list[tuple[str, str]], concurrency: int
) -> dict[str, object]:
    """Run ``bitrate serve`` and send the prompts with the official openai client."""
    from openai import OpenAI

    port = _free_port()
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "bitrate"), "serve", "--policy", str(policy), "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120.0)

        def ask(item: tuple[str, str]) -> tuple[str, str]:
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": item[1]}], max_tokens=16
            )
            return item[0], raw.headers.get("x-bitrate-target", "?")

        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            routes = list(pool.map(ask, prompts))
        seconds = time.perf_counter() - t0
        time.sleep(3.0)  # let the background spot checks finish
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        log.close()
    served = Counter(f"{category}->{route}" for category, route in routes)
    return {"seconds": seconds, "served": dict(sorted(served.items()))}


def shuffled(train: Path, out: Path, seed: int) -> Path:
    """The training file with the answers shuffled across conversations (a worse teacher)."""
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    answers = [row["messages"][-1] for row in rows]
    random.Random(seed).shuffle(answers)
    out.write_text(
        "".join(
            json.dumps({"messages": [*r["messages"][:-1], a]}) + "\n"
            for r, a in zip(rows, answers, strict=True)
        )
    )
    return out


def profile(
    work: Path, name: str, student: str, spot_check: float, suites: list[str]
) -> dict[str, dict[str, object]]:
    policy = _policy(work / f"policy-{name}.yaml", student, spot_check)
    args = [
        "profile",
        "build",
        "--policy",
        str(policy),
        "--out",
        str(work / f"profile-{name}.json"),
        "--cache-dir",
        str(work / "cache"),
        "--concurrency",
        "4",
        "--max-tokens",
        "16",
        "--quiet",
    ]
    for suite in suites:
        args += ["--suite", suite]
    _run(*args, log=work / f"profile-{name}.log")
    data = json.loads((work / f"profile-{name}.json").read_text())
    return {
        c: {"student": v["student_accuracy"], "loss": v["loss"], "verdict": v["verdict"]}
        for c, v in data["categories"].items()
    }


def distil(work: Path, name: str, data: Path, args: argparse.Namespace) -> float:
    t0 = time.perf_counter()
    given = f"--data {data} --base embedded:student --out {work / name} --teacher embedded:teacher"
    settings = f"--max-steps {args.steps} --batch-size {args.batch_size} --lr {args.lr}"
    settings += f" --interpolate {args.interpolate} --threads 1 --log-every 100"
    _run("student", "distill", *given.split(), *settings.split(), log=work / f"distill-{name}.log")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, help="Where everything goes (default: a temporary folder).")
    parser.add_argument("--requests", type=int, default=3000, help="Requests sent through the gateway.")
    parser.add_argument(
        "--mix", type=json.loads, default=DEFAULT_MIX, help="Workload weights per category (JSON)."
    )
    parser.add_argument(
        "--spot-check", type=float, default=1.0, help="Share of student-served requests spot-checked."
    )
    parser.add_argument("--concurrency", type=int, default=8, help="Requests in flight at once.")
    parser.add_argument("--steps", type=int, default=800, help="Distillation steps.")
    parser.add_argument(
        "--interpolate", type=float, default=0.5, help="WiSE-FT weight towards the trained weights."
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bitrate-flywheel-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    policy = _policy(work / "policy.yaml", "embedded:student", args.spot_check)
    prompts = _prompts(args.requests, args.mix, args.seed)
    served = serve_workload(work, policy, prompts, args.concurrency)
    print(f"served {len(prompts)} requests in {served['seconds']:.0f}s: {served['served']}")

    exported = _run(
        "capture", "export", "--policy", str(policy), "--out", str(work / "train.jsonl"), "--holdout", "0.2"
    )
    print(exported.stdout)
    train_secs = distil(work, "next", work / "train.jsonl", args)
    print(f"distilled next/ in {train_secs:.0f}s")
    worse_secs = distil(
        work, "worse", shuffled(work / "train.jsonl", work / "shuffled.jsonl", args.seed), args
    )
    print(f"distilled worse/ (shuffled answers) in {worse_secs:.0f}s")

    suites = [str(work / "heldout.jsonl"), "tiny"]
    figures = {
        name: profile(work, name, student, args.spot_check, suites)
        for name, student in (
            ("current", "embedded:student"),
            ("next", str(work / "next")),
            ("worse", str(work / "worse")),
        )
    }
    print(f"{'category':<10} " + " ".join(f"{n + ' acc':>12} {n + ' loss':>12}" for n in figures))
    for category in sorted(figures["current"]):
        cells = " ".join(
            f"{figures[n][category]['student']:>12.3f} {figures[n][category]['loss']:>+12.3f}"
            for n in figures
        )
        print(f"{category:<10} {cells}")

    gate_next = _run(
        "profile",
        "diff",
        str(work / "profile-current.json"),
        str(work / "profile-next.json"),
        "--gate",
        check=False,
    )
    gate_worse = _run(
        "profile",
        "diff",
        str(work / "profile-current.json"),
        str(work / "profile-worse.json"),
        "--gate",
        check=False,
    )
    print(gate_next.stdout, gate_worse.stdout, sep="\n")
    improved = sorted(
        c
        for c in figures["current"]
        if f"│ {c} *" in gate_next.stdout
        and "improved" in next(line for line in gate_next.stdout.splitlines() if f"│ {c} *" in line)
    )
    print(
        f"flywheel requests={len(prompts)} serve_s={served['seconds']:.0f} distill_s={train_secs:.0f} "
        f"gate_next={'pass' if gate_next.returncode == 0 else 'fail'} "
        f"gate_worse={'fail' if gate_worse.returncode == 1 else 'pass'} improved={','.join(improved) or '-'} "
        f"ok={int(gate_next.returncode == 0 and gate_worse.returncode == 1 and train_secs < 600)} "
        f"workdir={work}"
    )


if __name__ == "__main__":
    main()
