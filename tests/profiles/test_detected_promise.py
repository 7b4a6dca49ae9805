"""The promise holds with the task detected, not given (``sdk.detect.offline``).

A profile's verdicts are certified on items whose category was given. Live, a detector names
the task, and its mistakes move prompts between categories. These tests build a profile where
a learnt detector confuses a category the student fails with one it is perfect at, and check
that routing reads detected tasks against verdicts certified on what the detectors assign to
the evidence (so the confused prompts go to the frontier), that a hint still reads the
profile's own verdicts, and that replaying unlabelled rows keeps the promise where the old
reading broke it. The last test replays recorded IFEval outcomes without their labels."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from profiles.assemble import ItemOutcome, assemble_profile
from profiles.outcomes import OutcomeRow
from profiles.replay import replay_report, replay_route
from sdk.decision import TaskGuess
from sdk.detect.lexical import LexicalDetector
from sdk.detect.offline import DetectedCalibration, crossfit_verdicts
from sdk.engine import Engine
from sdk.policy import load_policy
from sdk.profile import ModelIdentity, SuiteInfo, Tolerance
from sdk.protocol import ChatMessage, ChatRequest

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
    tasks: {detect: [hint, lexical], min_confidence: 0.3}
"""
THINGS = ["the weather", "my cat", "a train", "the museum", "our garden", "a recipe", "the river", "a song"]
PEOPLE = ["Ann", "Bob", "Chen", "Dara", "Eve", "Femi", "Gus", "Hana"]


def outcomes(n: int, seed: int) -> list[ItemOutcome]:
    """``summary`` (student always right), ``tally`` (student always wrong) worded like a summary
    half of the time, ``verse`` (always right) worded apart."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        thing, who = rng.choice(THINGS), rng.choice(PEOPLE)
        kind = ["summary", "tally", "verse"][i % 3]
        if kind == "summary" or (kind == "tally" and rng.random() < 0.5):
            prompt = f"Summarise the short report on {thing} for {who}, please. #{seed}-{i}"
        elif kind == "tally":
            prompt = f"Count every vowel in the report on {thing}; answer with a number. #{seed}-{i}"
        else:
            prompt = f"Write a four-line poem about {thing} for {who}. #{seed}-{i}"
        out.append(ItemOutcome(f"{seed}-{i}", kind, prompt, 0.0 if kind == "tally" else 1.0, 1.0))
    return out


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    evidence = outcomes(600, 1)
    assemble_profile(
        evidence,
        student=ModelIdentity(name="small"),
        frontier=ModelIdentity(name="big"),
        suite=SuiteInfo(names=["t"], sha256="0" * 64, n_items=len(evidence)),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        method="import",
    ).save(tmp_path / "profile.json")
    (tmp_path / "policy.yaml").write_text(POLICY)
    return Engine(load_policy(tmp_path / "policy.yaml"))


def ask(text: str) -> ChatRequest:
    return ChatRequest(model="auto", messages=[ChatMessage(role="user", content=text)])


def test_verdicts_are_certified_on_what_the_detectors_assign(engine: Engine):
    route = engine.routes()["auto"]
    assert route.categories["summary"].verdict == "safe"  # as labelled
    measured = route.detection.measured() if route.detection else None
    assert isinstance(measured, DetectedCalibration)
    # half the tally prompts read like summaries: detected as summary, with their losses
    assert measured.confusion["tally"].get("summary", 0) > 50
    assert measured.verdicts["summary"].verdict != "safe"
    assert measured.verdicts["verse"].verdict == "safe"
    assert 0.5 < measured.accuracy < 0.95


def test_a_detected_task_is_read_against_detected_verdicts_and_a_hint_against_the_profiles(engine: Engine):
    summary = ask("Summarise the short report on the weather for Ann, please.")
    detected = engine.explain(summary)
    assert (detected.task, detected.task_source, detected.side) == ("summary", "lexical", "frontier")
    hinted = engine.explain(summary, task_hint="summary")
    assert (hinted.task_source, hinted.side) == ("hint", "student")
    verse = engine.explain(ask("Write a four-line poem about a song for Gus."))
    assert (verse.task, verse.side) == ("verse", "student")


def test_replaying_unlabelled_rows_keeps_the_promise_the_labelled_reading_broke(engine: Engine):
    route = engine.routes()["auto"]
    rows = [
        OutcomeRow(id=o.id, prompt=o.prompt, student=o.student, frontier=o.frontier) for o in outcomes(600, 2)
    ]
    now = replay_report(replay_route(rows, route), max_loss=0.05, confidence=0.9)
    before = replay_report(replay_route(rows, dataclasses.replace(route, detection=None)), max_loss=0.05,
                           confidence=0.9)  # fmt: skip
    assert before.realised_loss is not None and before.realised_loss > 0.05  # confused tallies sent
    assert now.within_tolerance and now.student_share > 0.2  # the verses still go to the student


def test_held_out_detection_leaves_each_prompts_own_wording_out():
    examples = [(f"Translate note {i} about {THINGS[i % 8]} into French.", "translate") for i in range(30)]
    examples.append(("zzqx wvvk plomf", "odd"))
    detector = LexicalDetector(examples, min_confidence=0.3)
    assert detector.guess_text("zzqx wvvk plomf") == TaskGuess("odd", "lexical", 1.0)  # its own example
    held = detector.held_out_guesses()
    assert held[-1] is None or held[-1].task != "odd"  # nothing else looks like it
    assert all(g is not None and g.task == "translate" for g in held[:30])


def test_a_verdict_picked_by_luck_is_not_certified():
    # 6 tasks, each 40 items losing 0.1 on average: each task's own interval straddles 0.05;
    # a plain per-task check would certify the luckiest; the cross-fitted one certifies none
    rng = random.Random(0)
    guesses, student, prompts = [], [], []
    for task in range(6):
        for i in range(40):
            guesses.append(TaskGuess(f"t{task}", "lexical", 0.9))
            student.append(0.0 if rng.random() < 0.1 else 1.0)
            prompts.append(f"{task}-{i}")
    verdicts = crossfit_verdicts(
        guesses, student, [1.0] * len(student), prompts, max_loss=0.05, confidence=0.9
    )
    assert all(v.verdict != "safe" for v in verdicts.values())


IFEVAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ifeval"
IFEVAL_POLICY = """\
version: 1
models:
  frontier: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: frontier}
  student: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: student}
routes:
  auto:
    student: student
    frontier: frontier
    profile: profile.json
    profile_models_must_match: false
    per_prompt: true
    tolerance: {max_loss: 0.1, confidence: 0.9}
    tasks: {detect: [lexical]}
"""


@pytest.mark.skipif(not (IFEVAL / "ifeval_en_outcomes.jsonl.gz").is_file(), reason="no ../shared/data/ifeval")
@pytest.mark.parametrize("seed", [0, 4])
def test_recorded_ifeval_outcomes_replayed_without_labels_keep_the_promise(tmp_path: Path, seed: int):
    from profiles.ifeval_outcomes import ifeval_outcomes

    outcomes = ifeval_outcomes(
        IFEVAL, frontier="gpt-4o-2024-08-06", student="Qwen__Qwen2.5-7B-Instruct-GPTQ-Int4"
    )
    keys = sorted({o.id.split("/")[0] for o in outcomes})
    random.Random(seed).shuffle(keys)
    first = set(keys[: len(keys) // 2])
    fit = [o for o in outcomes if o.id.split("/")[0] in first]
    held = [o for o in outcomes if o.id.split("/")[0] not in first]
    assemble_profile(
        fit,
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["ifeval"], sha256="0" * 64, n_items=len(fit)),
        tolerance=Tolerance(max_loss=0.1, confidence=0.9),
        method="import",
    ).save(tmp_path / "profile.json")
    (tmp_path / "policy.yaml").write_text(IFEVAL_POLICY)
    route = Engine(load_policy(tmp_path / "policy.yaml")).routes()["auto"]
    rows = [OutcomeRow(id=o.id, prompt=o.prompt, student=o.student, frontier=o.frontier) for o in held]
    report = replay_report(replay_route(rows, route), max_loss=0.1, confidence=0.9)
    assert report.within_tolerance
    assert report.student_share > 0.05
