"""Routing overhead: detect + decide per request (``Engine.explain``: no model is called).

The profile holds the IFEval outcomes of gpt-4o vs Qwen2.5-7B on half the prompts as
evidence (~420 items); the requests are the other half's prompts (~270), shuffled. Each
configuration is a real policy route, timed per request with ``perf_counter``:

- ``lexical``: the lexical detector (TF-IDF character n-grams) and category routing;
- ``lexical+per-prompt``: the same plus the per-prompt estimate (lexical space);
- ``minilm cold``: the embedding detector on all-MiniLM-L6-v2, every prompt new to its cache;
- ``minilm cached``: the same prompts again (the LRU cache answers);
- ``hint``: a task hint only (the floor: decide alone).

One torch thread. Prints a table and a final key=value line.

    .venv/bin/python bench/route_latency.py [--n 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.assemble import assemble_profile  # noqa: E402
from profiles.ifeval_outcomes import ifeval_outcomes  # noqa: E402
from sdk.embed import minilm_available  # noqa: E402
from sdk.engine import Engine  # noqa: E402
from sdk.policy import load_policy  # noqa: E402
from sdk.profile import ModelIdentity, SuiteInfo, Tolerance  # noqa: E402
from sdk.protocol import ChatRequest  # noqa: E402

ROUTE = """\
  {name}:
    student: student
    frontier: frontier
    profile: profile.json
    per_prompt: {per_prompt}
    tolerance: {{max_loss: 0.05, confidence: 0.9}}
    tasks: {{detect: [{detect}], min_confidence: 0.3}}
"""
HEAD = """\
version: 1
models:
  frontier: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: frontier}
  student: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: student}
routes:
"""
CONFIGS = {  # label -> (detectors, per_prompt, task hint)
    "hint": ("hint", "false", True),
    "lexical": ("lexical", "false", False),
    "lexical+per-prompt": ("lexical", "true", False),
    "minilm": ("embeddings", "false", False),
}


def write_setup(work: Path, data: Path, student: str) -> list[str]:
    """Profile on half the IFEval prompts; the other half, shuffled, are the requests (so they
    are new to the embedding cache, as live traffic would be)."""
    outcomes = ifeval_outcomes(data, frontier="gpt-4o-2024-08-06", student=student)
    keys = sorted({o.id.split("/")[0] for o in outcomes})
    random.Random(0).shuffle(keys)
    evidence_keys = set(keys[: len(keys) // 2])
    requests = sorted({o.prompt for o in outcomes if o.id.split("/")[0] not in evidence_keys})
    outcomes = [o for o in outcomes if o.id.split("/")[0] in evidence_keys]
    assemble_profile(
        outcomes,
        student=ModelIdentity(name="student", model=student),
        frontier=ModelIdentity(name="frontier", model="gpt-4o-2024-08-06"),
        suite=SuiteInfo(names=["ifeval"], sha256="0" * 64, n_items=len(outcomes)),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        method="import",
    ).save(work / "profile.json")
    routes = "".join(
        ROUTE.format(name=name.replace("+", "_"), detect=d, per_prompt=pp)
        for name, (d, pp, _) in CONFIGS.items()
    )
    (work / "policy.yaml").write_text(HEAD + routes)
    random.Random(1).shuffle(requests)
    return requests


def time_route(
    engine: Engine, route: str, prompts: list[str], hint: str | None
) -> tuple[list[float], list[float]]:
    """Wall-clock and thread-CPU seconds of ``explain`` per request (CPU time leaves out the
    time the thread waited for a core: on a shared machine the wall-clock tail is scheduling)."""
    requests = [ChatRequest(model=route, messages=[{"role": "user", "content": p}]) for p in prompts]
    wall, cpu = [], []
    for request in requests:
        start, start_cpu = time.perf_counter(), time.thread_time()
        engine.explain(request, hint)
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return wall, cpu


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ifeval")
    parser.add_argument("--student", default="Qwen__Qwen2.5-7B-Instruct-GPTQ-Int4")
    parser.add_argument("--n", type=int, default=300, help="Requests per configuration (at most ~270).")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    rows: list[tuple[str, tuple[list[float], list[float]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        prompts = write_setup(Path(tmp), args.data, args.student)[: args.n]
        engine = Engine(load_policy(Path(tmp) / "policy.yaml"))
        start = time.perf_counter()
        for runtime in engine.routes().values():
            runtime.pipeline.warm()  # what Engine.start() does: detectors built before traffic
        build_s = time.perf_counter() - start
        for label, (detect, _pp, hint) in CONFIGS.items():
            if detect == "embeddings" and not minilm_available():
                continue
            route = label.replace("+", "_")
            time_route(engine, route, prompts[:5], "x" if hint else None)  # warm-up: first-call costs
            times = time_route(engine, route, prompts[5:], "keywords" if hint else None)
            rows.append((f"{label} cold" if detect == "embeddings" else label, times))
            if detect == "embeddings":
                rows.append((f"{label} cached", time_route(engine, route, prompts[5:], None)))
    print(f"{'configuration':<22} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'cpu p99':>8}")
    for label, (wall, cpu) in rows:
        print(
            f"{label:<22} {len(wall):>4} {pct(wall, 0.5):>8.3f} {pct(wall, 0.99):>8.3f} "
            f"{pct(cpu, 0.5):>8.3f} {pct(cpu, 0.99):>8.3f}"
        )
    print(f"(routes built once at start in {build_s:.1f} s: profile, indexes, calibration, MiniLM load)")
    keys = {label.replace(" ", "_").replace("+", "_").replace("-", "_"): t for label, t in rows}
    print(
        " ".join(
            f"{k}_p50_ms={pct(w, 0.5):.3f} {k}_p99_ms={pct(w, 0.99):.3f} {k}_cpu_p99_ms={pct(c, 0.99):.3f}"
            for k, (w, c) in keys.items()
        )
    )


if __name__ == "__main__":
    main()
