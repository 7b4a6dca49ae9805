"""The cascade (``sdk.cascade``): when the student may answer first, how its confidence is scored,
how the threshold is calibrated on the profile's evidence, and the whole path through a real
gateway (the tiny model on both sides) called with the official ``openai`` client."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from profiles.assemble import ItemOutcome, assemble_profile
from sdk.cascade import CascadeGate, confidence_of
from sdk.cascade_config import CascadeConfig
from sdk.cascade_fit import fit_gate
from sdk.decide import CategoryVerdict
from sdk.decision import Decision, TaskGuess
from sdk.policy import RouteConfig, load_policy
from sdk.profile import ModelIdentity, StudentConfidence, SuiteInfo, Tolerance
from sdk.protocol import ChatCompletion
from tests.support.gateway_server import running_gateway

# ------------------------------------------------------------------ when the student answers first


def decision(side: str = "frontier", rule: str = "verdict") -> Decision:
    return Decision(route="auto", target=side, side=side, task="math", rule=rule)  # type: ignore[arg-type]


GATE = CascadeGate("mean_logprob", threshold=0.5, overall_loss=0.2)


@pytest.mark.parametrize(
    ("made", "lacks", "gate", "applies"),
    [
        (decision(rule="verdict"), (), GATE, True),
        (decision(rule="uncertain"), (), GATE, True),
        (decision(rule="unknown_task"), (), GATE, True),
        (decision(rule="pin"), (), GATE, False),
        (decision(rule="live"), (), GATE, False),
        (decision(rule="capability"), (), GATE, False),
        (decision(rule="health"), (), GATE, False),
        (decision(side="student", rule="verdict"), (), GATE, False),
        (decision(rule="verdict"), ("tools",), GATE, False),
        (decision(rule="verdict"), (), CascadeGate("mean_logprob", -math.inf, 0.2), False),
    ],
)
def test_the_student_answers_first_only_where_the_frontier_was_chosen_on_the_profile(
    made: Decision, lacks: tuple[str, ...], gate: CascadeGate, applies: bool
):
    assert gate.applies(made, lacks) is applies


CONF = StudentConfidence(mean_logprob=-0.4, min_logprob=-2.0)


@pytest.mark.parametrize(
    ("gate", "task_loss", "score"),
    [
        (CascadeGate("mean_logprob", 0.5, 0.2), None, 0.4),
        (CascadeGate("min_logprob", 0.5, 0.2), None, 2.0),
        (CascadeGate("combined", 0.5, 0.2, coef=(0.1, -1.0, 0.0, 1.0)), 0.3, 0.1 + 0.4 + 0.3),
        (CascadeGate("combined", 0.5, 0.2, coef=(0.1, -1.0, 0.0, 1.0)), None, 0.1 + 0.4 + 0.2),
    ],
)
def test_each_signal_scores_the_answer(gate: CascadeGate, task_loss: float | None, score: float):
    assert gate.score(CONF, task_loss) == pytest.approx(score)
    assert gate.keeps(CONF, task_loss) is (score <= gate.threshold)


def test_an_answer_without_log_probabilities_is_never_kept():
    assert GATE.keeps(None, 0.0) is False


def test_confidence_is_read_from_the_first_choices_token_log_probabilities():
    completion = ChatCompletion.model_validate(
        {
            "id": "c",
            "created": 0,
            "model": "m",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ab"},
                    "logprobs": {
                        "content": [
                            {"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": []},
                            {"token": "b", "logprob": -0.5, "bytes": [98], "top_logprobs": []},
                        ]
                    },
                }
            ],
        }
    )
    conf = confidence_of(completion)
    assert conf is not None
    assert (conf.mean_logprob, conf.min_logprob, conf.tokens) == (pytest.approx(-0.3), -0.5, 2)
    completion.choices[0].logprobs = None
    assert confidence_of(completion) is None


# ------------------------------------------------------------------ calibration


def evidence(n: int, seed: int) -> list[ItemOutcome]:
    """Two categories: ``easy`` the student always gets right; ``hard`` it gets right 60% of the
    time, and its confidence tells: right answers are confident, wrong ones not (with noise)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hard = i % 2 == 1
        right = not hard or rng.random() < 0.6
        mean = -abs(rng.gauss(0.05, 0.05)) if right else -abs(rng.gauss(1.0, 0.3))
        out.append(
            ItemOutcome(
                f"{seed}-{i}",
                "hard" if hard else "easy",
                f"question {seed} {i}",
                1.0 if right else 0.0,
                1.0,
                student_mean_logprob=mean,
                student_min_logprob=min(mean * 3, mean),
            )
        )
    return out


def profile_of(items: list[ItemOutcome], max_loss: float = 0.05):
    return assemble_profile(
        items,
        student=ModelIdentity(name="student"),
        frontier=ModelIdentity(name="frontier"),
        suite=SuiteInfo(names=["t"], sha256="0" * 64, n_items=len(items)),
        tolerance=Tolerance(max_loss=max_loss, confidence=0.9),
        method="import",
    )


ROUTE = RouteConfig(student="student", frontier="frontier", tolerance={"max_loss": 0.05, "confidence": 0.9})


def verdicts(profile) -> dict[str, CategoryVerdict]:
    return {c: CategoryVerdict.from_stats(s, 0.05, 0.9) for c, s in profile.categories.items()}


@pytest.mark.parametrize("signal", ["mean_logprob", "min_logprob", "combined"])
def test_the_threshold_keeps_the_promise_on_held_out_items(signal: str):
    profile = profile_of(evidence(600, seed=1))
    table = verdicts(profile)
    assert table["easy"].verdict == "safe" and table["hard"].verdict == "unsafe"
    guesses = [TaskGuess(i.category, "hint") for i in profile.evidence or []]
    fit = fit_gate(CascadeConfig(signal=signal), ROUTE, profile.evidence or [], guesses, lambda g: table)
    gate = CascadeGate(signal, *fit)  # type: ignore[arg-type]
    assert 0.3 < gate.kept_share < 1.0  # keeps many hard items, not all
    held = [o for o in evidence(2000, seed=2) if o.category == "hard"]
    conf = [o.confidence() for o in held]
    kept = [o for o, c in zip(held, conf, strict=True) if gate.keeps(c, table["hard"].loss)]
    easy = [o for o in evidence(2000, seed=2) if o.category == "easy"]
    routed = kept + easy
    realised = sum(o.frontier - o.student for o in routed) / len(routed)
    assert realised <= 0.05
    assert len(kept) > 0.3 * len(held)


def test_without_recorded_confidence_nothing_is_kept():
    items = evidence(200, seed=3)
    for o in items:
        o.student_mean_logprob = o.student_min_logprob = None
    profile = profile_of(items)
    table = verdicts(profile)
    guesses = [TaskGuess(i.category, "hint") for i in profile.evidence or []]
    fit = fit_gate(CascadeConfig(), ROUTE, profile.evidence or [], guesses, lambda g: table)
    assert fit.kept_share == 0.0


# ------------------------------------------------------------------ through the gateway

POLICY = """\
version: 1
models:
  frontier: {{backend: transformers, model: "{model}", threads: 1}}
  student: {{backend: transformers, model: "{model}", threads: 1}}
routes:
  keeps:
    student: student
    frontier: frontier
    profile: keeps.json
    tolerance: {{max_loss: 0.05, confidence: 0.9}}
    tasks: {{detect: [hint]}}
    cascade: {{signal: mean_logprob}}
  escalates:
    student: student
    frontier: frontier
    profile: escalates.json
    tolerance: {{max_loss: 0.05, confidence: 0.9}}
    tasks: {{detect: [hint]}}
    cascade: {{signal: mean_logprob}}
"""


def confident_profile(right: float, wrong: float) -> list[ItemOutcome]:
    """Category ``hard`` (unsafe): 120 right answers at mean log-probability ``right``, 40 wrong
    ones at ``wrong``: the threshold lands at ``-right``."""
    return [
        ItemOutcome(
            f"i{i}",
            "hard",
            f"prompt {i}",
            1.0 if i < 120 else 0.0,
            1.0,
            student_mean_logprob=right if i < 120 else wrong,
            student_min_logprob=right if i < 120 else wrong,
        )
        for i in range(160)
    ]


@pytest.fixture
def cascade_policy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    # the tiny random model answers with mean log-probabilities of a few nats: kept under a
    # threshold of 100, escalated under one of 0
    profile_of(confident_profile(-100.0, -200.0)).save(tmp_path / "keeps.json")
    profile_of(confident_profile(0.0, -200.0)).save(tmp_path / "escalates.json")
    (tmp_path / "policy.yaml").write_text(POLICY.format(model=tiny_model_dir))
    return tmp_path / "policy.yaml"


def test_the_gateway_keeps_a_confident_answer_and_escalates_an_unsure_one(cascade_policy: Path):
    openai = pytest.importorskip("openai")
    with running_gateway(load_policy(cascade_policy)) as gateway:
        client = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "hello"}]
        kept = client.chat.completions.create(
            model="keeps", messages=messages, max_tokens=4, extra_headers={"x-bitrate-task": "hard"}
        )
        escalated = client.chat.completions.create(
            model="escalates", messages=messages, max_tokens=4, extra_headers={"x-bitrate-task": "hard"}
        )
        client.close()
    meta = kept.model_extra["bitrate"]
    assert (meta["side"], meta["rule"], meta["escalated"]) == ("student", "cascade", False)
    assert "cascade kept" in meta["reason"]
    assert kept.choices[0].logprobs is None  # the caller did not ask for them
    meta = escalated.model_extra["bitrate"]
    assert (meta["side"], meta["rule"], meta["escalated"]) == ("frontier", "cascade", True)
    assert "cascade escalated" in meta["reason"]
