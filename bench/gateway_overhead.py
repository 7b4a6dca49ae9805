"""What a gateway adds: bitrate vs a bare Python pass-through vs LiteLLM, one run, same load.

An nginx fake upstream answers instantly (fixed completion, fixed SSE stream), wrk
drives each path in turn, the paths taking turns on every measurement (mode x
concurrency, the order reversed every other round) so drift on this shared machine
hits every path alike:

- ``direct``: wrk straight to nginx (the floor of the setup);
- ``bare``: ``bench/bare_proxy.py``, a ~50-line Starlette + aiohttp pass-through;
- ``bitrate-auto``: the gateway, route ``auto`` with the task from a regex rule;
- ``bitrate-direct``: the gateway, a direct model name;
- ``litellm``: LiteLLM's proxy from ``bench/.litellm-venv`` when installed there
  (``python3 -m venv bench/.litellm-venv && bench/.litellm-venv/bin/pip install 'litellm[proxy]'``).

Reported per path and mode (json, sse): added p50/p99 latency over ``direct`` at
concurrency 1 and 8, max requests/s (c=64), CPU time per request and peak RSS of the
proxy process. Every process is started here and stopped by PID; every load is
bounded by ``--duration``. Ends with one ``key=value`` line.

    .venv/bin/python bench/gateway_overhead.py --duration 8 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "upstream"))
from drip import ttft  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LITELLM = BENCH / ".litellm-venv" / "bin" / "litellm"
PROMPT = "Say: the quick brown fox"
MODES = ("json", "sse", "drip")
MAX_CONNS = 64
"""wrk connections for the maximum requests/s (and the CPU time per request)."""
"""Upstream paths: a fixed completion, a fixed SSE body (both nginx), the drip stream."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} not listening after {timeout}s")


@dataclass
class Server:
    """One process we started; stopped by PID."""

    name: str
    proc: subprocess.Popen
    port: int

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children, from /proc."""
        total = 0.0
        for pid in [self.proc.pid, *children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def peak_rss_mb(self) -> float:
        peak = 0
        for pid in [self.proc.pid, *children(self.proc.pid)]:
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmHWM:\s+(\d+) kB", text)
            peak += int(match.group(1)) if match else 0
        return peak / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
                out.extend(children(int(entry.name)))
    return out


def start(name: str, argv: list[str], port: int, workdir: Path, env: dict | None = None) -> Server:
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    server = Server(name, proc, port)
    try:
        wait_port(port, proc)
    except RuntimeError:
        server.stop()
        raise RuntimeError(f"{name} failed to start; see {workdir / (name + '.log')}") from None
    return server


def start_drip(workdir: Path, gap_ms: float) -> Server:
    """The drip upstream (``bench/upstream/drip.py``): streams at a model's pace."""
    port = free_port()
    argv = [sys.executable, str(BENCH / "upstream" / "drip.py"), "--port", str(port), "--gap-ms", str(gap_ms)]
    return start("drip", argv, port, workdir)


def start_nginx(workdir: Path, drip_port: int = 9) -> Server:
    port = free_port()
    ndir = workdir / "nginx"
    ndir.mkdir()
    conf = (BENCH / "upstream" / "nginx.conf.template").read_text()
    conf = conf.replace("{DIR}", str(ndir)).replace("{PORT}", str(port)).replace("{DRIP}", str(drip_port))
    (ndir / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return start("nginx", [nginx, "-p", str(ndir), "-c", str(ndir / "nginx.conf")], port, workdir)


def bitrate_policy(workdir: Path, upstream: int, embedded: bool = False) -> Path:
    """Two fake models per mode, a route ``auto`` whose task comes from a rule, a safe profile.
    ``embedded``: on top of the shipped default policy (its models load at startup)."""
    profile = {
        "schema_version": 1,
        "created_at": "2026-11-28T00:00:00Z",
        "method": "import",
        "student": {"name": "up", "model": "fake", "backend": "openai"},
        "frontier": {"name": "up2", "model": "fake", "backend": "openai"},
        "suite": {"names": ["bench"], "sha256": "0" * 64, "n_items": 100},
        "tolerance": {"max_loss": 0.05, "confidence": 0.9},
        "categories": {},
    }
    (workdir / "profile.json").write_text(json.dumps(profile))
    models, routes = [], []
    for mode in MODES:
        base = f"http://127.0.0.1:{upstream}/{mode}/v1"
        for name in (f"{mode}-student", f"{mode}-frontier"):
            models.append(f"  {name}: {{backend: openai, base_url: {base}, model: fake, max_retries: 0}}")
        routes.append(
            f"  auto-{mode}:\n    student: {mode}-student\n    frontier: {mode}-frontier\n"
            f"    profile: profile.json\n    unknown: student\n"
            f"    tasks: {{detect: [hint, rules], rules: [{{match: '(?i)quick', task: chat}}]}}"
        )
    text = "version: 1\nmodels:\n" + "\n".join(models) + "\nroutes:\n" + "\n".join(routes) + "\n"
    if embedded:
        text = with_embedded_default(text)
    path = workdir / "policy.yaml"
    path.write_text(text)
    return path


def with_embedded_default(bench_policy: str) -> str:
    """The shipped default policy (embedded teacher, student, route ``auto``) plus the bench's."""
    import yaml

    from sdk import embedded

    default = yaml.safe_load((embedded.EMBEDDED_DIR / "default_policy.yaml").read_text())
    extra = yaml.safe_load(bench_policy)
    default["models"].update(extra["models"])
    default["routes"].update(extra["routes"])
    return yaml.safe_dump(default, sort_keys=False)


def litellm_config(workdir: Path, upstream: int) -> Path:
    lines = ["model_list:"]
    for mode in MODES:
        lines += [
            f"  - model_name: {mode}-direct",
            "    litellm_params:",
            "      model: openai/fake",
            f"      api_base: http://127.0.0.1:{upstream}/{mode}/v1",
            "      api_key: bench-not-a-secret",
        ]
    path = workdir / "litellm.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Target:
    """How wrk reaches one path in one mode."""

    path: str
    server: Server | None
    url: dict[str, str]  # mode -> URL
    model: dict[str, str]  # mode -> model name in the body
    results: dict = field(default_factory=dict)


def body(model: str, stream: bool) -> str:
    return json.dumps(
        {
            "model": model,
            "stream": stream,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    )


WRK_LAT = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url: str, payload: str, conns: int, duration: float) -> dict:
    threads = 1 if conns == 1 else 2
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "upstream" / "post.lua"),
        url,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "BENCH_BODY": payload}, timeout=duration + 30
    ).stdout
    lat = {p: float(v) * UNIT[u] for p, v, u in WRK_LAT.findall(out)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    nerr = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return {"p50": lat.get("50"), "p99": lat.get("99"), "rps": rps, "requests": reqs, "errors": nerr}


def settle(server: Server | None, quiet: float = 0.05, limit: float = 15.0) -> None:
    """Wait until ``server`` uses under ``quiet`` of a core: a saturated proxy (LiteLLM at c=64)
    goes on working through its backlog after wrk stops, and would slow the next path."""
    if server is None:
        return
    deadline, last = time.monotonic() + limit, server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = server.cpu_seconds()
        if now - last < quiet * 0.2:
            return
        last = now


def measure(target: Target, mode: str, conns: int, duration: float) -> dict:
    """One wrk run; for the c=64 (max req/s) run also the proxy's CPU time per request
    (counted until the proxy is idle again, so work left queued when wrk stops is included)."""
    url, payload = target.url[mode], body(target.model[mode], mode == "sse")
    cpu0 = target.server.cpu_seconds() if target.server else 0.0
    res = run_wrk(url, payload, conns, duration)
    settle(target.server)
    cpu1 = target.server.cpu_seconds() if target.server else 0.0
    if target.server and conns == MAX_CONNS:
        res["cpu_us"] = (cpu1 - cpu0) / max(res["requests"], 1) * 1e6
    return res


def aggregate(runs: list[dict]) -> dict:
    med = statistics.median
    out = {}
    for conns in ("c1", "c8", "max"):
        out[conns] = {k: med([r[conns][k] for r in runs]) for k in ("p50", "p99", "rps")}
        out[conns]["errors"] = sum(r[conns]["errors"] for r in runs)
    cpu = [r["cpu_us"] for r in runs if r["cpu_us"] is not None]
    out["cpu_us"] = med(cpu) if cpu else None
    return out


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def report(targets: list[Target]) -> dict:
    direct = {m: targets[0].results[m] for m in ("json", "sse")}
    summary = {}
    print(
        f"\n{'path':<15}{'mode':<6}{'+p50 c1':>9}{'+p99 c1':>9}{'+p50 c8':>9}{'+p99 c8':>9}"
        f"{'max rps':>9}{'cpu us/req':>11}{'peak MB':>9}{'errors':>8}"
    )
    for t in targets:
        for mode in ("json", "sse"):
            r = t.results[mode]
            added = {f"{k}_{c}": r[c][k] - direct[mode][c][k] for c in ("c1", "c8") for k in ("p50", "p99")}
            rss = t.server.peak_rss_mb() if t.server and t.path != "direct" else None
            errors = r["c1"]["errors"] + r["c8"]["errors"] + r["max"]["errors"]
            print(
                f"{t.path:<15}{mode:<6}{fmt(added['p50_c1']):>9}{fmt(added['p99_c1']):>9}"
                f"{fmt(added['p50_c8']):>9}{fmt(added['p99_c8']):>9}{fmt(r['max']['rps'], '.0f'):>9}"
                f"{fmt(r['cpu_us'], '.0f'):>11}{fmt(rss, '.0f'):>9}{errors:>8}"
            )
            summary[(t.path, mode)] = {
                **added,
                "rps": r["max"]["rps"],
                "cpu_us": r["cpu_us"],
                "rss": rss,
                "errors": errors,
            }
    print("(added latency in ms over direct-to-upstream in the same run; medians over rounds)")
    return summary


def ratios(summary: dict) -> str:
    def get(path: str, mode: str, key: str) -> float | None:
        return summary.get((path, mode), {}).get(key)

    parts = []
    for path in ("bitrate-auto", "bitrate-direct"):
        for key in ("p50_c1", "p50_c8"):
            b, g = get("bare", "json", key), get(path, "json", key)
            if b and g is not None:
                parts.append(f"{path}_{key}_vs_bare={g / max(b, 1e-3):.2f}")
        b, g = get("bare", "json", "rps"), get(path, "json", "rps")
        if b and g:
            parts.append(f"{path}_rps_vs_bare={g / b:.2f}")
        lite = get("litellm", "json", "rps")
        if lite and g:
            parts.append(f"{path}_rps_vs_litellm={g / lite:.1f}")
        b, g = get("bare", "sse", "p50_c1"), get(path, "sse", "p50_c1")
        if b and g is not None:
            parts.append(f"{path}_sse_p50_c1_vs_bare={g / max(b, 1e-3):.2f}")
        b, g = get("bare", "drip", "p50_c1"), get(path, "drip", "p50_c1")
        if b and g is not None:
            parts.append(f"{path}_ttft_c1_vs_bare={g / max(b, 1e-3):.2f}")
    return " ".join(parts)


def start_bitrate(
    workdir: Path, upstream: int, servers: list[Server], targets: list[Target], embedded: bool = False
) -> None:
    port = free_port()
    policy = bitrate_policy(workdir, upstream, embedded)
    gw = start(
        "bitrate",
        [
            str(ROOT / ".venv" / "bin" / "bitrate"),
            "serve",
            "--policy",
            str(policy),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        port,
        workdir,
    )
    servers.append(gw)
    gurl = f"http://127.0.0.1:{port}/v1/chat/completions"
    targets.append(Target("bitrate-auto", gw, dict.fromkeys(MODES, gurl), {m: f"auto-{m}" for m in MODES}))
    direct = {m: f"{m}-student" for m in MODES}
    targets.append(Target("bitrate-direct", gw, dict.fromkeys(MODES, gurl), direct))


def rss_mb(server: Server) -> float:
    """Resident memory now (VmRSS) of the process and its children, in MB."""
    total = 0
    for pid in [server.proc.pid, *children(server.proc.pid)]:
        try:
            match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        total += int(match.group(1)) if match else 0
    return total / 1024


def soak(workdir: Path, servers: list[Server], seconds: float, slice_s: float = 10.0) -> str:
    """The gateway with the embedded default loaded, at saturation (wrk c=64) for ``seconds``,
    alternating JSON and SSE slices of ``slice_s``; RSS sampled after every slice."""
    nginx = start_nginx(workdir)
    servers.append(nginx)
    targets: list[Target] = []
    start_bitrate(workdir, nginx.port, servers, targets, embedded=True)
    auto, gw = targets[0], targets[0].server
    for mode in ("json", "sse"):
        run_wrk(auto.url[mode], body(auto.model[mode], mode == "sse"), 8, 2.0)
    start_rss = rss_mb(gw)
    samples, requests, errors, rps = [(0.0, start_rss)], 0, 0, []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        mode = ("json", "sse")[len(samples) % 2]
        left = max(1.0, min(slice_s, seconds - (time.monotonic() - t0)))
        res = run_wrk(auto.url[mode], body(auto.model[mode], mode == "sse"), 64, left)
        requests, errors = requests + res["requests"], errors + res["errors"]
        rps.append(res["rps"])
        samples.append((time.monotonic() - t0, rss_mb(gw)))
        print(
            f"soak t={samples[-1][0]:5.0f}s {mode:<4} {res['rps']:7.0f} rps  RSS {samples[-1][1]:.1f} MB",
            file=sys.stderr,
        )
    end_rss, peak = samples[-1][1], gw.peak_rss_mb()
    print(f"\nsoak: {seconds:g}s at c=64, route auto, embedded default loaded")
    print(f"{'t (s)':>8}{'RSS MB':>10}")
    for t, mb in samples:
        print(f"{t:>8.0f}{mb:>10.1f}")
    median_rps = statistics.median(rps)
    print(f"requests {requests}, errors {errors}, median {median_rps:.0f} rps, peak RSS {peak:.1f} MB")
    mid = samples[len(samples) // 2][1]
    return (
        f"soak_seconds={seconds:g} soak_requests={requests} soak_errors={errors} "
        f"soak_rss_start_mb={start_rss:.1f} soak_rss_mid_mb={mid:.1f} soak_rss_end_mb={end_rss:.1f} "
        f"soak_rss_peak_mb={peak:.1f} soak_rss_growth_mb={end_rss - start_rss:.1f}"
    )


def start_paths(args: argparse.Namespace, workdir: Path, servers: list[Server]) -> list[Target]:
    """Every upstream and proxy, started and registered in ``servers`` (stopped by the caller)."""
    drip = start_drip(workdir, args.gap_ms)
    servers.append(drip)
    nginx = start_nginx(workdir, drip.port)
    servers.append(nginx)
    up = f"http://127.0.0.1:{nginx.port}"
    urls = {m: f"{up}/{m}/v1/chat/completions" for m in MODES}
    targets = [Target("direct", nginx, urls, dict.fromkeys(MODES, "fake"))]

    port = free_port()
    argv = [sys.executable, str(BENCH / "bare_proxy.py"), "--upstream", up, "--port", str(port)]
    bare = start("bare", argv, port, workdir)
    servers.append(bare)
    burl = f"http://127.0.0.1:{port}"
    urls = {m: f"{burl}/{m}/v1/chat/completions" for m in MODES}
    targets.append(Target("bare", bare, urls, dict.fromkeys(MODES, "fake")))

    if not args.skip_bitrate:
        start_bitrate(workdir, nginx.port, servers, targets)
    if LITELLM.exists() and not args.skip_litellm:
        targets.append(start_litellm(workdir, nginx.port, servers))
    else:
        print("litellm: not installed in bench/.litellm-venv (or --skip-litellm); skipped")
    return targets


def start_litellm(workdir: Path, upstream: int, servers: list[Server]) -> Target:
    port = free_port()
    cfg = litellm_config(workdir, upstream)
    lite = start(
        "litellm",
        [str(LITELLM), "--config", str(cfg), "--port", str(port), "--num_workers", "1"],
        port,
        workdir,
        env={
            "LITELLM_LOG": "ERROR",
            "DISABLE_SCHEMA_UPDATE": "true",
            # no auth on any path, as for bitrate and the bare proxy
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        },
    )
    servers.append(lite)
    lurl = f"http://127.0.0.1:{port}/v1/chat/completions"
    return Target("litellm", lite, dict.fromkeys(MODES, lurl), {m: f"{m}-direct" for m in MODES})


def compare(args: argparse.Namespace, targets: list[Target]) -> dict:
    """wrk over every path and mode, then the drip TTFT probe. The paths take turns on every
    measurement (mode x concurrency), so two paths' figures are seconds apart, not minutes:
    this machine's speed drifts by tens of percent within minutes."""
    for t in targets:  # warm up every path (connection pools, JIT-less caches)
        for mode in ("json", "sse"):
            run_wrk(t.url[mode], body(t.model[mode], mode == "sse"), 4, 1.0)
        ttft(t.url["drip"], body(t.model["drip"], True), 3)
    runs: dict[tuple[str, str], list[dict]] = {}
    ttfts: dict[str, list[dict]] = {}
    for rnd in range(args.rounds):
        order = targets if rnd % 2 == 0 else targets[::-1]  # nobody always goes first
        for mode in ("json", "sse"):
            per_path: dict[str, dict] = {t.path: {} for t in order}
            for conns in (1, 8, MAX_CONNS):
                print(f"round {rnd + 1}/{args.rounds}: {mode} c={conns}", file=sys.stderr)
                for t in order:
                    res = measure(t, mode, conns, args.duration)
                    per_path[t.path]["cpu_us"] = res.pop("cpu_us", per_path[t.path].get("cpu_us"))
                    per_path[t.path]["max" if conns == MAX_CONNS else f"c{conns}"] = res
            for t in order:
                runs.setdefault((t.path, mode), []).append(per_path[t.path])
        for t in order:
            ttfts.setdefault(t.path, []).append(ttft(t.url["drip"], body(t.model["drip"], True), args.ttft_n))
    for t in targets:
        t.results = {m: aggregate(runs[(t.path, m)]) for m in ("json", "sse")}
    summary = report(targets)
    report_ttft(ttfts, summary, args.gap_ms)
    return summary


def report_ttft(ttfts: dict[str, list[dict]], summary: dict, gap_ms: float) -> None:
    """Time to first token through each path, c=1, with the drip upstream's pace."""
    med = statistics.median
    p50 = {path: med(r["p50"] for r in runs) for path, runs in ttfts.items()}
    p90 = {path: med(r["p90"] for r in runs) for path, runs in ttfts.items()}
    print(f"\nTTFT, c=1, drip upstream ({gap_ms:g} ms between tokens); ms, medians over rounds")
    print(f"{'path':<15}{'TTFT p50':>10}{'TTFT p90':>10}{'+p50':>8}")
    for path in p50:
        added = p50[path] - p50["direct"]
        print(f"{path:<15}{p50[path]:>10.2f}{p90[path]:>10.2f}{added:>8.2f}")
        summary[(path, "drip")] = {"p50_c1": added, "ttft_p50": p50[path]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over all paths")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="drip upstream: pause between tokens")
    parser.add_argument("--ttft-n", type=int, default=40, help="streams per path and round for TTFT")
    parser.add_argument("--skip-bitrate", action="store_true", help="only the reference paths")
    parser.add_argument("--json-out", type=Path, help="write the raw results here")
    parser.add_argument(
        "--soak",
        type=float,
        metavar="SECONDS",
        help="instead: the gateway with the embedded default loaded at saturation for SECONDS; RSS over time",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk nginx-light")

    workdir = Path(tempfile.mkdtemp(prefix="bitrate-bench-"))
    servers: list[Server] = []
    ok = False
    try:
        if args.soak:
            print(soak(workdir, servers, args.soak))
            ok = True
            return
        targets = start_paths(args, workdir, servers)
        summary = compare(args, targets)
        if args.json_out:
            args.json_out.write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in summary.items()}, indent=2))
        print(ratios(summary))
        ok = True
    finally:
        for s in reversed(servers):
            s.stop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
