"""``bitrate profile export``: live observations become an outcomes file that ``profile import``
and ``route eval`` read, from the policy's store or ``--store``; every failure is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitrate_cli.profile import profile_app
from bitrate_cli.route import route_app
from profiles.live_export import placeholder_prompt
from sdk.live import Observation, open_store, prompt_hash

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


def observations(n: int = 60, route: str = "auto") -> list[Observation]:
    """Translation the student matches; code it loses half the time. Every third row captured."""
    out = []
    for i in range(n):
        category = "translate" if i % 2 else "code"
        messages = [{"role": "user", "content": f"{category} task {i}"}]
        out.append(
            Observation(
                route=route,
                category=category,
                student=1.0 if category == "translate" or i % 4 == 0 else 0.0,
                frontier=1.0,
                grader="exact" if category == "translate" else "judge",
                direction="spot_check" if i % 5 else "shadow",
                prompt_hash=prompt_hash(messages),
                messages=json.dumps(messages) if i % 3 == 0 else None,
            )
        )
    return out


def fill(location: str, rows: list[Observation]) -> None:
    with open_store(location, capture=True) as store:
        store.add(rows)


def export(*args: str):
    return runner.invoke(profile_app, ["export", *args])


def test_export_then_profile_import_and_route_eval_run_on_it(tmp_path: Path):
    store = str(tmp_path / "live.sqlite")
    fill(store, observations())
    out = tmp_path / "outcomes.jsonl"
    result = export("--store", store, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}: 60 live observations (graders: exact 30, judge 30;")
    assert "20 with messages, 40 with a placeholder prompt" in result.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in lines] == list(range(1, 61))
    assert lines[0]["messages"] == [{"role": "user", "content": "code task 0"}]
    assert lines[1]["prompt"] == placeholder_prompt(
        prompt_hash([{"role": "user", "content": "translate task 1"}])
    )

    imported = runner.invoke(
        profile_app, ["import", "--outcomes", str(out), "--out", str(tmp_path / "profile.json")]
    )
    assert imported.exit_code == 0, imported.output
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert profile["categories"]["translate"]["n"] == 30 and profile["categories"]["code"]["loss"] > 0.3

    (tmp_path / "policy.yaml").write_text(POLICY)
    evaluated = runner.invoke(
        route_app, ["eval", "--policy", str(tmp_path / "policy.yaml"), "--outcomes", str(out), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["n"] == 60


def test_the_store_defaults_to_the_file_beside_the_policy(tmp_path: Path):
    (tmp_path / "policy.yaml").write_text(POLICY)
    fill(str(tmp_path / "bitrate-live.sqlite"), observations(4))
    out = tmp_path / "o.jsonl"
    result = export("--policy", str(tmp_path / "policy.yaml"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 4


def test_route_filter(tmp_path: Path):
    store = str(tmp_path / "live.sqlite")
    fill(store, observations(4, route="auto") + observations(3, route="other"))
    out = tmp_path / "o.jsonl"
    assert export("--store", store, "--route", "other", "--out", str(out)).exit_code == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [5, 6, 7]
    nothing = export("--store", store, "--route", "nope", "--out", str(tmp_path / "n.jsonl"))
    assert nothing.exit_code == 2 and "no live observations of route 'nope'" in nothing.stderr
    assert not (tmp_path / "n.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "{tmp}/missing.sqlite"], "no live store here (no such file)"),
        (["--store", "{tmp}/empty.sqlite"], "no live observations of any route; nothing written"),
        ([], "give --policy (its live store is read) or --store PATH_OR_URL"),
        (["--store", "mysql://db/x"], ""),
    ],
)
def test_failures_are_one_line_and_write_nothing(tmp_path: Path, args: list[str], message: str):
    open_store(str(tmp_path / "empty.sqlite")).close()
    out = tmp_path / "o.jsonl"
    result = export(*[a.format(tmp=tmp_path) for a in args], "--out", str(out))
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr and not out.exists()
    assert not (tmp_path / "missing.sqlite").exists()  # a reader creates no store


def test_export_from_postgres(postgres_url: str, tmp_path: Path):
    pytest.importorskip("psycopg")
    from tests.support.postgres import fresh_schema_url

    url = fresh_schema_url(postgres_url, "cli_export")
    fill(url, observations(6))
    out = tmp_path / "o.jsonl"
    result = export("--store", url, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
