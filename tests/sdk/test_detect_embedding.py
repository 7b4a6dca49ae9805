"""The embedding detector: nearest labelled prompts under all-MiniLM-L6-v2, similarity-weighted vote."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from sdk import embed
from sdk.detect import DetectContext, build_pipeline
from sdk.detect.embedding import EmbeddingDetector, examples_from_profile, vote
from sdk.embed import HashingEmbedder
from sdk.policy import RouteConfig
from sdk.profile import EvidenceItem, ModelIdentity, Profile, SuiteInfo, Tolerance
from sdk.protocol import ChatRequest

EXAMPLES = [
    ("Translate 'good morning' into Spanish.", "translation"),
    ("How do you say 'thank you very much' in Japanese?", "translation"),
    ("Please translate this paragraph from English to German.", "translation"),
    ("Render the following sentence in French: where is the station?", "translation"),
    ("Write a Python function that checks whether a number is prime.", "code"),
    ("Fix the bug in this JavaScript loop that never terminates.", "code"),
    ("Implement binary search in Rust and explain its complexity.", "code"),
    ("Write a SQL query returning the ten most recent orders.", "code"),
    ("What is 17 times 23?", "math"),
    ("Solve for x: 3x + 7 = 22.", "math"),
    ("A train travels 120 km in 1.5 hours. What is its average speed?", "math"),
    ("Compute the derivative of x^3 - 4x with respect to x.", "math"),
]
HELD_OUT = [
    ("Can you translate 'I love reading books' into Italian?", "translation"),
    ("Write a Go function that reverses a string.", "code"),
    ("If a shirt costs $25 after a 20% discount, what was the original price?", "math"),
]


def req(text: str) -> ChatRequest:
    return ChatRequest(model="auto", messages=[{"role": "user", "content": text}])


def test_vote_weights_by_similarity_above_background_and_scales_by_typical_closeness():
    sims = np.array([0.9, 0.8, 0.3, -0.5])
    labels = ["a", "a", "b", "c"]
    label, conf = vote(sims, labels, np.arange(4), (0.85, 0.1))
    assert label == "a"
    assert conf == pytest.approx((1.5 / 1.7) * 1.0)
    label, conf = vote(sims, labels, np.arange(4), (1.0, 0.1))
    assert conf == pytest.approx((1.5 / 1.7) * 0.85)
    assert vote(np.array([-0.1, 0.0]), ["a", "b"], np.arange(2)) is None


def test_far_prompt_gets_lower_confidence_than_near_one():
    d = EmbeddingDetector(HashingEmbedder(), EXAMPLES, k=4, min_confidence=0.0)
    near = d.guess_text(EXAMPLES[4][0])
    far = d.guess_text("zzzz qqqq")
    assert near.task == "code" and near.source == "embeddings"
    assert far is None or far.confidence < near.confidence


def test_no_examples_or_no_text_means_no_opinion():
    assert EmbeddingDetector(HashingEmbedder(), []).detect(req("anything"), None) is None
    d = EmbeddingDetector(HashingEmbedder(), EXAMPLES)
    system_only = ChatRequest(model="auto", messages=[{"role": "system", "content": "be nice"}])
    assert d.detect(system_only, None) is None


def _profile() -> Profile:
    evidence = [
        EvidenceItem(id=str(i), category=cat, prompt=text, student=1.0, frontier=1.0)
        for i, (text, cat) in enumerate(EXAMPLES)
    ]
    return Profile(
        created_at=datetime.now(UTC),
        method="import",
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["t"], sha256="0" * 64, n_items=len(evidence)),
        tolerance=Tolerance(max_loss=0.05, confidence=0.9),
        categories={},
        evidence=evidence,
    )


def test_examples_come_from_the_profile_evidence():
    assert examples_from_profile(_profile()) == EXAMPLES
    assert examples_from_profile(None) == []


needs_minilm = pytest.mark.skipif(not embed.minilm_available(), reason="bitrate[embeddings] not installed")


@needs_minilm
@pytest.mark.parametrize(("text", "task"), HELD_OUT)
def test_minilm_detector_names_held_out_prompts(text, task):
    pytest.importorskip("torch").set_num_threads(1)
    from sdk.detect.embedding import shared_minilm

    d = EmbeddingDetector(shared_minilm(), EXAMPLES, k=5, min_confidence=0.3)
    guess = d.detect(req(text), None)
    assert guess is not None and guess.task == task
    assert 0.3 <= guess.confidence <= 1.0 and guess.source == "embeddings"


@needs_minilm
def test_pipeline_builds_the_embedding_detector_from_the_route_profile():
    pytest.importorskip("torch").set_num_threads(1)
    route = RouteConfig.model_validate(
        {"student": "s", "frontier": "f", "tasks": {"detect": ["embeddings"], "min_confidence": 0.3}}
    )
    pipeline = build_pipeline(DetectContext("auto", route, _profile()))
    assert pipeline.names == ["embeddings"] and not pipeline.notes
    guess = pipeline.detect(req(HELD_OUT[1][0]))
    assert (guess.task, guess.source) == ("code", "embeddings")
    assert pipeline.detect(req("")).task == "unknown"
