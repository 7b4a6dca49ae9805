"""``bitrate profile import/show/report/diff`` through the real typer app (and one real process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bitrate_cli.profile import profile_app

runner = CliRunner()
SHOW_JSON_KEYS = [
    "n",
    "student_accuracy",
    "frontier_accuracy",
    "loss",
    "loss_low",
    "loss_high",
    "breaks",
    "fixes",
    "verdict",
]


def _outcomes(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _rows(category: str, both: int, breaks: int, fixes: int, neither: int, cost: bool = False):
    cells = [(1, 1)] * both + [(0, 1)] * breaks + [(1, 0)] * fixes + [(0, 0)] * neither
    for i, (s, f) in enumerate(cells):
        row = {"id": f"{category}-{i}", "category": category, "prompt": f"q{i}", "student": s, "frontier": f}
        if cost:
            row |= {"student_cost": 0.001, "frontier_cost": 0.01}
        yield row


@pytest.fixture
def outcomes(tmp_path):
    rows = [*_rows("math", 40, 30, 2, 28, cost=True), *_rows("chat", 300, 2, 2, 96)]
    return _outcomes(tmp_path / "outcomes.jsonl", rows)


def _import(outcomes, out, *extra):
    return runner.invoke(profile_app, ["import", "--outcomes", str(outcomes), "--out", str(out), *extra])


def test_import_then_show_json(tmp_path, outcomes):
    out = tmp_path / "p.json"
    result = _import(outcomes, out, "--max-loss", "0.05", "--student-name", "tiny")
    assert result.exit_code == 0, result.output
    assert "500 items, 2 categories (1 safe, 1 unsafe)" in result.stdout
    shown = runner.invoke(profile_app, ["show", str(out), "--json"])
    assert shown.exit_code == 0
    data = json.loads(shown.stdout)
    assert list(data["categories"]) == ["math", "chat"]  # worst first
    math = data["categories"]["math"]
    assert set(math) == set(SHOW_JSON_KEYS)
    assert (math["n"], math["verdict"]) == (100, "unsafe")
    assert math["loss"] == pytest.approx(0.28)
    assert data["student"]["name"] == "tiny" and data["tolerance"] == {"max_loss": 0.05, "confidence": 0.9}
    assert data["method"] == "import" and data["evidence_items"] == 500


def test_show_table_and_verdicts_at_another_tolerance(tmp_path, outcomes):
    out = tmp_path / "p.json"
    assert _import(outcomes, out, "--max-loss", "0.05").exit_code == 0
    table = runner.invoke(profile_app, ["show", str(out)])
    assert table.exit_code == 0
    assert table.stdout.index("math") < table.stdout.index("chat")
    assert "unsafe" in table.stdout and "safe" in table.stdout
    loose = runner.invoke(profile_app, ["show", str(out), "--json", "--max-loss", "0.5"])
    assert json.loads(loose.stdout)["categories"]["math"]["verdict"] == "safe"


def test_no_evidence_leaves_items_out(tmp_path, outcomes):
    out = tmp_path / "p.json"
    assert _import(outcomes, out, "--no-evidence").exit_code == 0
    assert json.loads(out.read_text())["evidence"] is None


def test_report_writes_markdown_and_chart(tmp_path, outcomes):
    out = tmp_path / "p.json"
    assert _import(outcomes, out).exit_code == 0
    result = runner.invoke(profile_app, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "| math | 100 | " in report and "| math | $0.001000 | $0.010000 |" in report
    assert (tmp_path / "rep" / "loss.png").stat().st_size > 5000


def test_diff_reports_changed_categories(tmp_path, outcomes):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert _import(outcomes, a, "--max-loss", "0.05").exit_code == 0
    better = _outcomes(tmp_path / "b.jsonl", [*_rows("math", 68, 2, 2, 28), *_rows("chat", 300, 2, 2, 96)])
    assert _import(better, b, "--max-loss", "0.05").exit_code == 0
    result = runner.invoke(profile_app, ["diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "math" in result.stdout and "verdict" in result.stdout and "chat" not in result.stdout
    same = runner.invoke(profile_app, ["diff", str(a), str(a)])
    assert "no category changed (2 compared)" in same.stdout


def test_malformed_outcomes_fail_with_file_line_field_and_write_nothing(tmp_path, outcomes):
    out = tmp_path / "p.json"
    out.write_text("previous profile")
    lines = outcomes.read_text().splitlines()
    lines[41] = lines[41].replace('"student": 0', '"student": 2')
    outcomes.write_text("\n".join(lines) + "\n")
    result = _import(outcomes, out)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {outcomes}:42: key 'student': score must be in [0, 1], got 2.0"
    assert out.read_text() == "previous profile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outcomes.jsonl", "p.json"]


def test_bad_tolerance_and_unknown_version_exit_2(tmp_path, outcomes):
    bad = _import(outcomes, tmp_path / "p.json", "--confidence", "1.5")
    assert bad.exit_code == 2 and "--confidence" in bad.stderr
    future = tmp_path / "future.json"
    future.write_text('{"schema_version": 9}')
    shown = runner.invoke(profile_app, ["show", str(future)])
    assert shown.exit_code == 2
    assert "schema_version" in shown.stderr and "future.json" in shown.stderr


def test_error_in_a_real_process_is_one_line_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bitrate_cli", "profile", "show", str(tmp_path / "absent.json")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'absent.json'}: cannot read profile: No such file or directory"
    ]


def test_cli_imports_matplotlib_only_when_reporting():
    code = "import sys, bitrate_cli.profile\nprint('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
