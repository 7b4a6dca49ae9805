"""Offline replay: ``bitrate route eval`` over recorded outcomes, through the real policy, profile,
detectors and ``decide()``, with no model called."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from bitrate_cli.route import route_app
from profiles.outcomes import OutcomeRow, read_outcome_rows
from profiles.replay import replay, replay_report
from sdk.decision import Decision
from sdk.errors import ConfigError

KEYS = {
    "n", "student_share", "quality", "frontier_quality", "student_quality", "oracle_quality",
    "realised_loss", "realised_loss_high", "apgr", "cpt50", "cpt80", "cost_saved",
}  # fmt: skip

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
    tasks:
      detect: [hint, rules]
      rules: [{match: "(?i)translate", task: translate}, {match: "(?i)python", task: code}]
  pp:
    student: small
    frontier: big
    profile: profile.json
    per_prompt: true
    tolerance: {max_loss: 0.05, confidence: 0.9}
    tasks: {detect: [hint]}
"""


def rows(n: int, seed: int) -> list[dict]:
    """Translation the student nearly always gets right; code it gets right half the time."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cat = "translate" if i % 2 else "code"
        student = float(rng.random() < (0.99 if cat == "translate" else 0.5))
        prompt = f"Translate note {i} to French" if cat == "translate" else f"Write Python code for task {i}"
        out.append(
            {"id": f"{seed}-{i}", "category": cat, "prompt": prompt, "student": student, "frontier": 1.0,
             "student_cost": 0.001, "frontier_cost": 0.01}
        )  # fmt: skip
    return out


@pytest.fixture
def setup(tmp_path):
    from profiles.assemble import ItemOutcome, assemble_profile
    from sdk.profile import ModelIdentity, SuiteInfo, Tolerance

    evidence = [
        ItemOutcome(r["id"], r["category"], r["prompt"], r["student"], r["frontier"]) for r in rows(400, 1)
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
    held_out = rows(200, 2)
    (tmp_path / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held_out))
    return tmp_path, held_out


def run(*args: str):
    return CliRunner().invoke(route_app, ["eval", *args])


def test_category_routing_report(setup):
    tmp, held = setup
    result = run("--policy", str(tmp / "policy.yaml"), "--outcomes", str(tmp / "outcomes.jsonl"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report.keys() >= KEYS
    translate = [r for r in held if r["category"] == "translate"]
    assert report["n"] == 200
    assert report["student_share"] == pytest.approx(len(translate) / 200)  # translate safe, code unsafe
    expected_quality = (sum(r["student"] for r in translate) + (200 - len(translate))) / 200
    assert report["quality"] == pytest.approx(expected_quality)
    assert report["frontier_quality"] == 1.0 and report["oracle_quality"] == 1.0
    assert report["student_quality"] == pytest.approx(sum(r["student"] for r in held) / 200)
    assert report["realised_loss"] == pytest.approx(1 - sum(r["student"] for r in translate) / len(translate))
    assert report["realised_loss_high"] >= report["realised_loss"] and report["within_tolerance"]
    routed_cost = len(translate) * 0.001 + (200 - len(translate)) * 0.01
    assert report["cost_saved"] == pytest.approx(1 - routed_cost / (200 * 0.01))
    assert report["apgr"] > 0.6 and 0 < report["cpt50"] < report["cpt80"] <= 1
    assert report["rules"] == {"verdict": 200}


def test_missing_category_is_detected_and_undetected_goes_to_unknown(setup):
    tmp, _ = setup
    lines = [
        {"id": 1, "prompt": "Please translate this to Dutch", "student": 1, "frontier": 1},
        {
            "id": 2,
            "messages": [{"role": "user", "content": "python: sort a list"}],
            "student": 0,
            "frontier": 1,
        },
        {"id": 3, "prompt": "tell me a joke", "student": True, "frontier": False},
    ]
    (tmp / "mixed.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    result = run("-p", str(tmp / "policy.yaml"), "-o", str(tmp / "mixed.jsonl"), "--json", "--bins", "0")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rules"] == {"verdict": 2, "unknown_task": 1}
    assert report["student_share"] == pytest.approx(1 / 3)
    assert report["cost_saved"] is None  # no costs recorded


def test_per_prompt_route_replays_with_the_estimator(setup):
    tmp, _ = setup
    result = run("-p", str(tmp / "policy.yaml"), "-r", "pp", "-o", str(tmp / "outcomes.jsonl"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rules"] == {"per_prompt": 200}
    assert report["within_tolerance"] and report["apgr"] > 0.5


def test_table_output(setup):
    tmp, _ = setup
    result = run("--policy", str(tmp / "policy.yaml"), "--outcomes", str(tmp / "outcomes.jsonl"))
    assert result.exit_code == 0, result.output
    assert "APGR" in result.output and "promise <= 0.05: kept" in result.output


def test_bad_outcomes_and_unknown_route_fail_with_one_line(setup):
    tmp, _ = setup
    (tmp / "bad.jsonl").write_text(
        '{"id": 1, "prompt": "x", "student": 1, "frontier": 1}\n{"id": 2, "prompt": "y"}\n'
    )
    result = run("-p", str(tmp / "policy.yaml"), "-o", str(tmp / "bad.jsonl"))
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output and "student" in result.output
    result = run("-p", str(tmp / "policy.yaml"), "-r", "nope", "-o", str(tmp / "outcomes.jsonl"))
    assert result.exit_code == 2 and "no route named 'nope'" in result.output


def test_rows_need_exactly_one_of_prompt_and_messages(tmp_path):
    path = tmp_path / "o.jsonl"
    path.write_text('{"id": 1, "student": 1, "frontier": 0}\n')
    with pytest.raises(ConfigError, match="o.jsonl:1"):
        read_outcome_rows(path)
    path.write_text('{"id": 1, "prompt": "x", "student": 1, "frontier": 0, "typo": 1}\n')
    with pytest.raises(ConfigError, match="typo"):
        read_outcome_rows(path)


def test_random_router_has_apgr_about_one_half():
    rng = np.random.default_rng(0)
    data = [
        OutcomeRow(id=i, prompt="q", student=float(rng.random() < 0.4), frontier=float(rng.random() < 0.8))
        for i in range(3000)
    ]  # fmt: skip

    def coin(_row: OutcomeRow) -> tuple[Decision, float]:
        side = "student" if rng.random() < 0.5 else "frontier"
        return Decision(route="r", target=side, side=side, rule="random"), float(rng.random())

    values = [replay_report(replay(data, coin), max_loss=0.05, confidence=0.9).apgr for _ in range(4)]
    assert abs(float(np.mean(values)) - 0.5) < 0.03


def test_rows_of_one_prompt_count_as_one_in_the_realised_loss_interval():
    rng = random.Random(3)
    scores = [float(rng.random() > 0.15) for _ in range(60)]

    def student_always(_row: OutcomeRow) -> tuple[Decision, float]:
        return Decision(route="r", target="student", side="student", rule="verdict"), 0.0

    def report(copies: int, same_prompt: bool):
        data = [
            OutcomeRow(id=f"{i}/{k}", prompt=f"prompt {i}" if same_prompt else f"prompt {i} {k}",
                       student=score, frontier=1.0)
            for i, score in enumerate(scores) for k in range(copies)
        ]  # fmt: skip
        return replay_report(replay(data, student_always), max_loss=0.05, confidence=0.9)

    one, distinct, shared = report(1, True), report(3, False), report(3, True)
    assert one.realised_loss == distinct.realised_loss == shared.realised_loss
    assert distinct.realised_loss_high < one.realised_loss_high  # three independent rows per score
    assert shared.realised_loss_high == pytest.approx(one.realised_loss_high, rel=0.1)  # one response each
    chat = OutcomeRow(id=1, messages=[{"role": "user", "content": "hi"}], student=1, frontier=1)
    assert chat.prompt_key() == OutcomeRow(id=2, messages=chat.messages, student=0, frontier=1).prompt_key()


BAD_ROWS = [
    '{"id": 1, "category": "m", "prompt": "p", "student": 2, "frontier": 0}',
    '{"id": 1, "category": "m", "prompt": "p", "student": 1, "frontier": 0, "typo": 1}',
    '{"id": 1, "category": "m", "student": 1, "frontier": 0}',
    "not json",
]


@pytest.mark.parametrize("bad", BAD_ROWS)
def test_a_bad_row_gives_the_same_message_from_profile_import_and_route_eval(tmp_path, bad):
    from bitrate_cli.profile import profile_app

    path = tmp_path / "o.jsonl"
    path.write_text('{"id": 0, "category": "m", "prompt": "p", "student": 1, "frontier": 1}\n' + bad + "\n")
    out = str(tmp_path / "p.json")
    imported = CliRunner().invoke(profile_app, ["import", "--outcomes", str(path), "--out", out])
    evaluated = CliRunner().invoke(route_app, ["eval", "-o", str(path)])
    assert imported.exit_code == evaluated.exit_code == 2
    assert imported.stderr == evaluated.stderr
    assert imported.stderr.startswith(f"error: {path}:2")
