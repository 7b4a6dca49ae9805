"""``run_demo`` end to end on the tiny model: safe categories go to the student, unsafe to the frontier."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from bitrate_cli.demo import _profile_origin, demo, run_demo, workload
from profiles.assemble import ItemOutcome, assemble_profile
from profiles.suites import load_suite
from sdk.policy import default_policy, load_policy
from sdk.profile import ModelIdentity, SuiteInfo, Tolerance, load_profile
from tests.gateway.conftest import TINY_POLICY
from tests.support.tiny_model import ANSWER

pytestmark = pytest.mark.slow

RULES = """\
      rules: [{match: "^copy:", task: copy}, {match: "^chat:", task: chat}]
    profile: profile.json
    tolerance: {max_loss: 0.05, confidence: 0.9}
"""


def _write_profile(path: Path) -> None:
    """``copy``: the student is as good as the frontier (safe); ``chat``: it breaks half (unsafe)."""
    outcomes = [ItemOutcome(f"c{i}", "copy", "copy: x", 1.0, 1.0) for i in range(300)]
    outcomes += [ItemOutcome(f"h{i}", "chat", "chat: x", float(i % 2), 1.0) for i in range(300)]
    profile = assemble_profile(
        outcomes,
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["demo"], n_items=len(outcomes), sha256="0" * 64),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        method="import",
    )
    profile.save(path)


def _write_suite(path: Path) -> None:
    items = [
        {"id": f"c{i}", "category": "copy", "prompt": f"copy: {i}", "reference": ANSWER} for i in range(5)
    ]
    items += [
        {"id": f"h{i}", "category": "chat", "prompt": f"chat: {i}", "reference": "no"} for i in range(5)
    ]
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


def test_demo_routes_by_verdict_and_prints_the_table(tiny_model_dir: Path, tmp_path: Path):
    policy_text = TINY_POLICY.format(model=tiny_model_dir).replace(
        '      rules: [{match: "^copy:", task: copy}]\n', RULES
    )
    (tmp_path / "policy.yaml").write_text(policy_text.replace("    pin: {copy: student}\n", ""))
    _write_profile(tmp_path / "profile.json")
    _write_suite(tmp_path / "suite.jsonl")
    console = Console(record=True, width=160)

    result = demo(
        policy=load_policy(tmp_path / "policy.yaml"),
        suite=tmp_path / "suite.jsonl",
        per_category=3,
        max_tokens=100,
        out_dir=tmp_path / "report",
        console=console,
    )

    rows = {row.category: row for row in result.rows}
    assert (rows["copy"].verdict, rows["copy"].student, rows["copy"].frontier) == ("safe", 3, 0)
    assert (rows["chat"].verdict, rows["chat"].student, rows["chat"].frontier) == ("unsafe", 0, 3)
    assert rows["copy"].accuracy == 1.0 and rows["chat"].accuracy == 0.0
    assert result.student_share == 0.5 and result.saved > 0
    assert result.quality_kept == pytest.approx(0.5)
    assert result.report is not None and result.report.is_file()
    text = console.export_text()
    assert "Where each category went" in text and "50% to the student" in text and str(result.report) in text


def test_run_demo_returns_the_exit_status(tiny_model_dir: Path, tmp_path: Path):
    (tmp_path / "policy.yaml").write_text(TINY_POLICY.format(model=tiny_model_dir))
    _write_suite(tmp_path / "suite.jsonl")
    policy = load_policy(tmp_path / "policy.yaml")
    policy.routes["auto"].profile = str(tmp_path / "profile.json")
    _write_profile(tmp_path / "profile.json")
    quiet = Console(file=io.StringIO())
    assert run_demo(policy=policy, suite=tmp_path / "suite.jsonl", per_category=1, console=quiet) == 0


def test_workload_interleaves_categories(tmp_path: Path):
    _write_suite(tmp_path / "suite.jsonl")
    items = workload(load_suite(str(tmp_path / "suite.jsonl")).items, per_category=2)
    assert [item.category for item in items] == ["copy", "chat", "copy", "chat"]


def test_run_demo_without_a_profile_exits_2_with_one_line(tiny_model_dir: Path, tmp_path: Path):
    (tmp_path / "policy.yaml").write_text(
        TINY_POLICY.format(model=tiny_model_dir).replace("    pin:", "    profile: none.json\n    pin:")
    )
    out = io.StringIO()
    status = run_demo(policy=load_policy(tmp_path / "policy.yaml"), console=Console(file=out, width=200))
    assert status == 2
    assert "no profile file" in out.getvalue() and "Traceback" not in out.getvalue()


def test_demo_measures_the_pair_and_a_second_run_asks_no_model(tiny_model_dir: Path, tmp_path: Path):
    (tmp_path / "policy.yaml").write_text(TINY_POLICY.format(model=tiny_model_dir))
    _write_suite(tmp_path / "suite.jsonl")
    runs = []
    for _ in range(2):
        console = Console(record=True, width=200, file=io.StringIO())
        demo(
            policy=load_policy(tmp_path / "policy.yaml"),
            suite=tmp_path / "suite.jsonl",
            per_category=1,
            max_tokens=100,
            out_dir=tmp_path / "out",
            console=console,
            measure=str(tmp_path / "suite.jsonl"),
            cache_dir=tmp_path / "cache",
        )
        runs.append(console.export_text())
    first, second = runs
    assert "1/3 measuring student vs frontier" in first and "2/3 starting the gateway" in first
    assert "10 items, 20 model calls, 0 answers from the cache" in first
    assert "10 items, 0 model calls, 20 answers from the cache" in second
    profile = json.loads((tmp_path / "out" / "profile.json").read_text())
    assert profile["suite"]["n_items"] == 10 and (tmp_path / "out" / "report.md").is_file()


def test_the_shipped_profile_is_named_as_such():
    policy = default_policy()
    assert _profile_origin(policy, "auto", load_profile(policy.profile_path("auto"))).startswith(
        "the profile shipped with bitrate (measured on 'tiny' (360 items)), not measured here"
    )
