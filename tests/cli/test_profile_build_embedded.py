"""The shipped profile: built by ``bitrate profile build --suite tiny`` on the embedded pair."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bitrate_cli.profile import profile_app
from profiles.suites import TINY_PATH, load_suite
from sdk import embedded
from sdk.profile import load_profile

SHIPPED = embedded.profile_path()
pytestmark = pytest.mark.skipif(
    not (SHIPPED.is_file() and TINY_PATH.is_file()), reason="embedded profile or tiny suite not built"
)


def test_shipped_profile_matches_the_tiny_suite_and_the_pair():
    profile = load_profile(SHIPPED)
    suite = load_suite("tiny")
    assert profile.method == "build" and profile.suite.sha256 == suite.hash
    assert set(profile.categories) == set(suite.categories)
    assert sum(c.n for c in profile.categories.values()) == len(suite.items) == profile.suite.n_items
    assert (profile.student.model, profile.frontier.model) == ("embedded:student", "embedded:teacher")
    verdicts = set(profile.verdicts().values())
    assert "safe" in verdicts and "unsafe" in verdicts


@pytest.mark.slow
def test_rebuilding_on_the_embedded_pair_reproduces_the_verdicts_then_hits_the_cache(tmp_path):
    args = ["build", "--suite", "tiny", "--out", str(tmp_path / "p.json"), "--cache-dir", str(tmp_path), "-q"]
    first = CliRunner().invoke(profile_app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert load_profile(tmp_path / "p.json").verdicts() == load_profile(SHIPPED).verdicts()
    second = CliRunner().invoke(profile_app, args, catch_exceptions=False)
    assert "model calls: 0 (cache hits:" in second.output
