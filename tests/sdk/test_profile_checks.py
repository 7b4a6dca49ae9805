"""A profile is checked before it routes anything: its figures must be numbers that hold together,
and it must have been measured on the models the route uses (``sdk.profile``, ``sdk.policy_check``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from sdk import embedded
from sdk.errors import ConfigError
from sdk.policy import default_policy, load_policy
from sdk.policy_check import check_policy
from sdk.profile import CategoryStats, Counts, ModelIdentity, Profile, SuiteInfo, Tolerance, load_profile
from sdk.stats import newcombe_paired_interval, verdict

POLICY = """\
version: 1
models:
  big: {{backend: openai, base_url: "http://127.0.0.1:9/v1", model: big-model}}
  small: {{backend: openai, base_url: "http://127.0.0.1:9/v1", model: small-model}}
routes:
  auto:
    student: small
    frontier: big
    profile: profile.json
    tolerance: {{max_loss: 0.05, confidence: 0.9}}{extra}
"""


def _stats(both: int, breaks: int, fixes: int, neither: int) -> CategoryStats:
    counts = Counts(both=both, breaks=breaks, fixes=fixes, neither=neither)
    n = both + breaks + fixes + neither
    low, high = newcombe_paired_interval(counts.as_paired(), 0.9)
    return CategoryStats(
        n=n, student_accuracy=(both + fixes) / n, frontier_accuracy=(both + breaks) / n,
        loss=(breaks - fixes) / n, loss_low=low, loss_high=high, confidence=0.9, interval="newcombe",
        breaks=breaks / n, fixes=fixes / n, verdict=verdict(low, high, 0.05), counts=counts,
    )  # fmt: skip


def _profile(student: ModelIdentity, frontier: ModelIdentity) -> Profile:
    return Profile(
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        method="build",
        student=student,
        frontier=frontier,
        suite=SuiteInfo(names=["t"], sha256="0" * 64, n_items=300),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        categories={"easy": _stats(200, 0, 0, 0), "hard": _stats(40, 60, 0, 0)},
    )


MEASURED = _profile(
    ModelIdentity(name="small", model="small-model", backend="openai"),
    ModelIdentity(name="big", model="big-model", backend="openai"),
)


def _written(tmp_path: Path, edit: Any = None, profile: Profile = MEASURED) -> Path:
    """The profile as JSON in ``tmp_path``, after ``edit(data)`` changed its parsed form."""
    data = json.loads(profile.model_dump_json())
    if edit is not None:
        edit(data)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))  # json writes NaN and Infinity as JavaScript does
    return path


def _refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    return info.value


# ---------------------------------------------------------------- the figures


def test_the_shipped_profile_and_a_measured_one_load(tmp_path: Path):
    assert load_profile(embedded.profile_path()).categories
    assert load_profile(_written(tmp_path)) == MEASURED


def test_an_inverted_interval_marked_safe_is_refused(tmp_path: Path):
    def invert(data: dict) -> None:
        data["categories"]["hard"].update(loss_low=0.9, loss_high=0.0, verdict="safe")

    error = _refused(_written(tmp_path, invert))
    assert error.key == "categories.hard.loss_low"
    assert "inverted" in str(error)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("loss", float("nan")),
        ("loss_high", float("nan")),
        ("student_cost", float("inf")),
        ("breaks", float("-inf")),
    ],
)
def test_nan_and_infinity_are_refused_naming_the_key(tmp_path: Path, field: str, value: float):
    error = _refused(_written(tmp_path, lambda data: data["categories"]["easy"].__setitem__(field, value)))
    assert error.key == f"categories.easy.{field}"
    assert "finite" in str(error)


@pytest.mark.parametrize(
    ("field", "value"),
    [("student_accuracy", 1.5), ("frontier_accuracy", -0.1), ("breaks", 1.2), ("fixes", -0.5),
     ("loss", 2.0), ("loss_low", -1.5), ("loss_high", 1.01), ("frontier_latency", -1.0)],
)  # fmt: skip
def test_figures_out_of_range_are_refused_naming_the_key(tmp_path: Path, field: str, value: float):
    error = _refused(_written(tmp_path, lambda data: data["categories"]["easy"].__setitem__(field, value)))
    assert error.key == f"categories.easy.{field}"


def test_a_loss_outside_its_newcombe_interval_is_refused(tmp_path: Path):
    error = _refused(_written(tmp_path, lambda data: data["categories"]["hard"].__setitem__("loss", 0.99)))
    assert error.key == "categories.hard.loss"


def test_counts_that_do_not_add_up_to_n_are_refused(tmp_path: Path):
    error = _refused(_written(tmp_path, lambda data: data["categories"]["hard"].__setitem__("n", 150)))
    assert error.key == "categories.hard.counts"


def test_a_safe_verdict_its_interval_does_not_give_is_refused(tmp_path: Path):
    error = _refused(
        _written(tmp_path, lambda data: data["categories"]["hard"].__setitem__("verdict", "safe"))
    )
    assert error.key == "categories.hard.verdict"
    assert "'unsafe'" in str(error)


def test_a_stored_verdict_more_cautious_than_its_interval_loads(tmp_path: Path):
    # the router reads verdicts from the interval, not the word: an over-cautious word sends nothing
    # to the student, and profiles saved that way exist (tests/sdk/test_profile.py)
    path = _written(tmp_path, lambda data: data["categories"]["easy"].__setitem__("verdict", "uncertain"))
    assert load_profile(path).verdicts()["easy"] == "safe"


def test_a_profile_made_in_code_is_checked_too():
    with pytest.raises(ValueError, match="inverted"):
        CategoryStats(**{**_stats(40, 60, 0, 0).model_dump(), "loss_low": 0.9, "loss_high": 0.1})


def test_a_profile_that_is_not_utf8_is_one_error_naming_file_and_line(tmp_path: Path):
    path = tmp_path / "profile.json"
    path.write_bytes(b'{\n  "schema_version": 1,\n  "method": "caf\xe9"\n}')
    error = _refused(path)
    assert error.location == f"{path}:3" and "UTF-8" in str(error)


# ---------------------------------------------------------------- the models it was measured on


def _policy(tmp_path: Path, profile: Profile, extra: str = "") -> Path:
    _written(tmp_path, profile=profile)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(extra=extra))
    return path


OTHER_PAIR = _profile(
    ModelIdentity(name="student", model="other-student", backend="openai"),
    ModelIdentity(name="frontier", model="other-frontier", backend="openai"),
)


def test_a_profile_of_two_other_models_is_refused_in_one_line_naming_both(tmp_path: Path):
    policy = _policy(tmp_path, OTHER_PAIR)
    problems = check_policy(load_policy(policy))
    assert len(problems) == 1
    message = str(problems[0])
    assert problems[0].location == f"{policy}:9" and problems[0].key == "routes.auto.profile"
    assert "\n" not in message
    for name in ("'other-student'", "'other-frontier'", "'small-model'", "'big-model'"):
        assert name in message
    assert "profile_models_must_match: false" in message


def test_the_gateway_refuses_to_start_on_such_a_profile(tmp_path: Path):
    with pytest.raises(ConfigError, match="other-student"):
        create_app(_policy(tmp_path, OTHER_PAIR))


def test_one_side_that_differs_is_refused_naming_that_side(tmp_path: Path):
    profile = _profile(MEASURED.student, ModelIdentity(name="big", model="gpt-4o", backend="openai"))
    (problem,) = check_policy(load_policy(_policy(tmp_path, profile)))
    assert "frontier 'gpt-4o'" in str(problem) and "frontier 'big-model'" in str(problem)
    assert "student" not in str(problem).split(" uses ")[1].split(";")[0]


def test_the_override_key_accepts_a_deliberate_reuse(tmp_path: Path):
    policy = load_policy(_policy(tmp_path, OTHER_PAIR, "\n    profile_models_must_match: false"))
    assert policy.routes["auto"].profile_models_must_match is False
    assert check_policy(policy) == []
    create_app(policy)  # builds; nothing is loaded until it starts


def test_an_import_may_record_the_policy_names_of_the_models(tmp_path: Path):
    imported = _profile(
        ModelIdentity(name="small", model="small", backend="import"),
        ModelIdentity(name="big", model="big", backend="import"),
    )
    assert check_policy(load_policy(_policy(tmp_path, imported))) == []


def test_an_import_of_other_names_is_refused(tmp_path: Path):
    imported = _profile(
        ModelIdentity(name="student", model="student", backend="import"),
        ModelIdentity(name="frontier", model="frontier", backend="import"),
    )
    (problem,) = check_policy(load_policy(_policy(tmp_path, imported)))
    assert "student 'student'" in str(problem) and "frontier 'frontier'" in str(problem)


def test_a_profile_that_recorded_no_model_ids_is_not_compared(tmp_path: Path):
    anonymous = _profile(ModelIdentity(name="student"), ModelIdentity(name="frontier"))
    assert check_policy(load_policy(_policy(tmp_path, anonymous))) == []


def test_the_embedded_pair_matches_its_profile():
    assert check_policy(default_policy()) == []
