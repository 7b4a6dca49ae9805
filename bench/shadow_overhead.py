"""What shadow traffic costs the caller, and what a shadow overload costs the gateway.

1. **Latency.** Three ``bitrate serve`` gateways over nginx's instant ``/json`` upstream
   (``bench/upstream/nginx.conf.template``), the same policy but for ``shadow``: ``off``
   (``spot_check: 0``), ``on`` (``spot_check: 1.0``: every answer spot-checked against the
   frontier, also nginx; agreement grader; SQLite store; the live work on the gateway's event
   loop, the default) and ``isolated`` (the same with ``live.isolate: true``: in a child
   process). First the most each answers (wrk, closed loop, c=8) and the CPU per answered
   request of the gateway's own process and of it with its live worker; then callers at steady
   rates, ``--load`` (default 0.1, 0.25, 0.5) times the shadow-off gateway's most, open loop,
   on each gateway and on nginx directly in turn (the order reversed every other round, so
   drift on this shared machine hits all alike). Reported: p50/p90/p99 of each and the ratio
   of the p50s (shadow on / off).
2. **Overload.** A gateway whose frontier (the spot checks' side) is ``bench/upstream/slow.py``,
   each answer ``--slow-ms`` late, with ``max_concurrency`` M: shadow capacity M / slow. The
   bench drives caller requests open-loop at ``--rate`` R = 10 x that capacity for
   ``--overload-s`` seconds and samples every second the shadow queue (``/metrics``), the drops
   and the gateway's RSS (with its live worker). Reported: the queue's largest length against
   its cap, jobs dropped, spot checks done, RSS at the start of the overload, its middle and
   its end.

Every process is started here and stopped by PID. Ends with one ``key=value`` line.

    .venv/bin/python bench/shadow_overhead.py --duration 5 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_overhead as go  # noqa: E402

ROOT, BENCH = go.ROOT, go.BENCH
PROMPT = "Say: the quick brown fox"


def policy(
    workdir: Path, name: str, student: str, frontier: str, shadow: str, isolate: str = "false"
) -> Path:
    """Route ``auto`` over two models; the rule names the task ``chat``, which the student serves
    (``uncertain: student``), spot-checked as ``shadow`` says."""
    text = f"""\
version: 1
models:
  student: {{backend: openai, base_url: "{student}", model: fake, max_retries: 0}}
  frontier: {{backend: openai, base_url: "{frontier}", model: fake, max_retries: 0, timeout: 30}}
routes:
  auto:
    student: student
    frontier: frontier
    uncertain: student
    tasks: {{detect: [rules], rules: [{{match: "(?i)quick", task: chat}}]}}
    shadow: {shadow}
live:
  store: {workdir / (name + ".sqlite")}
  refresh_seconds: 2
  isolate: {isolate}
"""
    path = workdir / f"{name}.yaml"
    path.write_text(text)
    return path


def start_gateway(workdir: Path, name: str, policy_path: Path) -> go.Server:
    port = go.free_port()
    argv = [str(ROOT / ".venv" / "bin" / "bitrate"), "serve", "--policy", str(policy_path)]
    return go.start(name, [*argv, "--port", str(port), "--log-level", "warning"], port, workdir)


def url(server: go.Server) -> str:
    return f"http://127.0.0.1:{server.port}/v1/chat/completions"


def scrape(server: go.Server) -> dict[str, float]:
    """The shadow series of a gateway's ``/metrics``: name{labels} -> value."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.findall(r"^(bitrate_(?:shadow|live)_\w+(?:\{[^}]*\})?) ([0-9.e+-]+)$", text, re.M)
    return {name: float(value) for name, value in found}


def series(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


# ------------------------------------------------------------------ 1. latency


SHADOWED = ("on", "isolated")
"""The gateways with every answer spot-checked: on the gateway's event loop (the default), and in
its child process (``live.isolate: true``)."""


def latency(args: argparse.Namespace, workdir: Path, servers: list[go.Server]) -> dict[str, float]:
    nginx = go.start_nginx(workdir)
    servers.append(nginx)
    up = f"http://127.0.0.1:{nginx.port}/json/v1"
    shadow = "{spot_check: 1.0, max_concurrency: 8, queue_size: 1024, max_spend_per_hour: null}"
    gateways = {
        "off": start_gateway(workdir, "off", policy(workdir, "off", up, up, "{spot_check: 0.0}")),
        "on": start_gateway(workdir, "on", policy(workdir, "on", up, up, shadow)),
        "isolated": start_gateway(
            workdir, "isolated", policy(workdir, "isolated", up, up, shadow, isolate="true")
        ),
    }
    servers += gateways.values()
    paths = {
        "direct": (f"{up}/chat/completions", "fake"),
        **{n: (url(g), "auto") for n, g in gateways.items()},
    }
    for target, model in paths.values():  # warm up: connection pools, caches
        go.run_wrk(target, go.body(model, False), 4, 1.0)
    busy = [gateways[n] for n in SHADOWED]
    max_rps, cpu = saturation(args, paths, gateways)
    out = {f"max_rps_{name}": rps for name, rps in max_rps.items()}
    for name, (own, total) in cpu.items():
        out[f"cpu_us_{name}_gateway"], out[f"cpu_us_{name}_total"] = own, total
    loads = [float(x) for x in args.load.split(",")]
    runs: dict[tuple[float, str], list[float]] = {}
    for rnd in range(args.rounds):  # the callers' latency at steady loads (open loop)
        for load in loads:
            rate = load * max_rps["off"]
            order = list(paths) if rnd % 2 == 0 else list(paths)[::-1]
            print(f"round {rnd + 1}/{args.rounds}: {rate:.0f} requests/s", file=sys.stderr)
            for name in order:
                target, model = paths[name]
                runs.setdefault((load, name), []).extend(
                    asyncio.run(drive(target, rate, args.duration, model=model))
                )
                settle(busy)
    saturated = ", ".join(f"{n} {max_rps[n]:.0f}/s ({max_rps[n] / max_rps['off']:.2f})" for n in SHADOWED)
    print(f"\nsaturated (wrk c=8, closed loop): shadow off {max_rps['off']:.0f}/s; on: {saturated}")
    print("CPU per answered request (us): the gateway's own process / with its live worker")
    for name, (own, total) in cpu.items():
        print(f"  {name:<8}{own:>8.0f}{total:>8.0f}")
    print(f"steady loads (open loop, {args.rounds} rounds of {args.duration:g}s each; latency in ms):")
    print(f"{'load':>6}{'req/s':>7}{'path':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'answers':>9}{'p50 / off':>11}")
    for load in loads:
        p50 = {}
        for name in paths:
            values = sorted(runs[(load, name)])
            p50[name], p90, p99 = (values[int(q * (len(values) - 1))] for q in (0.5, 0.9, 0.99))
            ratio = f"{p50[name] / p50['off']:.3f}" if name in SHADOWED else ""
            print(
                f"{load:>6g}{load * max_rps['off']:>7.0f}{name:>8}{p50[name]:>8.3f}{p90:>8.3f}{p99:>8.3f}"
                f"{len(values):>9}{ratio:>11}"
            )
        for name in SHADOWED:
            tag = "" if name == "on" else "_isolated"
            out[f"p50_ratio{tag}_at_{load:g}"] = p50[name] / p50["off"]
            added = (p50[name] - p50["direct"]) / max(p50["off"] - p50["direct"], 1e-3)
            out[f"added_p50_ratio{tag}_at_{load:g}"] = added
    for name in SHADOWED:
        checked = scrape(gateways[name])
        out[f"spot_checks_{name}"] = series(
            checked, 'bitrate_shadow_calls_total{direction="spot_check",outcome="ok"'
        )
        out[f"spot_check_drops_{name}"] = series(checked, "bitrate_shadow_drops_total")
        print(
            f"{name}: spot checks graded {out[f'spot_checks_{name}']:.0f}, "
            f"dropped {out[f'spot_check_drops_{name}']:.0f}"
        )
    return out


def settle(servers: list[go.Server]) -> None:
    """Wait until each shadowing gateway (and its live worker) finished its spot checks."""
    for server in servers:
        go.settle(server)


def own_cpu(server: go.Server) -> float:
    """User + system CPU seconds of the gateway's own process (not its live worker)."""
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def saturation(
    args: argparse.Namespace, paths: dict[str, tuple[str, str]], gateways: dict[str, go.Server]
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """The most each gateway answers (wrk, closed loop, c=8), medians over rounds; and the CPU
    per answered request (us) of the gateway's own process and of it with its live worker."""
    saturated: dict[str, list[float]] = {}
    cpu: dict[str, list[tuple[float, float]]] = {}
    names = ["off", *SHADOWED]
    busy = [gateways[n] for n in SHADOWED]
    for rnd in range(args.rounds):
        for name in names if rnd % 2 == 0 else names[::-1]:
            target, model = paths[name]
            server = gateways[name]
            own0, all0 = own_cpu(server), server.cpu_seconds()
            result = go.run_wrk(target, go.body(model, False), 8, args.duration)
            settle(busy)  # counted until idle: the spot checks a run left queued are its cost too
            n = max(result["requests"], 1)
            cpu.setdefault(name, []).append(
                ((own_cpu(server) - own0) / n * 1e6, (server.cpu_seconds() - all0) / n * 1e6)
            )
            saturated.setdefault(name, []).append(result["rps"])
    med = statistics.median
    per_request = {
        name: (med(c[0] for c in values), med(c[1] for c in values)) for name, values in cpu.items()
    }
    return {name: med(values) for name, values in saturated.items()}, per_request


# ------------------------------------------------------------------ 2. overload


async def drive(
    target: str, rate: float, seconds: float, *, model: str = "auto", sample: Callable[[], None] | None = None
) -> list[float]:
    """Caller requests open-loop at ``rate`` per second for ``seconds`` (``sample()`` each second);
    the latencies (ms) of those answered with a 200."""
    latencies: list[float] = []
    payload = go.body(model, False)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:

        async def one() -> None:
            started = time.perf_counter()
            async with session.post(target, data=payload, headers={"content-type": "application/json"}) as r:
                await r.read()
                if r.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)

        tasks: set[asyncio.Task[None]] = set()
        start, next_sample = time.monotonic(), 1.0
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if sample is not None and time.monotonic() - start >= next_sample:
                await asyncio.to_thread(sample)
                next_sample += 1.0
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


def overload(args: argparse.Namespace, workdir: Path, servers: list[go.Server]) -> dict[str, float]:
    nginx = go.start_nginx(workdir)
    port = go.free_port()
    slow = go.start(
        "slow", [sys.executable, str(BENCH / "upstream" / "slow.py"), "--port", str(port), "--delay-ms",
                 str(args.slow_ms)], port, workdir,
    )  # fmt: skip
    servers += [nginx, slow]
    concurrency = max(1, round(args.rate * args.slow_ms / 1000 / 10))  # capacity: rate / 10
    capacity = concurrency / (args.slow_ms / 1000)
    limits = f"max_concurrency: {concurrency}, queue_size: {args.queue}, max_spend_per_hour: null"
    shadow = f"{{spot_check: 1.0, {limits}}}"
    path = policy(
        workdir, "overload", f"http://127.0.0.1:{nginx.port}/json/v1", f"http://127.0.0.1:{port}/v1", shadow
    )
    gateway = start_gateway(workdir, "overload", path)
    servers.append(gateway)
    go.run_wrk(url(gateway), go.body("auto", False), 2, 1.0)  # warm up, and a first queue
    samples: list[tuple[float, float, float, float]] = []  # (t, queue, drops, rss MB)
    t0 = time.monotonic()

    def sample() -> None:
        m = scrape(gateway)
        drops = series(m, 'bitrate_shadow_drops_total{reason="queue_full"')
        samples.append(
            (
                time.monotonic() - t0,
                m.get('bitrate_shadow_queue{route="auto"}', 0.0),
                drops,
                go.rss_mb(gateway),
            )
        )

    sample()
    latencies = asyncio.run(drive(url(gateway), args.rate, args.overload_s, sample=sample))
    sample()
    end = scrape(gateway)
    print(
        f"\noverload: callers at {args.rate:g}/s for {args.overload_s:g}s; spot checks at most "
        f"{capacity:g}/s ({concurrency} at once, {args.slow_ms:g} ms each): "
        f"{args.rate / capacity:g}x overload; "
        f"queue_size {args.queue}"
    )
    print(f"{'t (s)':>7}{'queue':>7}{'drops':>9}{'RSS MB':>9}")
    for t, queue, drops, rss in samples:
        print(f"{t:>7.0f}{queue:>7.0f}{drops:>9.0f}{rss:>9.1f}")
    rss = [s[3] for s in samples]
    steady = [s for s in samples if s[0] >= 5.0] or samples
    done = series(end, 'bitrate_shadow_calls_total{direction="spot_check",outcome="ok"')
    out = {
        "overload_x": args.rate / capacity,
        "overload_queue_cap": float(args.queue),
        "overload_queue_max": max(s[1] for s in samples),
        "overload_drops": samples[-1][2],
        "overload_spot_checks": done,
        "overload_requests": float(len(latencies)),
        "overload_caller_p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "overload_rss_start_mb": steady[0][3],
        "overload_rss_mid_mb": steady[len(steady) // 2][3],
        "overload_rss_end_mb": rss[-1],
    }
    print(
        f"callers answered {len(latencies)} (p50 {out['overload_caller_p50_ms']:.2f} ms); spot checks done "
        f"{done:.0f}; dropped {out['overload_drops']:.0f}; queue max {out['overload_queue_max']:.0f} / "
        f"{args.queue}; RSS from t=5s {out['overload_rss_start_mb']:.1f} -> "
        f"{out['overload_rss_mid_mb']:.1f} -> "
        f"{out['overload_rss_end_mb']:.1f} MB"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=6.0, help="Seconds per run.")
    parser.add_argument(
        "--load", default="0.1,0.25,0.5", help="Steady loads, as shares of the shadow-off gateway's most."
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rate", type=float, default=200.0, help="Caller requests per second in the overload."
    )
    parser.add_argument("--slow-ms", type=float, default=500.0, help="The slow frontier's answer time.")
    parser.add_argument("--queue", type=int, default=256, help="shadow.queue_size in the overload.")
    parser.add_argument("--overload-s", type=float, default=30.0)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-overload", action="store_true")
    args = parser.parse_args()
    servers: list[go.Server] = []
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bitrate-shadow-") as tmp:
        try:
            if not args.skip_latency:
                (Path(tmp) / "latency").mkdir()
                results |= latency(args, Path(tmp) / "latency", servers)
            for server in servers:
                server.stop()
            servers.clear()
            if not args.skip_overload:
                (Path(tmp) / "overload").mkdir()
                results |= overload(args, Path(tmp) / "overload", servers)
        finally:
            for server in reversed(servers):
                server.stop()
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in results.items()))


if __name__ == "__main__":
    main()
