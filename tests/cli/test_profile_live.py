"""``bitrate profile live``: the monitors fed with recorded outcome rows (``--replay``), through the
real typer app, policy, profile and ``sdk.live``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bitrate_cli.profile import profile_app
from profiles.assemble import ItemOutcome, assemble_profile
from sdk.live import LiveMonitor, MonitorSettings
from sdk.profile import ModelIdentity, SuiteInfo, Tolerance

runner = CliRunner()
POLICY = """\
version: 1
models:
  big: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: big}
  small: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: small}
routes:
  auto:
    student: small
    frontier: big
    profile: profile.json
    tolerance: {max_loss: 0.05, confidence: 0.9}
    tasks: {detect: [hint]}
"""


def _row(category: str, i: int, student: int, frontier: int = 1) -> dict:
    return {
        "id": f"{category}-{i}",
        "category": category,
        "prompt": f"q{i}",
        "student": student,
        "frontier": frontier,
    }


def _stream() -> list[dict]:
    """``chat`` (safe offline) turns bad after its 200th row (40% breaks); ``math`` (unsafe
    offline) comes every fifth chat row, half breaks; ``code`` (not in the profile) once, at row 7."""
    rows = []
    for i in range(300):
        rows.append(_row("chat", i, student=0 if i >= 200 and i % 5 in (0, 3) else 1))
        if i % 5 == 0:
            rows.append(_row("math", i, student=int(i % 10 == 0)))
    rows.insert(7, _row("code", 0, student=1))
    return rows


@pytest.fixture
def setup(tmp_path):
    offline = [_row("chat", i, student=1) for i in range(400)] + [_row("math", i, i % 2) for i in range(100)]
    evidence = [
        ItemOutcome(r["id"], r["category"], r["prompt"], r["student"], r["frontier"]) for r in offline
    ]
    assemble_profile(
        evidence,
        student=ModelIdentity(name="small"),
        frontier=ModelIdentity(name="big"),
        suite=SuiteInfo(names=["t"], sha256="0" * 64, n_items=len(evidence)),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        method="import",
    ).save(tmp_path / "profile.json")
    (tmp_path / "policy.yaml").write_text(POLICY)
    rows = _stream()
    (tmp_path / "stream.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path, rows


def _live(tmp, *extra: str):
    return runner.invoke(
        profile_app,
        ["live", "--policy", str(tmp / "policy.yaml"), "--replay", str(tmp / "stream.jsonl"), *extra],
    )


def test_replay_json_has_exactly_the_promised_shape(setup):
    tmp, rows = setup
    result = _live(tmp, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["categories", "changes"]
    assert list(data["categories"]) == ["chat", "math", "code"]  # order of first row
    for figures in data["categories"].values():
        assert list(figures) == ["n", "loss", "loss_low", "loss_high", "verdict"]
    for change in data["changes"]:
        assert list(change) == ["at", "category", "from", "to"]
    chat = data["categories"]["chat"]
    assert chat["n"] == sum(r["category"] == "chat" for r in rows)
    assert chat["loss"] == pytest.approx(
        sum(r["frontier"] - r["student"] for r in rows if r["category"] == "chat") / chat["n"]
    )
    assert 0.05 < chat["loss_low"] < chat["loss_high"] and chat["verdict"] == "unsafe"
    assert data["categories"]["code"] == {
        "n": 1,
        "loss": 0.0,
        "loss_low": -1.0,
        "loss_high": 1.0,
        "verdict": "uncertain",
    }


def test_changes_start_from_the_offline_verdicts_at_each_first_row(setup):
    tmp, rows = setup
    changes = json.loads(_live(tmp, "--json").stdout)["changes"]
    first = {}
    for change in changes:
        first.setdefault(change["category"], change)
    assert first["chat"] == {"at": 0, "category": "chat", "from": "safe", "to": "uncertain"}
    assert first["math"] == {"at": 1, "category": "math", "from": "unsafe", "to": "uncertain"}
    assert first["code"] == {"at": 7, "category": "code", "from": "unknown", "to": "uncertain"}
    assert [c["at"] for c in changes] == sorted(c["at"] for c in changes)


def test_at_is_the_row_index_where_a_fresh_monitor_turns(setup):
    """Each category's changes, recomputed with one monitor per category fed its own rows."""
    tmp, rows = setup
    changes = json.loads(_live(tmp, "--json").stdout)["changes"]
    expected = []
    monitors: dict[str, LiveMonitor] = {}
    last = {"chat": "safe", "math": "unsafe"}
    for index, row in enumerate(rows):
        monitor = monitors.setdefault(row["category"], LiveMonitor(MonitorSettings(0.05, 0.9)))
        verdict = monitor.observe(row["student"], row["frontier"])
        if verdict != last.get(row["category"], "unknown"):
            expected.append(
                {
                    "at": index,
                    "category": row["category"],
                    "from": last.get(row["category"], "unknown"),
                    "to": verdict,
                }
            )
        last[row["category"]] = verdict
    assert changes == expected
    demotion = next(c for c in changes if c["category"] == "chat" and c["to"] == "unsafe")
    assert demotion["at"] > 200 + 200 // 5 + 1  # only after chat turned bad


def test_replay_table(setup):
    tmp, _rows = setup
    result = _live(tmp)
    assert result.exit_code == 0, result.output
    for text in ("chat", "math", "code", "unsafe", "demoted", "row "):
        assert text in result.stdout


def test_auto_promote_option_is_accepted(setup):
    tmp, _rows = setup
    result = _live(tmp, "--json", "--auto-promote")
    assert result.exit_code == 0, result.output


def test_without_replay_and_without_a_store_one_line_exit_2(setup):
    tmp, _rows = setup
    result = runner.invoke(profile_app, ["live", "--policy", str(tmp / "policy.yaml")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "bitrate-live.sqlite: no live store here" in lines[0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"id": 1, "category": "chat", "prompt": "p", "student": 2, "frontier": 1}), "score"),
        (json.dumps({"id": 1, "prompt": "p", "student": 1, "frontier": 1}), "has no category"),
    ],
)
def test_a_bad_outcomes_file_is_one_line_exit_2(setup, line, message):
    tmp, _rows = setup
    (tmp / "stream.jsonl").write_text(json.dumps(_row("chat", 0, 1)) + "\n" + line + "\n")
    result = _live(tmp, "--json")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "stream.jsonl" in lines[0]


def test_unknown_route_is_one_line_exit_2(setup):
    tmp, _rows = setup
    result = _live(tmp, "--route", "nope")
    assert result.exit_code == 2 and "no route named 'nope'" in result.output
