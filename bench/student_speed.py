"""Tokens per second of the embedded teacher vs the embedded student, greedy, one run.

Both models are served by the ``transformers`` backend exactly as the engine
builds them (``sdk.backends.make_backend``, one torch thread each) and answer
the same prompts from the ``tiny`` probe suite, with no temperature (greedy).
Rounds alternate teacher and student so drift on a shared machine hits both
alike; each round sends every prompt at concurrency 1 (one sequence at a time:
per-token latency) and at concurrency 8 (the backend batches them). Reported:
completion tokens per second of each, the median over rounds, and the ratio.

    .venv/bin/python bench/student_speed.py --prompts 48 --rounds 3

Ends with one ``key=value`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdk.backends import TransformersConfig, make_backend  # noqa: E402
from sdk.protocol import ChatRequest  # noqa: E402

SUITE = ROOT / "profiles" / "data" / "tiny.jsonl"
MODELS = ("teacher", "student")


def load_prompts(suite: Path, n: int) -> list[list[dict]]:
    """``n`` suite prompts, spread over the categories (round-robin)."""
    by_cat: dict[str, list[list[dict]]] = {}
    for line in suite.read_text().splitlines():
        row = json.loads(line)
        by_cat.setdefault(row["category"], []).append(row["messages"])
    cats = list(by_cat.values())
    return [cats[i % len(cats)][(i // len(cats)) % len(cats[i % len(cats)])] for i in range(n)]


async def timed_run(
    backend, prompts: list[list[dict]], concurrency: int, max_tokens: int
) -> tuple[int, float]:
    """Completion tokens and wall seconds to answer every prompt at ``concurrency``."""
    sem = asyncio.Semaphore(concurrency)

    async def one(messages: list[dict]) -> int:
        async with sem:
            req = ChatRequest(model=backend.name, messages=messages, max_tokens=max_tokens)
            resp = await backend.complete(req)
            return resp.usage.completion_tokens

    t0 = time.perf_counter()
    tokens = await asyncio.gather(*(one(m) for m in prompts))
    return sum(tokens), time.perf_counter() - t0


def n_params(backend) -> int:
    """Parameters of the backend's loaded model (0 when it does not expose one)."""
    lm = getattr(backend, "_lm", None)
    model = getattr(lm, "model", None)
    return sum(p.numel() for p in model.parameters()) if model is not None else 0


async def main_async(args: argparse.Namespace) -> int:
    prompts = load_prompts(args.suite, args.prompts)
    paths = {"teacher": args.teacher, "student": args.student}
    backends = {
        name: make_backend(name, TransformersConfig(backend="transformers", model=paths[name], threads=1))
        for name in MODELS
    }
    rates: dict[tuple[str, int], list[float]] = {}
    tokens_seen: dict[tuple[str, int], int] = {}
    try:
        for name in MODELS:  # warm-up: first calls pay allocation and lazy init
            await timed_run(backends[name], prompts[:8], 1, args.max_tokens)
        for _ in range(args.rounds):
            for conc in (1, 8):
                for name in MODELS:
                    tokens, secs = await timed_run(backends[name], prompts, conc, args.max_tokens)
                    rates.setdefault((name, conc), []).append(tokens / secs)
                    tokens_seen[(name, conc)] = tokens
    finally:
        for b in backends.values():
            await b.close()
    report(rates, tokens_seen, {n: n_params(b) for n, b in backends.items()}, args)
    return 0


def report(rates, tokens_seen, params, args) -> None:
    """Print the table and the ``key=value`` line."""
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{args.prompts} prompts, {args.rounds} rounds, greedy, max_tokens={args.max_tokens}")
    print(
        f"{'model':<8} {'params':>8} {'conc':>5} {'tokens':>7} {'tok/s (median)':>15} {'min':>8} {'max':>8}"
    )
    for (name, conc), values in sorted(rates.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(
            f"{name:<8} {params[name]:>8} {conc:>5} {tokens_seen[(name, conc)]:>7} "
            f"{med[(name, conc)]:>15.1f} {min(values):>8.1f} {max(values):>8.1f}"
        )
    s1, t1 = med[("student", 1)], med[("teacher", 1)]
    s8, t8 = med[("student", 8)], med[("teacher", 8)]
    print(
        f"student_tokens_per_s={s1:.1f} teacher_tokens_per_s={t1:.1f} speedup={s1 / t1:.2f} "
        f"student_tokens_per_s_c8={s8:.1f} teacher_tokens_per_s_c8={t8:.1f} speedup_c8={s8 / t8:.2f} "
        f"param_ratio={params['student'] / max(1, params['teacher']):.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=48, help="prompts per run (spread over categories)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    ap.add_argument("--teacher", default="embedded:teacher", help="teacher model directory")
    ap.add_argument("--student", default="embedded:student", help="student model directory")
    ap.add_argument("--suite", type=Path, default=SUITE, help="probe suite the prompts come from")
    ap.add_argument("--max-tokens", type=int, default=16, help="completion limit per request")
    args = ap.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
