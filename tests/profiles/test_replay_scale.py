"""Replay at production scale: the batched paths give what the one-at-a-time paths give.

``bitrate route eval`` routes rows in chunks (``profiles.replay.replay_route``): detection
embeds all undecided prompts at once (``sdk.detect.offline.detect_many``), the estimator
scores them from one matrix product per block (``estimate_many``), and calibration's
leave-prompt-out estimates and prefix intervals are computed in numpy. Each speed trick is
pinned here to the plain version it replaces."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from bitrate_cli.progress import progress_reporter
from bitrate_cli.route import route_app
from profiles.assemble import ItemOutcome, assemble_profile
from profiles.outcomes import OutcomeRow
from profiles.replay import replay, replay_route, route_with
from sdk.calibration import _upper_bounds
from sdk.embed import HashingEmbedder, VectorIndex
from sdk.engine import Engine
from sdk.estimate import PromptEstimator
from sdk.policy import load_policy
from sdk.profile import ModelIdentity, SuiteInfo, Tolerance
from sdk.stats import PairedCounts, newcombe_paired_interval

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
    per_prompt: true
    tolerance: {max_loss: 0.1, confidence: 0.9}
    tasks: {detect: [hint, lexical]}
"""

TOPICS = {
    "translate": ("Translate into {lang} the note about {thing}.", 0.97),
    "code": ("Write Python code that sorts {thing} by {lang} order.", 0.55),
    "math": ("Prove that {thing} has {lang} many prime factors.", 0.75),
}
LANGS = ["French", "German", "Polish", "Greek", "Czech", "Dutch", "Danish"]
THINGS = ["the weather", "my cat", "a train", "the museum", "our garden", "a recipe", "the river"]


def outcomes(n: int, seed: int) -> list[ItemOutcome]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cat = list(TOPICS)[i % 3]
        template, acc = TOPICS[cat]
        prompt = template.format(lang=rng.choice(LANGS), thing=rng.choice(THINGS)) + f" ({seed}-{i})"
        out.append(ItemOutcome(f"{seed}-{i}", cat, prompt, float(rng.random() < acc), 1.0))
    return out


@pytest.fixture
def route(tmp_path):
    evidence = outcomes(450, 1)
    assemble_profile(
        evidence,
        student=ModelIdentity(name="small"),
        frontier=ModelIdentity(name="big"),
        suite=SuiteInfo(names=["t"], sha256="0" * 64, n_items=len(evidence)),
        tolerance=Tolerance(max_loss=0.1, confidence=0.9),
        method="import",
    ).save(tmp_path / "profile.json")
    (tmp_path / "policy.yaml").write_text(POLICY)
    return Engine(load_policy(tmp_path / "policy.yaml")).routes()["auto"]


def unlabelled(n: int, seed: int) -> list[OutcomeRow]:
    return [
        OutcomeRow(id=o.id, prompt=o.prompt, student=o.student, frontier=o.frontier)
        for o in outcomes(n, seed)
    ]


def test_batched_replay_decides_every_row_as_the_row_by_row_replay_does(route):
    rows = unlabelled(300, 2)
    seen: list[tuple[int, int]] = []
    batched = replay_route(rows, route, progress=lambda done, total: seen.append((done, total)))
    plain = replay(rows, route_with(route))
    assert [(i.side, i.decision.task, i.decision.rule) for i in batched] == [
        (i.side, i.decision.task, i.decision.rule) for i in plain
    ]
    assert [i.score for i in batched] == pytest.approx([i.score for i in plain], abs=1e-5)
    assert seen[-1] == (300, 300)
    assert {i.decision.rule for i in batched} >= {"per_prompt"}


def test_estimates_for_many_prompts_equal_one_at_a_time(route):
    estimator = route.estimator
    texts = [r.prompt or "" for r in unlabelled(100, 3)]
    cats = [["translate", "code", "math", None][i % 4] for i in range(len(texts))]
    many = estimator.estimate_many(estimator.embedder.embed(texts), cats)
    one = [estimator.estimate_text(t, c) for t, c in zip(texts, cats, strict=True)]
    assert [e.loss for e in many] == pytest.approx([e.loss for e in one], abs=1e-5)
    assert [e.verdict for e in many] == [e.verdict for e in one]


def _loo_reference(est: PromptEstimator, pool: np.ndarray) -> np.ndarray:
    """The plain leave-prompt-out loop the vectorised version replaced."""
    labels, groups = np.asarray(est.index.labels), est._prompt_groups()
    out = np.empty(len(labels))
    for j in range(len(labels)):
        keep = pool & (groups != groups[j])
        same = keep & (labels == labels[j])
        prior = float(est.diffs[same].mean()) if same.any() else est._mean_or_zero(keep)
        sims = est.index.similarities(est.index.matrix[j]).copy()
        sims[~(same if est.settings.within_category else keep)] = -np.inf
        out[j] = est._shrunk(sims, prior)[0]
    return out


@pytest.mark.parametrize("within", [True, False])
def test_vectorised_leave_prompt_out_estimates_equal_the_plain_loop(route, within: bool):
    est = route.estimator
    est.settings = type(est.settings)(within_category=within)
    rng = np.random.default_rng(0)
    pools = [None, rng.random(len(est.index)) < 0.8]
    got = est.loo_estimates_many(pools)
    for pool, values in zip(pools, got, strict=True):
        mask = np.ones(len(est.index), dtype=bool) if pool is None else pool
        assert values == pytest.approx(_loo_reference(est, mask), abs=1e-6)


def test_vectorised_prefix_intervals_equal_newcombe_prefix_by_prefix():
    rng = np.random.default_rng(1)
    s, f = (rng.random(300) < 0.7).astype(float), (rng.random(300) < 0.8).astype(float)
    fast = _upper_bounds(s, f, 0.9)
    for m in (1, 2, 5, 50, 299, 300):
        cells = {
            key: int(((f[:m] == fv) & (s[:m] == sv)).sum())
            for key, fv, sv in (("both", 1, 1), ("breaks", 1, 0), ("fixes", 0, 1), ("neither", 0, 0))
        }
        assert fast[m - 1] == pytest.approx(newcombe_paired_interval(PairedCounts(**cells), 0.9)[1])


def test_batched_nearest_rows_pick_the_same_neighbours_as_one_query():
    texts = [r.prompt or "" for r in unlabelled(200, 4)]
    index = VectorIndex.build(HashingEmbedder(), texts, ["x"] * len(texts))
    queries = HashingEmbedder().embed(texts[:40])
    for _start, sims in index.similarity_blocks(queries, rows=16):
        for row, top in zip(sims, index.nearest_rows(sims, 7), strict=True):
            assert set(top) == set(index.nearest(row, 7))


def test_route_eval_reports_detection_accuracy_and_logs_progress_off_a_terminal(tmp_path, route):
    rows = [json.dumps({"id": o.id, "category": o.category, "prompt": o.prompt, "student": o.student,
                        "frontier": o.frontier}) for o in outcomes(120, 5)]  # fmt: skip
    (tmp_path / "rows.jsonl").write_text("\n".join(rows) + "\n")
    args = ["eval", "--policy", str(tmp_path / "policy.yaml"), "--outcomes", str(tmp_path / "rows.jsonl")]
    result = CliRunner().invoke(route_app, [*args, "--detect", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.8 <= report["detection_accuracy"] <= 1.0
    assert report["rules"].get("per_prompt", 0) + report["rules"].get("unknown_task", 0) == 120
    labelled = json.loads(CliRunner().invoke(route_app, [*args, "--json"]).stdout.strip().splitlines()[-1])
    assert labelled["detection_accuracy"] is None  # the rows' own categories were used


def test_progress_lines_go_to_stderr_when_it_is_not_a_terminal(capsys):
    with progress_reporter("route eval", every=0.0) as progress:
        progress(512, 1000)
        progress(1000, 1000)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("route eval: 512/1000 rows (51%)")
    assert err[-1].startswith("route eval: 1000/1000 rows (100%)")
    with progress_reporter("route eval", quiet=True, every=0.0) as progress:
        progress(1, 1)
    assert capsys.readouterr().err == ""
