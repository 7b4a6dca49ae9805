"""`bitrate policy check|schema` and `bitrate route explain`, through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from bitrate_cli.policy import policy_app
from bitrate_cli.route import route_app
from tests.sdk.test_engine import make_policy

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_policy_check_ok():
    # --static: the file alone (the example names a profile and key variables this machine lacks)
    result = runner.invoke(policy_app, ["check", "--static", str(REPO / "examples" / "policy.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok: 2 models, 1 routes"


def test_policy_check_broken_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nmodels:\n  a: {backend: openai, base_url: http://x/v1, model: m, colour: red}\n"
    )
    result = runner.invoke(policy_app, ["check", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {path}:3: key 'models.a.colour': unknown key"]


def test_policy_schema_is_json_schema():
    result = runner.invoke(policy_app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "Policy" and "routes" in schema["properties"]


def test_policy_schema_carries_the_field_docstrings():
    schema = json.loads(runner.invoke(policy_app, ["schema"]).output)
    route_ref = schema["properties"]["routes"]["additionalProperties"]["$ref"].rsplit("/", 1)[1]
    tolerance_ref = schema["$defs"][route_ref]["properties"]["tolerance"]["$ref"].rsplit("/", 1)[1]
    max_loss = schema["$defs"][tolerance_ref]["properties"]["max_loss"]
    assert "Largest acceptable mean quality loss" in max_loss["description"]


def test_route_explain_prints_the_decision_without_calling_a_model(tmp_path):
    # the model URLs point nowhere: explain must not call them
    policy = make_policy(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    result = runner.invoke(route_app, ["explain", "--policy", str(policy), "reverse: abc"])
    assert result.exit_code == 0, result.output
    assert "route:   auto -> student (student)" in result.output
    assert "task:    reverse (by rule, confidence 1.00)" in result.output
    assert "reason:  student: task 'reverse' is safe" in result.output


def test_route_explain_json_with_hint_and_route(tmp_path):
    policy = make_policy(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    args = ["explain", "-p", str(policy), "--route", "auto", "--task", "add", "--json", "hello"]
    result = runner.invoke(route_app, args)
    meta = json.loads(result.output)
    assert (meta["task"], meta["task_source"], meta["side"], meta["verdict"]) == (
        "add",
        "hint",
        "frontier",
        "unsafe",
    )


def test_route_explain_unknown_route_exits_2(tmp_path):
    policy = make_policy(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    result = runner.invoke(route_app, ["explain", "-p", str(policy), "-r", "nope", "hi"])
    assert result.exit_code == 2
    assert "no route or model named 'nope'" in result.output


def test_route_explain_missing_profile_is_one_error(tmp_path):
    policy = make_policy(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    data = yaml.safe_load(policy.read_text())
    data["routes"]["auto"]["profile"] = "missing.json"
    policy.write_text(yaml.safe_dump(data))
    result = runner.invoke(route_app, ["explain", "-p", str(policy), "hi"])
    assert result.exit_code == 2
    assert "missing.json" in result.output and "cannot read profile" in result.output
