"""`bitrate route explain --request FILE`: a whole request body is explained, its needs included."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from bitrate_cli.route import route_app
from tests.sdk.test_engine import make_policy

runner = CliRunner()
TOOL = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}


def student_without_tools(tmp_path: Path) -> Path:
    path = make_policy(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    policy = yaml.safe_load(path.read_text())
    policy["models"]["student"]["supports"] = {"tools": False}
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def test_a_request_with_tools_is_explained_as_a_capability_move(tmp_path: Path):
    body = tmp_path / "body.json"
    body.write_text(
        json.dumps({"model": "x", "messages": [{"role": "user", "content": "reverse: abc"}], "tools": [TOOL]})
    )
    args = ["explain", "-p", str(student_without_tools(tmp_path)), "--request", str(body)]
    result = runner.invoke(route_app, args)
    assert result.exit_code == 0, result.output
    assert "route:   auto -> frontier (frontier)" in result.output
    assert "rule capability" in result.output
    assert "the request needs tools, which student 'student' does not support" in result.output
    meta = json.loads(runner.invoke(route_app, [*args, "--json"]).output)
    assert (meta["rule"], meta["lacking"]) == ("capability", ["tools"])


def test_text_alone_still_routes_by_the_profile(tmp_path: Path):
    result = runner.invoke(route_app, ["explain", "-p", str(student_without_tools(tmp_path)), "reverse: abc"])
    assert result.exit_code == 0, result.output
    assert "route:   auto -> student (student)" in result.output


def test_text_and_request_together_is_one_error(tmp_path: Path):
    body = tmp_path / "body.json"
    body.write_text("[]")
    policy = str(student_without_tools(tmp_path))
    both = runner.invoke(route_app, ["explain", "-p", policy, "--request", str(body), "hi"])
    assert both.exit_code == 2 and "not both" in both.output
    neither = runner.invoke(route_app, ["explain", "-p", policy])
    assert neither.exit_code == 2 and "TEXT or --request" in neither.output
    not_object = runner.invoke(route_app, ["explain", "-p", policy, "--request", str(body)])
    assert not_object.exit_code == 2 and "not a JSON object" in not_object.output
