"""Live graders: a pair of answers to one request becomes ``(s, f)`` without a reference, and
the grader's name says how. One table row per case; the judge runs on a scripted judge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import TypeAdapter

from sdk.embed import HashingEmbedder
from sdk.live.graders import Embedding, LivePair, Ungradable, build_grader
from sdk.live.shadow_config import EmbeddingGrader, GraderConfig
from sdk.protocol import ChatRequest

CONFIG = TypeAdapter(GraderConfig)
PLAIN = ChatRequest.model_validate({"model": "auto", "messages": [{"role": "user", "content": "2+2?"}]})
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
WITH_SCHEMA = ChatRequest.model_validate(
    {
        "model": "auto",
        "messages": [{"role": "user", "content": "n as JSON"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA}},
    }
)


def grader(config: dict[str, Any], judge: Callable[..., Any] | None = None):
    return build_grader(CONFIG.validate_python(config), judge_model="frontier", judge=judge)


AG, NUM, JS, JV = (
    {"kind": "agreement"},
    {"kind": "agreement", "mode": "numeric"},
    {"kind": "agreement", "mode": "json"},
    {"kind": "json_valid"},
)
ROWS = [
    # (id, config, student answer, frontier answer, request, (s, f), name)
    ("exact agrees", {"kind": "agreement", "mode": "exact"}, " 4 ", "4", PLAIN, (1, 1), "agreement:exact"),
    ("exact differs in case", {"kind": "agreement", "mode": "exact"}, "Four", "four", PLAIN, (0, 1), None),
    ("normalised ignores case", AG, "Four!", "four", PLAIN, (1, 1), "agreement:normalised"),
    ("normalised differs", AG, "five", "four", PLAIN, (0, 1), None),
    ("numeric: the last numbers", NUM, "so 4.0", "= 4", PLAIN, (1, 1), "agreement:numeric"),
    ("numeric: no number", NUM, "four", "4", PLAIN, (0, 1), None),
    ("json: equal once parsed", JS, '{"a":1}', '{ "a": 1 }', PLAIN, (1, 1), "agreement:json"),
    ("json: a fence is read", JS, '```json\n{"a":1}\n```', '{"a":1}', PLAIN, (1, 1), None),
    ("json: not JSON", JS, "a=1", '{"a":1}', PLAIN, (0, 1), None),
    ("json_valid: each side", JV, '{"n": 1}', "sure: {n: 1}", PLAIN, (1, 0), "json_valid"),
    ("json_valid: the schema", JV, '{"n": "x"}', '{"n": 2}', WITH_SCHEMA, (0, 1), None),
    (
        "json_valid: schema off",
        {**JV, "schema_check": False},
        '{"n": "x"}',
        '{"n": 2}',
        WITH_SCHEMA,
        (1, 1),
        None,
    ),
    ("numeric: same number", {"kind": "numeric"}, "it is 1,234", "1234.0", PLAIN, (1, 1), "numeric"),
    ("numeric: other number", {"kind": "numeric"}, "12", "13", PLAIN, (0, 1), None),
    ("numeric: frontier wrote none", {"kind": "numeric"}, "12", "no idea", PLAIN, (1, 0), None),
    ("numeric: neither wrote one", {"kind": "numeric"}, "no", "no idea", PLAIN, (1, 1), None),
    ("numeric: within rel_tol", {"kind": "numeric", "rel_tol": 0.01}, "100.5", "100", PLAIN, (1, 1), None),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
async def test_programmatic_graders(row):
    _id, config, student, frontier, request, expected, name = row
    g = grader(config)
    assert await g.grade(LivePair(request, student, frontier)) == expected
    if name is not None:
        assert g.name == name


def scripted_judge(answer_for: Callable[[str, str], str]):
    """A judge that reads answer A and answer B from the prompt and says what ``answer_for`` says."""
    asked: list[ChatRequest] = []

    async def judge(request: ChatRequest) -> str:
        asked.append(request)
        text = request.messages[-1].content
        assert isinstance(text, str)
        a = text.split("Answer A:\n")[1].split("\n\nAnswer B:")[0]
        b = text.split("Answer B:\n")[1].split("\n\nWhich")[0]
        return answer_for(a, b)

    return judge, asked


JUDGE_ROWS = [
    (
        "the frontier is better in both orders",
        lambda a, b: "A" if a == "good" else "B",
        "bad",
        "good",
        (0, 1),
    ),
    ("the student is better in both orders", lambda a, b: "A" if a == "good" else "B", "good", "bad", (1, 0)),
    ("a judge that always says A cancels out", lambda a, b: "A", "x", "y", (0.5, 0.5)),
    ("ties", lambda a, b: "T", "x", "y", (0, 0)),
    ("one win, one tie", lambda a, b: "B" if b == "good" else "T", "meh", "good", (0, 0.5)),
    ("a verbose judge", lambda a, b: "Answer: B." if b == "good" else "I pick A", "meh", "good", (0, 1)),
]


@pytest.mark.parametrize("row", JUDGE_ROWS, ids=[r[0] for r in JUDGE_ROWS])
async def test_the_judge_asks_both_orders(row):
    _id, answer_for, student, frontier, expected = row
    judge, asked = scripted_judge(answer_for)
    g = grader({"kind": "judge"}, judge)
    assert await g.grade(LivePair(PLAIN, student, frontier)) == expected
    assert g.name == "judge:frontier"
    assert len(asked) == 2 and {r.temperature for r in asked} == {0.0}
    assert "user: 2+2?" in str(asked[0].messages[-1].content)


async def test_a_judge_naming_no_winner_makes_the_pair_ungradable():
    judge, _asked = scripted_judge(lambda a, b: "Both are fine, really.")
    with pytest.raises(Ungradable, match="named no winner"):
        await grader({"kind": "judge"}, judge).grade(LivePair(PLAIN, "x", "y"))


async def test_the_embedding_grader_on_a_given_embedder():
    g = Embedding(EmbeddingGrader(kind="embedding", threshold=0.9), embedder=HashingEmbedder())
    assert g.name == "embedding:0.9"
    assert await g.grade(LivePair(PLAIN, "the cat sat on the mat", "the cat sat on the mat")) == (1.0, 1.0)
    assert await g.grade(LivePair(PLAIN, "quantum chromodynamics", "the cat sat on the mat")) == (0.0, 1.0)
