"""``bitrate profile build`` end to end: a policy of two openai backends on a local server."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from bitrate_cli.profile import profile_app
from sdk.profile import load_profile
from tests.profiles.test_runner import Solver
from tests.support.fault_server import fault_server

POLICY = """\
version: 1
models:
  big: {{backend: openai, base_url: "{url}", model: big, max_retries: 0, price: {{input: 2.5, output: 10}}}}
  small: {{backend: openai, base_url: "{url}", model: small, max_retries: 0}}
routes:
  auto:
    student: small
    frontier: big
    tolerance: {{max_loss: 0.2, confidence: 0.9}}
"""


@pytest.fixture
def setup(tmp_path):
    with fault_server() as server:
        server.script(*[Solver()] * 400)
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY.format(url=server.base_url))
        suite = tmp_path / "suite.jsonl"
        rows = [
            {
                "id": f"a{i}",
                "category": "add",
                "prompt": f"add: {i} 1",
                "reference": i + 1,
                "grader": "numeric",
            }
            for i in range(20)
        ]
        rows += [
            {"id": f"r{i}", "category": "reverse", "prompt": f"reverse: x{i}y", "reference": f"y{i}x"}
            for i in range(20)
        ]
        suite.write_text("".join(json.dumps(r) + "\n" for r in rows))
        yield server, policy, suite, tmp_path


def build(*args: str):
    return CliRunner().invoke(profile_app, ["build", *args], catch_exceptions=False)


def test_build_marks_weak_category_unsafe_and_rerun_makes_no_call(setup):
    server, policy, suite, tmp = setup
    args = [
        "--policy",
        str(policy),
        "--suite",
        str(suite),
        "--out",
        str(tmp / "p.json"),
        "--cache-dir",
        str(tmp / "cache"),
        "--quiet",
    ]
    first = build(*args)
    assert first.exit_code == 0, first.output
    assert "model calls: 80 (cache hits: 0)" in first.output
    assert re.search(r"add .* safe", first.output) and re.search(r"reverse .* unsafe", first.output)
    profile = load_profile(tmp / "p.json")
    assert profile.verdicts() == {"add": "safe", "reverse": "unsafe"}
    assert (profile.student.name, profile.student.model, profile.frontier.backend) == (
        "small",
        "small",
        "openai",
    )
    assert profile.suite.n_items == 40 and len(profile.evidence) == 40
    assert profile.calls == {"student": 40, "frontier": 40, "cached": 0, "saved": 0}
    assert profile.categories["add"].frontier_cost == pytest.approx((5 * 2.5 + 1 * 10) / 1e6)

    second = build(*args)
    assert "model calls: 0 (cache hits: 80)" in second.output
    assert len(server.chat_requests) == 80
    again = load_profile(tmp / "p.json")
    assert again.categories == profile.categories and again.suite.sha256 == profile.suite.sha256


def test_options_override_the_policy(setup):
    server, policy, suite, tmp = setup
    result = build(
        "--policy",
        str(policy),
        "--suite",
        f"{suite}@5",
        "--out",
        str(tmp / "p.json"),
        "--no-cache",
        "--no-evidence",
        "--max-loss",
        "0.5",
        "--confidence",
        "0.8",
        "-q",
    )
    assert result.exit_code == 0, result.output
    profile = load_profile(tmp / "p.json")
    assert (profile.tolerance.max_loss, profile.tolerance.confidence) == (0.5, 0.8)
    assert profile.evidence is None and profile.suite.n_items == 10
    assert not (tmp / "cache").exists() and len(server.chat_requests) == 20


def test_sequential_build_reports_calls_saved(setup):
    server, policy, suite, tmp = setup
    with suite.open("a") as fh:  # 40 reverse items: the category settles unsafe at the first look (20)
        fh.writelines(
            json.dumps(
                {"id": f"s{i}", "category": "reverse", "prompt": f"reverse: q{i}", "reference": f"{i}q"}
            )
            + "\n"
            for i in range(20)
        )
    args = ["--policy", str(policy), "--suite", str(suite), "--out", str(tmp / "p.json"), "--no-cache"]
    result = build(*args, "--sequential", "--concurrency", "1", "-q")
    assert result.exit_code == 0, result.output
    profile = load_profile(tmp / "p.json")
    saved = profile.calls["saved"]
    assert f"sequential stopping saved {saved} calls" in result.output
    assert saved >= 40 and len(server.chat_requests) == 120 - saved
    assert profile.categories["reverse"].verdict == "unsafe"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--route", "nope"], "no route 'nope'"),
        (["--suite", "mmlu"], "unknown suite spec"),
    ],
)
def test_bad_input_is_one_error_line_and_no_file(setup, args, message):
    server, policy, suite, tmp = setup
    base = {"--policy": str(policy), "--suite": str(suite), "--out": str(tmp / "p.json"), "--route": "auto"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = CliRunner().invoke(profile_app, ["build", *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp / "p.json").exists() and not server.chat_requests


def test_malformed_suite_line_names_file_line_and_field(setup):
    server, policy, suite, tmp = setup
    with suite.open("a") as fh:
        fh.write('{"id": "z", "category": "add"}\n')
    result = CliRunner().invoke(
        profile_app, ["build", "--policy", str(policy), "--suite", str(suite), "--out", str(tmp / "p.json")]
    )
    assert result.exit_code == 2
    assert f"{suite}:41" in result.output and not (tmp / "p.json").exists()
