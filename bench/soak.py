"""Soak: a steady request rate through the gateway on the embedded default, for a bounded time.

Starts ``bitrate serve`` (no policy: the shipped pair, route ``auto``) on a free
local port, sends ``--rate`` requests per second for ``--duration`` seconds (a mix
of the tiny suite's prompts, a third of them streaming) with the official
``openai`` client, then stops the gateway by PID and reports: errors (must be 0),
latency percentiles per time window, and the gateway's RSS at start and end.

    .venv/bin/python bench/soak.py --duration 300 --rate 4

Ends with one ``key=value`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "profiles" / "data" / "tiny.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gateway exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit("gateway not ready in time")


def load_prompts(limit: int = 200) -> list[str]:
    items = [json.loads(line) for line in SUITE.read_text().splitlines() if line.strip()]
    return [it["messages"][-1]["content"] for it in items[:: max(1, len(items) // limit)]]


async def one(client, prompt: str, stream: bool) -> None:
    messages = [{"role": "user", "content": prompt}]
    if stream:
        got = ""
        async for chunk in await client.chat.completions.create(
            model="auto", messages=messages, stream=True, max_tokens=32
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                got += chunk.choices[0].delta.content
    else:
        await client.chat.completions.create(model="auto", messages=messages, max_tokens=32)


async def drive(port: int, rate: float, duration: float, window: float, pid: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=30)
    prompts = load_prompts()
    samples: list[tuple[float, float, bool]] = []  # (start offset, latency, ok)
    errors: list[str] = []
    rss: list[tuple[float, float]] = [(0.0, rss_mb(pid))]
    t0 = time.monotonic()

    async def timed(i: int) -> None:
        start = time.monotonic()
        try:
            await one(client, prompts[i % len(prompts)], stream=i % 3 == 0)
            samples.append((start - t0, time.monotonic() - start, True))
        except Exception as exc:  # noqa: BLE001 - a soak counts every failure, whatever its kind
            samples.append((start - t0, time.monotonic() - start, False))
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    tasks = []
    i = 0
    while (now := time.monotonic() - t0) < duration:
        tasks.append(asyncio.create_task(timed(i)))
        i += 1
        if now - rss[-1][0] >= window:
            rss.append((now, rss_mb(pid)))
        await asyncio.sleep(max(0.0, i / rate - (time.monotonic() - t0)))
    await asyncio.gather(*tasks)
    rss.append((time.monotonic() - t0, rss_mb(pid)))
    await client.close()
    return {"samples": samples, "errors": errors, "rss": rss}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


def report(res: dict, window: float) -> None:
    samples = res["samples"]
    print(f"{'window':>12}{'requests':>10}{'errors':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    end = max((s[0] for s in samples), default=0.0)
    w = 0.0
    while w <= end:
        part = [s for s in samples if w <= s[0] < w + window]
        lat = [s[1] for s in part if s[2]]
        bad = sum(1 for s in part if not s[2])
        print(
            f"{f'{w:.0f}-{w + window:.0f}s':>12}{len(part):>10}{bad:>8}"
            f"{pct(lat, 0.5):>9.1f}{pct(lat, 0.9):>9.1f}{pct(lat, 0.99):>9.1f}"
        )
        w += window
    for e in sorted(set(res["errors"]))[:10]:
        print("error:", e)
    lat = [s[1] for s in samples if s[2]]
    rss0, rss1 = res["rss"][0][1], res["rss"][-1][1]
    peak = max(r[1] for r in res["rss"])
    # RSS is compared from the end of the first window: the first requests warm caches and pools
    base = res["rss"][1][1] if len(res["rss"]) > 2 else rss0
    growth = (rss1 - base) / base * 100
    print(
        f"RSS: start {rss0:.0f} MB, after first window {base:.0f} MB, end {rss1:.0f} MB, peak {peak:.0f} MB"
    )
    print(
        f"requests={len(samples)} errors={len(res['errors'])} p50_ms={pct(lat, 0.5):.1f} "
        f"p99_ms={pct(lat, 0.99):.1f} rss_start_mb={rss0:.0f} rss_end_mb={rss1:.0f} "
        f"rss_growth_pct={growth:.1f} mean_rps={len(samples) / max(end, 1e-9):.2f} "
        f"median_latency_ms={statistics.median(lat) * 1000 if lat else float('nan'):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per report row")
    parser.add_argument("--policy", help="policy file (default: the embedded default)")
    args = parser.parse_args()
    port = free_port()
    argv = [str(ROOT / ".venv" / "bin" / "bitrate"), "serve", "--port", str(port), "--log-level", "warning"]
    if args.policy:
        argv += ["--policy", args.policy]
    proc = subprocess.Popen(argv, start_new_session=True, cwd=ROOT)
    try:
        wait_ready(port, proc)
        res = asyncio.run(drive(port, args.rate, args.duration, args.window, proc.pid))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    report(res, args.window)
    sys.exit(1 if res["errors"] else 0)


if __name__ == "__main__":
    main()
