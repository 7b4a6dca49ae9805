"""``bitrate profile live`` on the live store (no ``--replay``): the figures the gateways wrote,
and ``--reset`` ending a demotion, through the real typer app, policy, profile and store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bitrate_cli.profile import profile_app
from profiles.summary import summarize
from sdk.live import LiveMonitor, MonitorRecord, open_store
from sdk.live.runtime import counter_name, monitor_settings
from sdk.policy import load_policy
from sdk.profile import ModelIdentity, Profile, SuiteInfo, Tolerance

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
    profile_models_must_match: false
    tolerance: {max_loss: 0.05, confidence: 0.9}
    tasks: {detect: [hint]}
    shadow: {spot_check: 0.1}
live:
  store: live.sqlite
  refresh_seconds: 3
"""


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    """A policy, its profile (``chat`` safe offline) and a store where ``chat`` was demoted live
    and ``math`` is fine."""
    tol = {"max_loss": 0.05, "confidence": 0.9}
    Profile.model_validate(
        {
            "created_at": "2026-01-01T00:00:00Z",
            "method": "import",
            "student": ModelIdentity(name="small").model_dump(),
            "frontier": ModelIdentity(name="big").model_dump(),
            "suite": SuiteInfo(names=["t"], sha256="0" * 64, n_items=400).model_dump(),
            "tolerance": Tolerance(**tol).model_dump(),
            "categories": {"chat": summarize([1] * 400, [1] * 400, **tol).model_dump()},
        }
    ).save(tmp_path / "profile.json")
    (tmp_path / "policy.yaml").write_text(POLICY)
    settings = monitor_settings(load_policy(tmp_path / "policy.yaml"))["auto"]
    with open_store(str(tmp_path / "live.sqlite")) as store:
        for category, bad in (("chat", 40), ("math", 0)):
            monitor = LiveMonitor(settings, clock=lambda: 1_767_225_600.0)
            for i in range(60):
                monitor.observe(0.0 if i >= 60 - bad else 1.0, 1.0)
            record = MonitorRecord(
                "auto", category, monitor.verdict, monitor.to_dict(), monitor.demoted_since, through=60
            )
            store.put_state(record, expected=0)
        store.add_counts(
            {
                counter_name("requests", "auto"): 200,
                counter_name("undetected", "auto"): 10,
                counter_name("graded", "auto", "chat", "agreement:normalised"): 60,
                counter_name("spend_micro", "auto", "chat"): 12_500,
            }
        )
    return tmp_path


def live(tmp: Path, *extra: str):
    return runner.invoke(profile_app, ["live", "--policy", str(tmp / "policy.yaml"), *extra])


def test_json_from_the_store(tmp: Path):
    result = live(tmp, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["store"] == str(tmp / "live.sqlite")
    route = data["routes"]["auto"]
    assert (route["requests"], route["undetected"], route["novel_share"]) == (200, 10, 0.05)
    chat, math = route["categories"]["chat"], route["categories"]["math"]
    assert (chat["offline"], chat["verdict"], chat["n"]) == ("safe", "unsafe", 60)
    assert chat["loss"] == pytest.approx(40 / 60) and chat["loss_low"] > 0.05
    assert chat["breaks"] == pytest.approx(40 / 60) and chat["fixes"] == 0.0
    assert chat["demoted_since"] == 1_767_225_600.0 and chat["reset_by"] is None
    assert chat["graders"] == {"agreement:normalised": 60} and chat["shadow_spend"] == pytest.approx(0.0125)
    assert (math["offline"], math["verdict"], math["graders"]) == ("unknown", "uncertain", {})


def test_the_table_shows_the_same_figures(tmp: Path):
    result = live(tmp)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "task not detected: 5.0% of 200 requests" in " ".join(out.split())
    chat = next(line for line in out.splitlines() if line.startswith("│ chat"))
    assert "safe" in chat and "unsafe" in chat and "2026-01-01 00:00:00 UTC" in chat
    assert "agreement:normalised" in chat and "0.0125" in chat


def test_reset_ends_the_demotion_in_the_store(tmp: Path):
    result = live(tmp, "--reset", "auto:chat", "--by", "ops")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("reset auto:chat by ops in ")
    assert "every replica applies it at its next refresh within 3 s" in result.stdout
    with open_store(str(tmp / "live.sqlite"), create=False) as store:
        record = store.state("auto", "chat")
    assert record is not None and record.verdict == "uncertain" and record.demoted_since is None
    assert record.reset_by == "ops" and record.reset_at is not None
    chat = json.loads(live(tmp, "--json").stdout)["routes"]["auto"]["categories"]["chat"]
    assert (chat["n"], chat["verdict"], chat["reset_by"]) == (0, "uncertain", "ops")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--reset", "chat"), "--reset takes ROUTE:CATEGORY"),
        (("--reset", "nope:chat"), "no route named 'nope'"),
        (("--route", "nope"), "no route named 'nope'"),
        (("--store", "/nonexistent/live.sqlite"), "no live store here"),
    ],
)
def test_mistakes_are_one_line(tmp: Path, extra: tuple[str, ...], message: str):
    result = live(tmp, *extra)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
