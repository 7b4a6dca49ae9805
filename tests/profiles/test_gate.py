"""profiles.diff.gate and ``bitrate profile diff --gate``: a candidate passes only when no category
got worse beyond the baseline's interval and the targets improved."""

from __future__ import annotations

from typer.testing import CliRunner

from bitrate_cli import build_app
from profiles.diff import gate
from tests.profiles.test_report import make_profile

# (both right, breaks, fixes, both wrong): loss = (breaks - fixes) / n
OLD = make_profile(
    chat=(300, 2, 2, 96),  # loss 0, narrow: safe
    math=(40, 30, 2, 28),  # loss 0.28: unsafe
    code=(40, 30, 2, 28),  # loss 0.28: unsafe
)


def _rows(result):
    return {r.category: r.status for r in result.rows}


def test_a_target_that_becomes_safe_with_nothing_worse_passes():
    new = make_profile(chat=(300, 2, 2, 96), math=(68, 2, 2, 28), code=(40, 30, 2, 28))
    result = gate(OLD, new)
    assert result.passed, result.reasons
    assert _rows(result) == {"chat": "same", "math": "improved", "code": "same"}
    assert [r.category for r in result.rows if r.target] == ["math", "code"]  # improved first


def test_a_loss_reduced_by_more_than_the_half_width_counts_as_improved():
    old_math = OLD.categories["math"]
    half = (old_math.loss_high - old_math.loss_low) / 2
    new = make_profile(chat=(300, 2, 2, 96), math=(50, 20, 2, 28), code=(40, 30, 2, 28))  # loss 0.18
    assert old_math.loss - new.categories["math"].loss > half
    assert gate(OLD, new).passed
    barely = make_profile(chat=(300, 2, 2, 96), math=(43, 27, 2, 28), code=(40, 30, 2, 28))  # loss 0.25
    assert old_math.loss - barely.categories["math"].loss < half
    result = gate(OLD, barely)
    assert not result.passed and result.reasons == ["no category OLD does not mark safe improved"]


def test_a_category_worse_beyond_the_baselines_interval_fails_whatever_improved():
    new = make_profile(chat=(280, 22, 2, 96), math=(68, 2, 2, 28), code=(40, 30, 2, 28))  # chat loss 0.05
    result = gate(OLD, new)
    assert not result.passed
    assert _rows(result)["chat"] == "worse" and result.rows[0].category == "chat"
    assert result.reasons[0].startswith("'chat' got worse: loss +0.050 > OLD's interval top")


def test_named_targets_must_each_improve_and_exist():
    new = make_profile(chat=(300, 2, 2, 96), math=(68, 2, 2, 28), code=(40, 30, 2, 28))
    assert gate(OLD, new, ["math"]).passed
    assert gate(OLD, new, ["math", "code"]).reasons == ["target 'code' did not improve"]
    assert gate(OLD, new, ["poetry"]).reasons == ["target 'poetry' is not in both profiles"]


def test_a_category_new_did_not_measure_fails():
    new = make_profile(math=(68, 2, 2, 28), code=(40, 30, 2, 28))
    result = gate(OLD, new)
    assert result.reasons == ["'chat' is not measured in NEW"]
    assert "different suites" not in " ".join(result.notes)  # the synthetic profiles share a suite hash


def test_the_command_prints_the_table_and_exits_1_on_failure(tmp_path):
    good = make_profile(chat=(300, 2, 2, 96), math=(68, 2, 2, 28), code=(40, 30, 2, 28))
    bad = make_profile(chat=(280, 22, 2, 96), math=(68, 2, 2, 28), code=(40, 30, 2, 28))
    for name, profile in (("old", OLD), ("good", good), ("bad", bad)):
        profile.save(tmp_path / f"{name}.json")
    runner = CliRunner()
    passed = runner.invoke(
        build_app(), ["profile", "diff", str(tmp_path / "old.json"), str(tmp_path / "good.json"), "--gate"]
    )
    assert passed.exit_code == 0, passed.output
    assert "improved" in passed.output and passed.output.rstrip().endswith("gate: pass")
    failed = runner.invoke(
        build_app(),
        [
            "profile",
            "diff",
            str(tmp_path / "old.json"),
            str(tmp_path / "bad.json"),
            "--gate",
            "--target",
            "math",
        ],
    )
    assert failed.exit_code == 1
    assert "gate: FAIL: 'chat' got worse" in failed.output
