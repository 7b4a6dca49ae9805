"""IFEval outcomes -> ``profile import``, checked against an independent plain recomputation.

Uses the recorded IFEval results in ``../shared/data/ifeval`` (skipped when absent).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitrate_cli.profile import profile_app
from profiles.ifeval_outcomes import OUTCOMES_FILE, ifeval_outcomes, instruction_group, list_models
from sdk.profile import load_profile
from sdk.stats import PairedCounts, newcombe_paired_interval

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data" / "ifeval"
FRONTIER = "gpt-4o-2024-08-06"
STUDENT = "Qwen__Qwen2.5-0.5B-Instruct-GPTQ-Int4"

pytestmark = pytest.mark.skipif(
    not (DATA / OUTCOMES_FILE).exists(), reason=f"IFEval data not present at {DATA} (../shared/data)"
)


def _plain_recount(mode: str = "strict") -> dict[str, dict[str, int]]:
    """Per category cell counts straight from the gz file, without the module under test."""
    rows = defaultdict(dict)
    with gzip.open(DATA / OUTCOMES_FILE, "rt") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["mode"] == mode and rec["model"] in (FRONTIER, STUDENT):
                rows[rec["key"]][rec["model"]] = rec
    cells = defaultdict(lambda: {"both": 0, "breaks": 0, "fixes": 0, "neither": 0})
    for pair in rows.values():
        f, s = pair[FRONTIER], pair[STUDENT]
        for ident, f_ok, s_ok in zip(
            f["instruction_id_list"], f["follow_instruction_list"], s["follow_instruction_list"], strict=True
        ):
            group = ident.split(":")[1]  # "en:GROUP:name"
            cell = {(True, True): "both", (True, False): "breaks", (False, True): "fixes"}.get((f_ok, s_ok))
            cells[group][cell or "neither"] += 1
    return cells


def test_instruction_group():
    assert instruction_group("en:punctuation:no_comma") == "punctuation"
    assert instruction_group("length_constraints:number_words") == "length_constraints"


def test_list_models_names_both_models_with_modes():
    models = list_models(DATA)
    assert models[FRONTIER] == ["loose", "strict"]
    assert models[STUDENT] == ["loose", "strict"]


def test_import_matches_an_independent_recomputation(tmp_path):
    outcomes_path = tmp_path / "ifeval.jsonl"
    script = REPO / "examples" / "ifeval_outcomes.py"
    done = subprocess.run(
        [sys.executable, str(script), "--data", str(DATA), "--out", str(outcomes_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote 834 outcomes" in done.stdout
    profile_path = tmp_path / "profile.json"
    result = CliRunner().invoke(
        profile_app,
        [
            "import",
            "--outcomes",
            str(outcomes_path),
            "--out",
            str(profile_path),
            "--student-name",
            STUDENT,
            "--frontier-name",
            FRONTIER,
        ],
    )
    assert result.exit_code == 0, result.output
    profile = load_profile(profile_path)
    expected = _plain_recount()
    assert set(profile.categories) == set(expected)
    assert profile.suite.n_items == sum(sum(c.values()) for c in expected.values()) == 834
    for name, cells in expected.items():
        got, n = profile.categories[name], sum(cells.values())
        assert got.n == n
        assert got.frontier_accuracy == pytest.approx((cells["both"] + cells["breaks"]) / n)
        assert got.student_accuracy == pytest.approx((cells["both"] + cells["fixes"]) / n)
        assert got.loss == pytest.approx((cells["breaks"] - cells["fixes"]) / n)
        assert (got.breaks, got.fixes) == (
            pytest.approx(cells["breaks"] / n),
            pytest.approx(cells["fixes"] / n),
        )
        assert got.counts.model_dump() == cells
        low, high = newcombe_paired_interval(PairedCounts(**cells), 0.9)
        assert (got.loss_low, got.loss_high) == (pytest.approx(low), pytest.approx(high))
    # The 0.5B student is far behind gpt-4o on every instruction group.
    assert set(profile.verdicts().values()) == {"unsafe"}
    assert len(profile.evidence) == 834


def test_outcomes_have_unique_ids_and_binary_scores():
    outcomes = ifeval_outcomes(DATA, frontier=FRONTIER, student=STUDENT, mode="strict")
    assert len({o.id for o in outcomes}) == len(outcomes) == 834
    assert {o.student for o in outcomes} | {o.frontier for o in outcomes} == {0.0, 1.0}
    assert all(o.prompt for o in outcomes)
