"""Hint flood: what distinct caller-chosen task hints cost the gateway in memory and in ``/metrics``.

Starts an nginx fake upstream (``bench/upstream/nginx.conf.template``) and ``bitrate serve``
over it (route ``auto``: detectors ``hint`` and ``rules``, the rule task ``chat`` and the
pinned task ``code``), all on 127.0.0.1, then sends, with a plain HTTP client:

1. ``--requests`` chat calls, each with a distinct ``x-bitrate-task`` hint of ``--hint-kib`` KiB;
2. ``--short`` chat calls, each with a distinct short hint (``t-00001``...), which are valid;
3. one call hinting the known task ``code``.

After each phase it reads the gateway's RSS (the process and its children) and ``GET /metrics``:
its size, and how many ``bitrate_requests_total`` series it holds. Every process is started
here and stopped by PID. Ends with one ``key=value`` line.

    .venv/bin/python bench/hint_flood.py --requests 1000 --hint-kib 256 --short 3000
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_overhead import ROOT, Server, children, free_port, start, start_nginx  # noqa: E402

POLICY = """\
version: 1
models:
  student: {{backend: openai, base_url: "http://127.0.0.1:{port}/json/v1", model: fake, max_retries: 0}}
  frontier: {{backend: openai, base_url: "http://127.0.0.1:{port}/json/v1", model: fake, max_retries: 0}}
routes:
  auto:
    student: student
    frontier: frontier
    unknown: student
    tasks: {{detect: [hint, rules], rules: [{{match: "(?i)quick", task: chat}}]}}
    pin: {{code: frontier}}
"""
BODY = b'{"model":"auto","messages":[{"role":"user","content":"Say hello"}],"max_tokens":8}'
SERIES = re.compile(rb"^bitrate_requests_total\{", re.MULTILINE)


@dataclass
class Row:
    """One phase's outcome."""

    phase: str
    requests: int
    statuses: Counter[int]
    rss_mb: float
    metrics_bytes: int
    series: int


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MB."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", text)
        total += int(match.group(1)) if match else 0
    return total / 1024


async def send(client: httpx.AsyncClient, hints: Sequence[str | None], concurrency: int) -> Counter[int]:
    """POST one chat call per hint, ``concurrency`` at a time; the statuses seen (0: no answer)."""
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    queue = iter(hints)

    async def worker() -> None:
        for hint in queue:
            headers = {"content-type": "application/json"}
            if hint is not None:
                headers["x-bitrate-task"] = hint
            try:
                reply = await client.post("/v1/chat/completions", content=BODY, headers=headers)
                statuses[reply.status_code] += 1
            except httpx.HTTPError as exc:
                statuses[0] += 1
                errors[type(exc).__name__] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    for name, count in errors.items():
        print(f"  no answer read: {name} x{count}")
    return statuses


async def scrape(client: httpx.AsyncClient) -> bytes:
    reply = await client.get("/metrics")
    reply.raise_for_status()
    return reply.content


async def phase(
    client: httpx.AsyncClient, gw: Server, name: str, hints: Sequence[str | None], concurrency: int
) -> tuple[Row, bytes]:
    statuses = await send(client, hints, concurrency)
    await asyncio.sleep(0.5)  # let the gateway finish its bookkeeping before reading its memory
    text = await scrape(client)
    row = Row(name, len(hints), statuses, rss_mb(gw.proc.pid), len(text), len(SERIES.findall(text)))
    return row, text


async def drive(gw: Server, args: argparse.Namespace) -> list[Row]:
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=timeout) as client:
        rows = [(await phase(client, gw, "warm-up, no hint", [None] * 50, args.concurrency))[0]]
        size = args.hint_kib * 1024
        long_hints = [f"{i:08d}" + "x" * (size - 8) for i in range(args.requests)]
        rows.append((await phase(client, gw, f"{args.hint_kib} KiB hints", long_hints, args.concurrency))[0])
        del long_hints
        short = [f"t-{i:05d}" for i in range(args.short)]
        rows.append((await phase(client, gw, "short distinct hints", short, args.concurrency))[0])
        row, text = await phase(client, gw, "known task 'code'", ["code"], 1)
        rows.append(row)
        args.code_labelled = b'task="code"' in text
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"{'phase':<24}{'requests':>9}  {'statuses':<22}{'rss MB':>9}{'/metrics bytes':>16}{'series':>8}")
    for r in rows:
        statuses = ",".join(f"{k}x{v}" for k, v in sorted(r.statuses.items()))
        print(
            f"{r.phase:<24}{r.requests:>9}  {statuses:<22}{r.rss_mb:>9.1f}{r.metrics_bytes:>16}{r.series:>8}"
        )
    base, flood, short = rows[0], rows[1], rows[2]
    print(
        f"requests={flood.requests} hint_kib={args.hint_kib} "
        f"flood_statuses={','.join(f'{k}x{v}' for k, v in sorted(flood.statuses.items()))} "
        f"rss_growth_mb={flood.rss_mb - base.rss_mb:.1f} metrics_bytes={flood.metrics_bytes} "
        f"short_hints={short.requests} short_rss_growth_mb={short.rss_mb - base.rss_mb:.1f} "
        f"series_after_short={short.series} metrics_bytes_after_short={short.metrics_bytes} "
        f"known_task_labelled={str(args.code_labelled).lower()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="calls with a distinct long hint")
    parser.add_argument("--hint-kib", type=int, default=256, help="size of each long hint, KiB")
    parser.add_argument("--short", type=int, default=3000, help="calls with a distinct short hint")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight at once")
    args = parser.parse_args()
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="hint-flood-") as tmp:
        workdir = Path(tmp)
        try:
            nginx = start_nginx(workdir)
            servers.append(nginx)
            policy = workdir / "policy.yaml"
            policy.write_text(POLICY.format(port=nginx.port))
            port = free_port()
            bitrate = str(ROOT / ".venv" / "bin" / "bitrate")
            argv = [bitrate, "serve", "--policy", str(policy), "--port", str(port), "--log-level", "warning"]
            gw = start("bitrate", argv, port, workdir)
            servers.append(gw)
            time.sleep(0.5)
            rows = asyncio.run(drive(gw, args))
        except (RuntimeError, subprocess.SubprocessError) as exc:
            sys.exit(f"hint_flood: {exc}")
        finally:
            for server in reversed(servers):
                server.stop()
    report(rows, args)


if __name__ == "__main__":
    main()
