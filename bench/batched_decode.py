"""Batched decoding: bitrate's ``transformers`` backend beside plain transformers, same weights, one run.

    .venv/bin/python bench/batched_decode.py                  # the CPU acceptance run
    .venv/bin/python bench/batched_decode.py --gateway 8      # and `bitrate serve` at 8 streams

Model: a random-weight Llama (bench/random_llama.py; ``--shape cpu-17m``, about 17M
parameters) built into a temporary directory, or ``--model DIR``. Greedy, ``--max-tokens``
new tokens a stream: the model never emits end-of-text, so every stream and every row of
``generate`` runs to the limit. Paths, each run once per round (medians over rounds):

- ``generate bN``: ``model.generate`` on N left-padded prompts in one call (the same saved
  weights, loaded beside the backend's copy);
- ``cb N``: transformers' own continuous batching (``init_continuous_batching``; the manager
  is built and started before the clock starts), N requests (``--cb``);
- ``bitrate cN``: the backend as the engine builds it (``make_backend``), N concurrent
  streams through ``Backend.stream``;
- ``gateway cN``: ``bitrate serve`` with a policy naming the same model, N concurrent
  streams over HTTP (SSE read with aiohttp, whose C parser keeps the client's share of
  the two CPUs small).

tokens/s = completion tokens of all N / the batch's wall time. Paths of one size run back to
back, every other round in reverse; a ratio is the median over rounds of the two paths'
rates in the same round. Every bitrate and gateway answer is checked against ``generate``'s
greedy answer for the same prompt. Ends with one ``key=value`` line. bench/gpu_check.py
runs the same paths with the GPU's sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.random_llama import build_random_llama, n_params  # noqa: E402
from bench.student_throughput import PROMPTS, free_port, start_gateway, stop  # noqa: E402
from sdk.backends import TransformersConfig, make_backend  # noqa: E402
from sdk.protocol import ChatRequest  # noqa: E402


def prompts(n: int) -> list[str]:
    """``n`` prompts, the list above repeated with a counter so no two are alike."""
    return [
        PROMPTS[i % len(PROMPTS)] + (f" {i // len(PROMPTS)}" if i >= len(PROMPTS) else "") for i in range(n)
    ]


@dataclass
class Setup:
    """What every path shares: the model directory, its device and dtype, the sizes."""

    model: Path
    device: str
    dtype: str
    threads: int | None
    max_tokens: int
    max_batch: int


@dataclass
class Run:
    """One path at one size: tokens/s per round, and the answers it gave."""

    rates: list[float] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ plain transformers


class Plain:
    """The saved model loaded by transformers directly: ``generate`` and continuous batching."""

    def __init__(self, setup: Setup):
        import torch
        from transformers import AutoTokenizer

        self.setup = setup
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(setup.model, local_files_only=True)
        self.model = self._load()
        self._cb: Any = None

    def _load(self) -> Any:
        from transformers import AutoModelForCausalLM

        dtype = getattr(self.torch, self.setup.dtype)
        model = AutoModelForCausalLM.from_pretrained(self.setup.model, local_files_only=True, dtype=dtype)
        return model.to(self.setup.device).eval()

    def ids(self, prompt: str) -> list[int]:
        messages = [{"role": "user", "content": prompt}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, batch: list[str]) -> tuple[float, dict[str, str]]:
        """One ``generate`` call on ``batch``, left-padded: tokens/s and the answers."""
        torch, n = self.torch, self.setup.max_tokens
        rows = [self.ids(p) for p in batch]
        width, pad = max(len(r) for r in rows), self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.setup.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.setup.device)
        self._sync()
        started = time.perf_counter()
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=pad,
        )
        self._sync()
        wall = time.perf_counter() - started
        texts = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        return len(batch) * n / wall, dict(zip(batch, texts, strict=True))

    def start_cb(self) -> None:
        """Build and start transformers' continuous-batching manager on its own copy of the
        weights (outside the timed part)."""
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        n, tok = self.setup.max_tokens, self.tokenizer
        config = GenerationConfig(
            max_new_tokens=n, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
        )
        sizes: dict[str, int] = {"max_requests_per_batch": self.setup.max_batch}
        if self.setup.device == "cpu":  # sized from free memory otherwise: a minute of set-up on a CPU
            page = (
                "page_size"
                if "page_size" in inspect.signature(ContinuousBatchingConfig).parameters
                else "block_size"
            )
            sizes.update({"num_blocks": 4 * self.setup.max_batch, page: 256, "max_batch_tokens": 1024})
        cb = ContinuousBatchingConfig(**sizes)
        # a copy of its own: continuous batching switches the model to paged attention
        self._cb = self._load().init_continuous_batching(
            generation_config=config, continuous_batching_config=cb
        )
        self._cb.start()

    def stop_cb(self) -> None:
        if self._cb is not None:
            self._cb.stop(block=True, timeout=10)
            self._cb = None

    def continuous(self, batch: list[str]) -> tuple[float, dict[str, str]]:
        """``batch`` through the continuous-batching manager: tokens/s and the answers."""
        ids = [self.ids(p) for p in batch]
        started = time.perf_counter()
        request_ids = self._cb.add_requests(inputs=ids, max_new_tokens=self.setup.max_tokens)
        outputs: dict[str, Any] = {}
        while len(outputs) < len(request_ids):
            result = self._cb.get_result(timeout=60)
            if result is None and not self._cb.is_running():
                raise RuntimeError("continuous batching stopped (its log above says why)")
            if result is None:
                raise RuntimeError("continuous batching returned nothing for 60 s")
            if result.is_finished():
                outputs[result.request_id] = result
        wall = time.perf_counter() - started
        tokens = [outputs[r].generated_tokens for r in request_ids]
        texts = [self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]
        return sum(len(t) for t in tokens) / wall, dict(zip(batch, texts, strict=True))

    def _sync(self) -> None:
        if self.setup.device.startswith("cuda"):
            self.torch.cuda.synchronize()


# ------------------------------------------------------------------ bitrate


def backend_config(setup: Setup) -> dict[str, Any]:
    """The ``transformers`` model entry both bitrate paths use."""
    return {
        "backend": "transformers",
        "model": str(setup.model),
        "device": setup.device,
        "dtype": setup.dtype,
        "max_batch_size": setup.max_batch,
        "max_new_tokens": setup.max_tokens,
        **({"threads": setup.threads} if setup.threads else {}),
    }


async def bitrate_stream(backend: Any, prompt: str, max_tokens: int) -> tuple[int, str]:
    """One streamed greedy answer from the backend: completion tokens and text."""
    request = ChatRequest(
        model="student",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    tokens, text = 0, []
    async for chunk in backend.stream(request):
        text.extend(c.delta.content or "" for c in chunk.choices)
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return tokens, "".join(text)


async def gateway_stream(session: Any, prompt: str, max_tokens: int) -> tuple[int, str]:
    """One streamed greedy answer through ``bitrate serve`` (SSE over aiohttp)."""
    body = {
        "model": "student",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens, text = 0, []
    async with session.post("/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            text.extend(c["delta"].get("content") or "" for c in chunk["choices"])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return tokens, "".join(text)


async def concurrently(one: Callable[[str], Any], batch: list[str]) -> tuple[float, dict[str, str]]:
    """Every prompt of ``batch`` at once: tokens/s over the batch and the answers."""
    started = time.perf_counter()
    results = await asyncio.gather(*(one(p) for p in batch))
    wall = time.perf_counter() - started
    return sum(n for n, _ in results) / wall, {p: text for p, (_, text) in zip(batch, results, strict=True)}


@contextlib.contextmanager
def gateway(setup: Setup, workdir: Path) -> Iterator[str]:
    """``bitrate serve`` on a policy whose model ``student`` is ``setup``'s; yields its base URL."""
    import yaml

    policy = workdir / "policy.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "models": {"student": backend_config(setup)}}))
    port = free_port()
    proc = start_gateway(port, workdir / "gateway.log", policy)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


# ------------------------------------------------------------------ the run


@dataclass
class Plan:
    """Which sizes each path runs at."""

    batches: list[int]
    streams: list[int]
    cb: list[int]
    gateway: list[int]
    single_prompts: int
    """Prompts answered one after another at size 1 (the others answer ``size`` prompts at once)."""


async def measure(setup: Setup, plan: Plan, rounds: int, workdir: Path) -> dict[str, Run]:
    import aiohttp

    plain = Plain(setup)
    backend = await asyncio.to_thread(make_backend, "student", TransformersConfig(**backend_config(setup)))
    runs: dict[str, Run] = {}
    stack = contextlib.ExitStack()
    client = None
    try:
        if plan.gateway:
            base = stack.enter_context(gateway(setup, workdir))
            client = aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=600))
        if plan.cb:
            plain.start_cb()
        paths = _paths(plain, backend, client, setup, plan)
        for name, size, run in paths:  # warm-up: first calls pay allocation and lazy init
            print(f"warm-up: {name} {size}", file=sys.stderr)
            await run(prompts(min(size, 2)))
        for rnd in range(rounds):  # every other round in reverse, so no path always goes first
            for name, size, run in paths if rnd % 2 == 0 else paths[::-1]:
                print(f"round {rnd + 1}/{rounds}: {name} {size}", file=sys.stderr)
                batch = prompts(size if size > 1 else plan.single_prompts)
                rate, answers = await _timed(run, batch, size)
                entry = runs.setdefault(f"{name} {size}", Run())
                entry.rates.append(rate)
                entry.answers.update(answers)
    finally:
        plain.stop_cb()
        if client is not None:
            await client.close()
        stack.close()
        await backend.close()
    return runs


def _paths(plain: Plain, backend: Any, client: Any, setup: Setup, plan: Plan) -> list[tuple[str, int, Any]]:
    n = setup.max_tokens

    async def generate(batch: list[str]) -> tuple[float, dict[str, str]]:
        return await asyncio.to_thread(plain.generate, batch)

    async def cb(batch: list[str]) -> tuple[float, dict[str, str]]:
        return await asyncio.to_thread(plain.continuous, batch)

    async def bitrate(batch: list[str]) -> tuple[float, dict[str, str]]:
        return await concurrently(lambda p: bitrate_stream(backend, p, n), batch)

    async def served(batch: list[str]) -> tuple[float, dict[str, str]]:
        return await concurrently(lambda p: gateway_stream(client, p, n), batch)

    paths = (
        [("generate", b, generate) for b in plan.batches]
        + [("cb", s, cb) for s in plan.cb]
        + [("bitrate", s, bitrate) for s in plan.streams]
        + [("gateway", s, served) for s in plan.gateway]
    )
    return sorted(paths, key=lambda p: p[1])  # paths compared at one size run back to back


async def _timed(run: Any, batch: list[str], size: int) -> tuple[float, dict[str, str]]:
    """Size 1 answers the prompts one after another; larger sizes all at once."""
    if size > 1:
        return await run(batch)
    rates, answers = [], {}
    for prompt in batch:
        rate, answer = await run([prompt])
        rates.append(rate)
        answers.update(answer)
    return len(rates) / sum(1 / r for r in rates), answers


def report(runs: dict[str, Run], setup: Setup, params: int) -> dict[str, float]:
    """Print the table; return the medians by path."""
    import torch
    import transformers

    med = {name: statistics.median(run.rates) for name, run in runs.items()}
    where = torch.cuda.get_device_name() if setup.device.startswith("cuda") else f"{os.cpu_count()} CPUs"
    print(
        f"\nmodel {setup.model} ({params:,} params), {setup.device} {setup.dtype}, threads={setup.threads}, "
        f"greedy, {setup.max_tokens} new tokens a stream\n"
        f"{where}; torch {torch.__version__}, transformers {transformers.__version__}"
    )
    print(f"{'path':<10}{'size':>6}{'tokens/s':>11}{'min':>9}{'max':>9}")
    for name, run in runs.items():
        path, size = name.split()
        print(f"{path:<10}{size:>6}{med[name]:>11.1f}{min(run.rates):>9.1f}{max(run.rates):>9.1f}")
    return med


def agreement(runs: dict[str, Run]) -> tuple[int, int]:
    """Answers of the bitrate and gateway paths equal to ``generate``'s for the same prompt."""
    reference: dict[str, str] = {}
    for name, run in runs.items():
        if name.startswith("generate"):
            reference.update(run.answers)
    checked = same = 0
    for name, run in runs.items():
        if name.startswith(("bitrate", "gateway")):
            for prompt, text in run.answers.items():
                if prompt in reference:
                    checked += 1
                    same += text == reference[prompt]
    return same, checked


def paired(runs: dict[str, Run], name: str, reference: str) -> float:
    """Median over rounds of ``name``'s rate over ``reference``'s in the same round (run back
    to back, so drift on a shared machine mostly cancels)."""
    pairs = zip(runs[name].rates, runs[reference].rates, strict=True)
    return statistics.median(a / b for a, b in pairs)


def summary(runs: dict[str, Run], med: dict[str, float], same: int, checked: int) -> str:
    """The ``key=value`` line: every median, and the ratios the acceptance reads."""
    parts = [f"{name.replace(' ', '_')}={rate:.1f}" for name, rate in med.items()]
    for name in med:
        path, size = name.split()
        if path == "bitrate" and f"generate {size}" in med:
            parts.append(f"bitrate_vs_generate_{size}={paired(runs, name, f'generate {size}'):.2f}")
        if path == "gateway" and f"bitrate {size}" in med:
            parts.append(f"gateway_vs_inprocess_{size}={paired(runs, name, f'bitrate {size}'):.2f}")
    parts.append(f"same_answers={same}/{checked}")
    return " ".join(parts)


def parser(description: str | None = __doc__, **defaults: Any) -> argparse.ArgumentParser:
    """The command line shared with bench/gpu_check.py (which changes the defaults)."""
    d = {
        "shape": "cpu-17m",
        "device": "cpu",
        "dtype": "float32",
        "threads": 1,
        "max_tokens": 64,
        "batches": [1, 8],
        "streams": [1, 8],
        "cb": [],
        "gateway": [],
        "rounds": 3,
        "single_prompts": 2,
        **defaults,
    }
    ap = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path, help="a saved model directory (default: build --shape)")
    ap.add_argument("--shape", default=d["shape"], help="random Llama shape (bench/random_llama.py)")
    ap.add_argument("--device", default=d["device"], help="torch device: cpu, cuda")
    ap.add_argument("--dtype", default=d["dtype"], choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--threads", type=int, default=d["threads"], help="torch threads (0: torch's default)")
    ap.add_argument("--max-tokens", type=int, default=d["max_tokens"], help="new tokens a stream")
    ap.add_argument("--batches", type=int, nargs="*", default=d["batches"], help="generate batch sizes")
    ap.add_argument("--streams", type=int, nargs="*", default=d["streams"], help="bitrate stream counts")
    ap.add_argument("--cb", type=int, nargs="*", default=d["cb"], help="continuous-batching request counts")
    ap.add_argument(
        "--gateway", type=int, nargs="*", default=d["gateway"], help="bitrate serve stream counts"
    )
    ap.add_argument("--rounds", type=int, default=d["rounds"], help="rounds; medians are reported")
    ap.add_argument("--single-prompts", type=int, default=d["single_prompts"], help="prompts run at size 1")
    return ap


def run(args: argparse.Namespace) -> str:
    """Build (or take) the model, measure every path, print the table; return the ``key=value`` line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="bitrate-batched-"))
    model = args.model or build_random_llama(workdir / "model", args.shape, dtype=args.dtype)
    sizes = args.batches + args.streams + args.cb + args.gateway
    setup = Setup(model, args.device, args.dtype, args.threads or None, args.max_tokens, max(sizes))
    plan = Plan(args.batches, args.streams, args.cb, args.gateway, args.single_prompts)
    runs = asyncio.run(measure(setup, plan, args.rounds, workdir))
    med = report(runs, setup, n_params(model))
    line = summary(runs, med, *agreement(runs))
    print(line)
    return line


def main() -> int:
    run(parser().parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
