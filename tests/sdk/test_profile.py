"""The profile file: round trip, rejection of bad files, atomic save, verdicts at other tolerances."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import jsonschema
import pytest

import sdk.profile as profile_module
from sdk.errors import ConfigError
from sdk.profile import (
    CategoryStats,
    Counts,
    EvidenceItem,
    ModelIdentity,
    Profile,
    SuiteInfo,
    Tolerance,
    load_profile,
)
from sdk.stats import newcombe_paired_interval


def _newcombe_stats(both: int, breaks: int, fixes: int, neither: int, confidence: float = 0.9):
    counts = Counts(both=both, breaks=breaks, fixes=fixes, neither=neither)
    n = both + breaks + fixes + neither
    low, high = newcombe_paired_interval(counts.as_paired(), confidence)
    return CategoryStats(
        n=n,
        student_accuracy=(both + fixes) / n,
        frontier_accuracy=(both + breaks) / n,
        retention=(both + fixes) / (both + breaks),
        loss=(breaks - fixes) / n,
        loss_low=low,
        loss_high=high,
        confidence=confidence,
        interval="newcombe",
        breaks=breaks / n,
        fixes=fixes / n,
        verdict="uncertain",
        counts=counts,
    )


def _profile() -> Profile:
    return Profile(
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        method="import",
        student=ModelIdentity(name="student", model="s-1", backend="import"),
        frontier=ModelIdentity(name="frontier", model="f-1", backend="import"),
        suite=SuiteInfo(names=["x.jsonl"], sha256="ab" * 32, n_items=230),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        categories={
            "math": _newcombe_stats(60, 20, 2, 18),
            "chat": _newcombe_stats(100, 3, 2, 25),
        },
        evidence=[EvidenceItem(id="1", category="math", prompt="2+2?", student=0.0, frontier=1.0)],
        calls={"student": 230, "frontier": 230},
    )


def test_save_and_load_round_trip(tmp_path):
    original = _profile()
    path = original.save(tmp_path / "sub" / "profile.json")
    assert load_profile(path) == original
    assert [p.name for p in path.parent.iterdir()] == ["profile.json"]


def test_saved_file_validates_against_the_models_json_schema(tmp_path):
    path = _profile().save(tmp_path / "p.json")
    jsonschema.validate(json.loads(path.read_text()), Profile.model_json_schema(mode="serialization"))


def test_unknown_schema_version_names_file_and_key(tmp_path):
    data = json.loads(_profile().model_dump_json())
    data["schema_version"] = 2
    path = tmp_path / "future.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert "future.json" in str(info.value)
    assert info.value.key == "schema_version"
    assert "2" in str(info.value)


def test_invalid_field_names_the_dotted_key(tmp_path):
    data = json.loads(_profile().model_dump_json())
    data["categories"]["math"]["verdict"] = "maybe"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.key == "categories.math.verdict"
    assert "bad.json" in str(info.value)


def test_unknown_key_is_rejected(tmp_path):
    data = json.loads(_profile().model_dump_json())
    data["tolerance"]["max_los"] = 0.1
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="max_los"):
        load_profile(path)


def test_not_json_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "schema_version": 1,\n  oops\n}')
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert info.value.location == f"{path}:3"


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read profile"):
        load_profile(tmp_path / "absent.json")


def test_failed_save_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "profile.json"
    path.write_text("old content")

    def fail_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(profile_module.os, "replace", fail_replace)
    with pytest.raises(ConfigError, match="No space left"):
        _profile().save(path)
    assert path.read_text() == "old content"
    assert os.listdir(tmp_path) == ["profile.json"]


def test_verdict_at_recomputes_from_counts():
    stats = _newcombe_stats(60, 20, 2, 18)  # loss 0.18
    low95, high95 = newcombe_paired_interval(stats.counts.as_paired(), 0.95)
    assert stats.interval_at(0.95) == pytest.approx((low95, high95))
    assert stats.verdict_at(0.05, 0.9) == "unsafe"
    assert stats.verdict_at(0.5, 0.9) == "safe"
    assert stats.verdict_at(low95, 0.95) == "uncertain"  # lower end exactly on the tolerance


def test_verdict_at_rescales_a_bootstrap_interval():
    stats = CategoryStats(
        n=50,
        student_accuracy=0.6,
        frontier_accuracy=0.7,
        loss=0.1,
        loss_low=0.05,
        loss_high=0.16,
        confidence=0.9,
        interval="bootstrap",
        breaks=0.3,
        fixes=0.2,
        verdict="unsafe",
    )
    assert stats.interval_at(0.9) == (0.05, 0.16)
    low, high = stats.interval_at(0.99)
    assert low < 0.05 and high > 0.16
    assert stats.verdict_at(0.02, 0.9) == "unsafe"
    assert stats.verdict_at(0.16, 0.9) == "safe"


def test_profile_verdicts_default_to_its_tolerance_and_accept_another():
    profile = _profile()
    assert profile.verdicts() == {"math": "unsafe", "chat": "safe"}
    assert profile.verdicts(0.5, 0.9) == {"math": "safe", "chat": "safe"}


def test_profile_and_stats_modules_stay_light():
    code = (
        "import sys, sdk.profile, sdk.stats\n"
        "print(','.join(m for m in ('numpy', 'torch', 'matplotlib', 'profiles') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
