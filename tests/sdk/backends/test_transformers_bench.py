"""bench/gpu_check.py, the script a GPU-lent session runs in one go, proven here on the CPU with
a tiny random model: every path runs and the last line carries every figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_and_prints_its_line():
    argv = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--dtype", "float32"]
    argv += ["--shape", "tiny", "--threads", "1", "--max-tokens", "6", "--rounds", "1"]
    argv += ["--batches", "1", "4", "--streams", "1", "4", "--gateway", "4"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    line = dict(pair.split("=") for pair in out.stdout.strip().splitlines()[-1].split())
    for key in ("generate_1", "generate_4", "bitrate_1", "bitrate_4", "gateway_4"):
        assert float(line[key]) > 0, key
    assert {"bitrate_vs_generate_4", "gateway_vs_inprocess_4"} <= line.keys()
    same, checked = map(int, line["same_answers"].split("/"))
    assert checked == 1 + 4 + 4 and same == checked, "greedy answers equal generate's on every path"
