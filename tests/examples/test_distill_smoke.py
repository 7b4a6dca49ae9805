"""The training script keeps working: ``train.py --smoke`` end to end, a few steps only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "distill" / "train.py"
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("pair")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_writes_both_models_in_the_shipped_layout(smoke_run: tuple[Path, str]) -> None:
    out, _ = smoke_run
    for name in ("teacher", "student"):
        for f in MODEL_FILES:
            assert (out / name / f).is_file(), f"{name}/{f} missing"
        gen = json.loads((out / name / "generation_config.json").read_text())
        assert gen["do_sample"] is False
        assert gen["eos_token_id"] == 1 and gen["pad_token_id"] == 0
        tok_cfg = json.loads((out / name / "tokenizer_config.json").read_text())
        assert "<|assistant|>" in tok_cfg["chat_template"]
        assert tok_cfg["eos_token"] == "<|end|>"


def test_writes_a_probe_suite_with_every_category(smoke_run: tuple[Path, str]) -> None:
    out, _ = smoke_run
    rows = [json.loads(line) for line in (out / "tiny.jsonl").read_text().splitlines()]
    cats = {r["category"] for r in rows}
    assert len(cats) >= 6
    for r in rows:
        assert set(r) == {"id", "category", "messages", "reference", "grader"}
        assert r["id"].startswith(r["category"] + "-")
        assert r["messages"][0]["role"] == "user" and r["grader"] == "exact"


def test_prints_the_table_and_a_summary_line(smoke_run: tuple[Path, str]) -> None:
    _, stdout = smoke_run
    lines = stdout.strip().splitlines()
    assert any(re.match(r"category\s+teacher\s+student", line) for line in lines)
    summary = dict(kv.split("=", 1) for kv in lines[-1].split())
    assert int(summary["student_params"]) <= 0.25 * int(summary["teacher_params"])
    assert float(summary["param_ratio"]) <= 0.25
