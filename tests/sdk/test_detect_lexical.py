"""The lexical detector: TF-IDF hashed character n-grams, no model, under a millisecond."""

from __future__ import annotations

import time

from sdk.detect import DetectContext, build_pipeline
from sdk.detect.lexical import LexicalDetector
from sdk.policy import RouteConfig
from sdk.protocol import ChatRequest
from tests.sdk.test_detect_embedding import EXAMPLES, _profile, req

LEXICAL_HELD_OUT = [
    ("Please translate this sentence into Spanish: the dog runs.", "translation"),
    ("Write a Python function that sorts a list of numbers.", "code"),
    ("Solve for y: 5y - 3 = 12.", "math"),
]


def test_names_held_out_prompts_that_share_wording():
    d = LexicalDetector(EXAMPLES, k=3)
    for text, task in LEXICAL_HELD_OUT:
        guess = d.detect(req(text), None)
        assert guess is not None and guess.task == task, text
        assert guess.source == "lexical" and 0.0 < guess.confidence <= 1.0


def test_gibberish_and_empty_have_no_opinion():
    d = LexicalDetector(EXAMPLES)
    assert d.detect(req("qzx vvkj"), None) is None
    assert d.detect(ChatRequest(model="auto", messages=[{"role": "system", "content": "hi"}]), None) is None
    assert LexicalDetector([]).detect(req("Translate this"), None) is None


def test_detection_takes_well_under_a_millisecond():
    d = LexicalDetector(EXAMPLES * 40)  # ~500 labelled prompts
    request = req("Write a small Python function that parses ISO dates and returns the weekday name. " * 4)
    d.detect(request, None)
    times = []
    for _ in range(300):
        start = time.perf_counter()
        d.detect(request, None)
        times.append(time.perf_counter() - start)
    times.sort()
    assert times[len(times) // 2] < 0.002  # typically ~0.2 ms; generous for a loaded machine


def test_pipeline_builds_lexical_from_the_route_profile():
    route = RouteConfig.model_validate(
        {"student": "s", "frontier": "f", "tasks": {"detect": ["hint", "lexical"], "min_confidence": 0.3}}
    )
    pipeline = build_pipeline(DetectContext("auto", route, _profile()))
    assert pipeline.names == ["hint", "lexical"]
    assert pipeline.detect(req(LEXICAL_HELD_OUT[2][0])).task == "math"
    assert pipeline.detect(req("anything"), "code").source == "hint"
