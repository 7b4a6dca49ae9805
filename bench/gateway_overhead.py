"""What a gateway adds: bitrate vs a bare Python pass-through vs LiteLLM, one run, same load.

An nginx fake upstream answers instantly (fixed completion, fixed SSE stream), wrk
drives each path in turn, alternating over rounds so drift on this shared machine
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

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LITELLM = BENCH / ".litellm-venv" / "bin" / "litellm"
PROMPT = "Say: the quick brown fox"


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


def start_nginx(workdir: Path) -> Server:
    port = free_port()
    ndir = workdir / "nginx"
    ndir.mkdir()
    conf = (BENCH / "upstream" / "nginx.conf.template").read_text()
    conf = conf.replace("{DIR}", str(ndir)).replace("{PORT}", str(port))
    (ndir / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return start("nginx", [nginx, "-p", str(ndir), "-c", str(ndir / "nginx.conf")], port, workdir)


def bitrate_policy(workdir: Path, upstream: int) -> Path:
    """Two fake models per mode, a route ``auto`` whose task comes from a rule, a safe profile."""
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
    for mode in ("json", "sse"):
        base = f"http://127.0.0.1:{upstream}/{mode}/v1"
        for name in (f"{mode}-student", f"{mode}-frontier"):
            models.append(f"  {name}: {{backend: openai, base_url: {base}, model: fake, max_retries: 0}}")
        routes.append(
            f"  auto-{mode}:\n    student: {mode}-student\n    frontier: {mode}-frontier\n"
            f"    profile: profile.json\n    unknown: student\n"
            f"    tasks: {{detect: [hint, rules], rules: [{{match: '(?i)quick', task: chat}}]}}"
        )
    text = "version: 1\nmodels:\n" + "\n".join(models) + "\nroutes:\n" + "\n".join(routes) + "\n"
    path = workdir / "policy.yaml"
    path.write_text(text)
    return path


def litellm_config(workdir: Path, upstream: int) -> Path:
    lines = ["model_list:"]
    for mode in ("json", "sse"):
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


def measure(target: Target, mode: str, duration: float) -> dict:
    url, payload = target.url[mode], body(target.model[mode], mode == "sse")
    res = {}
    for conns in (1, 8):
        res[f"c{conns}"] = run_wrk(url, payload, conns, duration)
    cpu0 = target.server.cpu_seconds() if target.server else 0.0
    res["max"] = run_wrk(url, payload, 64, duration)
    cpu1 = target.server.cpu_seconds() if target.server else 0.0
    res["cpu_us"] = (cpu1 - cpu0) / max(res["max"]["requests"], 1) * 1e6 if target.server else None
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
            parts.append(f"{path}_ttft_c1_vs_bare={g / max(b, 1e-3):.2f}")
    return " ".join(parts)


def start_bitrate(workdir: Path, upstream: int, servers: list[Server], targets: list[Target]) -> None:
    port = free_port()
    policy = bitrate_policy(workdir, upstream)
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
    targets.append(
        Target("bitrate-auto", gw, {"json": gurl, "sse": gurl}, {"json": "auto-json", "sse": "auto-sse"})
    )
    targets.append(
        Target(
            "bitrate-direct", gw, {"json": gurl, "sse": gurl}, {"json": "json-student", "sse": "sse-student"}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over all paths")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-bitrate", action="store_true", help="only the reference paths")
    parser.add_argument("--json-out", type=Path, help="write the raw results here")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk nginx-light")

    workdir = Path(tempfile.mkdtemp(prefix="bitrate-bench-"))
    servers: list[Server] = []
    ok = False
    try:
        nginx = start_nginx(workdir)
        servers.append(nginx)
        up = f"http://127.0.0.1:{nginx.port}"
        targets = [
            Target(
                "direct",
                nginx,
                {m: f"{up}/{m}/v1/chat/completions" for m in ("json", "sse")},
                {m: "fake" for m in ("json", "sse")},
            )
        ]

        port = free_port()
        bare = start(
            "bare",
            [sys.executable, str(BENCH / "bare_proxy.py"), "--upstream", up, "--port", str(port)],
            port,
            workdir,
        )
        servers.append(bare)
        burl = f"http://127.0.0.1:{port}"
        targets.append(
            Target(
                "bare",
                bare,
                {m: f"{burl}/{m}/v1/chat/completions" for m in ("json", "sse")},
                {m: "fake" for m in ("json", "sse")},
            )
        )

        if not args.skip_bitrate:
            start_bitrate(workdir, nginx.port, servers, targets)

        if LITELLM.exists() and not args.skip_litellm:
            port = free_port()
            cfg = litellm_config(workdir, nginx.port)
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
            targets.append(
                Target(
                    "litellm", lite, {"json": lurl, "sse": lurl}, {"json": "json-direct", "sse": "sse-direct"}
                )
            )
        else:
            print("litellm: not installed in bench/.litellm-venv (or --skip-litellm); skipped")

        for t in targets:  # warm up every path (connection pools, JIT-less caches)
            for mode in ("json", "sse"):
                run_wrk(t.url[mode], body(t.model[mode], mode == "sse"), 4, 1.0)
        runs: dict[tuple[str, str], list[dict]] = {}
        for rnd in range(args.rounds):
            for t in targets:
                for mode in ("json", "sse"):
                    print(f"round {rnd + 1}/{args.rounds}: {t.path} {mode}", file=sys.stderr)
                    runs.setdefault((t.path, mode), []).append(measure(t, mode, args.duration))
        for t in targets:
            t.results = {m: aggregate(runs[(t.path, m)]) for m in ("json", "sse")}
        summary = report(targets)
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
