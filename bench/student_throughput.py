"""A local student through the gateway vs in-process: tokens/s and time to first token.

Two paths answer the same streamed prompts, greedy, at 1 and 8 concurrent streams:

- ``inprocess``: the ``transformers`` backend built here exactly as the engine builds it
  (``TransformersConfig``, one torch thread), called directly;
- ``gateway``: ``bitrate serve`` (started here, stopped by PID), model ``student``, streamed
  through the official ``openai`` client.

``--model``: ``embedded:student`` (the default policy's student, whose answers are a few
tokens), a model directory, or ``random:SHAPE``, a random-weight Llama that answers every
stream to its token limit (bench/random_llama.py; ``random:cpu-17m`` is the CPU acceptance
model). For any model but the embedded one, the gateway runs a policy naming it ``student``.

Rounds alternate the paths (each concurrency's two runs back to back, in reverse order every
other round) so drift on a shared machine hits both alike. Reported per path and concurrency:
completion tokens per second over the whole batch (usage from ``stream_options.include_usage``),
and the median time to the first content token. Ends with one ``key=value`` line: the
tokens/s ratio is the median over rounds of gateway / inprocess within a round.

    .venv/bin/python bench/student_throughput.py --prompts 8 --rounds 2
    .venv/bin/python bench/student_throughput.py --model random:cpu-17m --max-tokens 64 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdk.backends import TransformersConfig, make_backend  # noqa: E402
from sdk.protocol import ChatRequest  # noqa: E402

# Prompts in the tiny suite's form (the student's six trained categories).
PROMPTS = [
    "reverse: abcdef",
    "uppercase: hello world",
    "copy: the quick brown fox",
    "double: 3 1 4",
    "largest: 3 9 4 7",
    "sort: d b a c",
    "reverse: bitrate",
    "uppercase: small model",
]
CONCURRENCY = (1, 8)

Stream = Callable[[str, int], AsyncIterator[tuple[str, int | None]]]
"""``(prompt, max_tokens)`` -> ``(text piece, completion tokens or None)`` pairs."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(port: int, log: Path, policy: Path | None = None) -> subprocess.Popen:
    """``bitrate serve`` with ``policy`` (default: the embedded one), run by this interpreter;
    returns once it answers ``/healthz``."""
    import httpx

    argv = [sys.executable, "-c", "import bitrate_cli; bitrate_cli.main()", "serve", "--port", str(port)]
    argv += ["--log-level", "warning", *(["--policy", str(policy)] if policy else [])]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bitrate serve exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"bitrate serve not ready after 300s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the process group we started, by PID."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def inprocess_stream(backend) -> Stream:
    async def stream(prompt: str, max_tokens: int) -> AsyncIterator[tuple[str, int | None]]:
        request = ChatRequest(
            model="student",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in backend.stream(request):
            text = "".join(c.delta.content or "" for c in chunk.choices)
            yield text, chunk.usage.completion_tokens if chunk.usage else None

    return stream


def gateway_stream(client) -> Stream:
    async def stream(prompt: str, max_tokens: int) -> AsyncIterator[tuple[str, int | None]]:
        response = await client.chat.completions.create(
            model="student",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in response:
            text = "".join(c.delta.content or "" for c in chunk.choices)
            yield text, chunk.usage.completion_tokens if chunk.usage else None

    return stream


async def one(stream: Stream, prompt: str, max_tokens: int) -> tuple[float | None, int]:
    """Seconds to the first content token (``None`` if none came) and completion tokens."""
    started, first, tokens = time.perf_counter(), None, 0
    async for text, usage in stream(prompt, max_tokens):
        if text and first is None:
            first = time.perf_counter() - started
        if usage is not None:
            tokens = usage
    return first, tokens


async def batch(stream: Stream, prompts: list[str], concurrency: int, max_tokens: int) -> dict:
    """Every prompt at ``concurrency`` streams at once: tokens/s over the batch, TTFT p50."""
    sem = asyncio.Semaphore(concurrency)

    async def limited(prompt: str) -> tuple[float | None, int]:
        async with sem:
            return await one(stream, prompt, max_tokens)

    started = time.perf_counter()
    results = await asyncio.gather(*(limited(p) for p in prompts))
    wall = time.perf_counter() - started
    ttfts = [t for t, _ in results if t is not None]
    tokens = sum(n for _, n in results)
    return {"tok_s": tokens / wall, "ttft_ms": statistics.median(ttfts) * 1e3 if ttfts else None}


def report(runs: dict[tuple[str, int], list[dict]]) -> dict[tuple[str, int], dict]:
    med = statistics.median
    agg = {}
    print(f"\n{'path':<11}{'streams':>8}{'tokens/s':>10}{'TTFT p50 ms':>13}")
    for (path, conc), rs in sorted(runs.items()):
        ttfts = [r["ttft_ms"] for r in rs if r["ttft_ms"] is not None]
        agg[(path, conc)] = {"tok_s": med(r["tok_s"] for r in rs), "ttft_ms": med(ttfts) if ttfts else None}
        a = agg[(path, conc)]
        ttft = "-" if a["ttft_ms"] is None else f"{a['ttft_ms']:.1f}"
        print(f"{path:<11}{conc:>8}{a['tok_s']:>10.1f}{ttft:>13}")
        if path == "gateway" and ("inprocess", conc) in runs:  # per round, the two paths back to back
            pairs = zip(rs, runs[("inprocess", conc)], strict=True)
            a["paired_ratio"] = med(g["tok_s"] / i["tok_s"] for g, i in pairs)
    print("(greedy, medians over rounds; tokens/s = completion tokens of the batch / its wall time)")
    return agg


def ratios(agg: dict[tuple[str, int], dict]) -> str:
    parts = []
    for conc in CONCURRENCY:
        gw, ip = agg.get(("gateway", conc)), agg.get(("inprocess", conc))
        if not gw or not ip:
            continue
        parts.append(f"gateway_tok_s_c{conc}={gw['tok_s']:.1f} inprocess_tok_s_c{conc}={ip['tok_s']:.1f}")
        parts.append(f"tok_s_ratio_c{conc}={gw['paired_ratio']:.2f}")
        if gw["ttft_ms"] and ip["ttft_ms"]:
            parts.append(f"ttft_ratio_c{conc}={gw['ttft_ms'] / ip['ttft_ms']:.2f}")
            parts.append(f"ttft_added_ms_c{conc}={gw['ttft_ms'] - ip['ttft_ms']:.1f}")
    return " ".join(parts)


async def measure(args: argparse.Namespace, paths: dict[str, Stream]) -> dict:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.prompts)]
    for stream in paths.values():  # warm up: first-call costs stay out of the figures
        await batch(stream, prompts[:2], 2, 4)
    runs: dict[tuple[str, int], list[dict]] = {}
    for rnd in range(args.rounds):
        for conc in CONCURRENCY:
            for name, stream in list(paths.items())[:: 1 if rnd % 2 == 0 else -1]:
                print(f"round {rnd + 1}/{args.rounds}: {name} x{conc}", file=sys.stderr)
                runs.setdefault((name, conc), []).append(await batch(stream, prompts, conc, args.max_tokens))
    return report(runs)


def student_entry(model: str) -> dict:
    """The policy entry (and in-process config) of the student under test."""
    return {"backend": "transformers", "model": model, "threads": 1, "max_batch_size": max(CONCURRENCY)}


def resolve_model(model: str, workdir: Path) -> str:
    """``random:SHAPE`` built into ``workdir``; anything else as given."""
    if not model.startswith("random:"):
        return model
    from bench.random_llama import build_random_llama

    return str(build_random_llama(workdir / "model", model.removeprefix("random:")))


async def run(args: argparse.Namespace, port: int) -> dict:
    from openai import AsyncOpenAI

    config = TransformersConfig(**student_entry(args.model))
    backend = await asyncio.to_thread(make_backend, "student", config)
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench-not-a-secret", max_retries=0)
    try:
        paths = {"inprocess": inprocess_stream(backend), "gateway": gateway_stream(client)}
        return await measure(args, paths)
    finally:
        await client.close()
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=8, help="streams per batch (per concurrency level)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over both paths")
    parser.add_argument("--max-tokens", type=int, default=32, help="completion tokens per stream at most")
    parser.add_argument(
        "--model", default="embedded:student", help="embedded:student, a directory, random:SHAPE"
    )
    args = parser.parse_args()

    import torch
    import yaml

    torch.set_num_threads(1)
    workdir = Path(tempfile.mkdtemp(prefix="bitrate-student-bench-"))
    args.model = resolve_model(args.model, workdir)
    policy = None
    if args.model != "embedded:student":
        policy = workdir / "policy.yaml"
        policy.write_text(yaml.safe_dump({"version": 1, "models": {"student": student_entry(args.model)}}))
    port = free_port()
    gateway = start_gateway(port, workdir / "gateway.log", policy)
    try:
        agg = asyncio.run(run(args, port))
    finally:
        stop(gateway)
    print(ratios(agg))


if __name__ == "__main__":
    main()
