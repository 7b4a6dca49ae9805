"""Graders: each scores real answers the way its docstring promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiles.graders import GRADERS, choice_letter, last_number, make_grader, normalise
from profiles.suites import Item
from sdk.errors import ConfigError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def item(reference=None, grader="exact", prompt="q", **args) -> Item:
    return Item(id="i", category="c", prompt=prompt, reference=reference, grader=grader, grader_args=args)


def score(grader: str, answer: str, reference=None, prompt="q", **args) -> float:
    it = item(reference, grader, prompt, **args)
    return make_grader(grader, args).grade(answer, it)


@pytest.mark.parametrize(
    ("grader", "answer", "reference", "args", "expected"),
    [
        ("exact", " cba\n", "cba", {}, 1.0),
        ("exact", "CBA", "cba", {}, 0.0),
        ("exact", "b", ["a", "b"], {}, 1.0),
        ("exact", "Let me think.\nFalse", "False", {"last_line": True}, 1.0),
        ("normalised", "  The Answer:  Paris! ", "the answer paris", {}, 1.0),
        ("normalised", "It is Paris, I think", "paris", {"contains": True}, 1.0),
        ("normalised", "Parisian", "paris", {"contains": True}, 0.0),
        ("numeric", "16 - 3 - 4 = 9, 9 * 2 = $18", 18.0, {}, 1.0),
        ("numeric", "The total is $1,234.50.", 1234.5, {}, 1.0),
        ("numeric", "answer: 17", 18, {}, 0.0),
        ("numeric", "about 102", 100, {"rel_tol": 0.05}, 1.0),
        ("numeric", "no digits", 1, {}, 0.0),
        ("numeric", "-7", "-7", {}, 1.0),
        ("regex", "order #A-123 shipped", None, {"pattern": r"#[A-Z]-\d+"}, 1.0),
        ("regex", "abc", "a.c", {"fullmatch": True}, 1.0),
        ("regex", "ABC", "abc", {"ignore_case": True}, 1.0),
        ("mc", "(B)", "(B)", {}, 1.0),
        ("mc", "B", "(B)", {}, 1.0),
        ("mc", "Let's see. (A) is wrong, so the answer is B.", "(B)", {}, 1.0),
        ("mc", "Answer: C", "(B)", {}, 0.0),
        ("mc", "I cannot tell", "(B)", {}, 0.0),
        ("mc", "(E)", "(E)", {"choices": "ABCD"}, 0.0),
        ("json", '{"a": 1}', None, {}, 1.0),
        ("json", '```json\n{"a": 1}\n```', None, {}, 1.0),
        ("json", "[1, 2]", None, {"object_only": True}, 0.0),
        ("json", "{a: 1}", None, {}, 0.0),
    ],
)
def test_text_graders(grader, answer, reference, args, expected):
    assert score(grader, answer, reference, **args) == expected


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_json_schema_validates_the_answer():
    assert score("json_schema", '{"n": 3}', schema=SCHEMA) == 1.0
    assert score("json_schema", '{"n": "3"}', schema=SCHEMA) == 0.0
    assert score("json_schema", "not json", schema=SCHEMA) == 0.0


def test_bad_grader_names_and_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="unknown grader 'nope'"):
        make_grader("nope")
    with pytest.raises(ConfigError, match="invalid JSON Schema"):
        make_grader("json_schema", {"schema": {"type": "no-such-type"}})
    with pytest.raises(ConfigError, match="pattern"):
        make_grader("regex", {"pattern": "("})
    with pytest.raises(ConfigError, match="numeric"):
        make_grader("numeric", {"abs_tol": -1})


def test_agreement_scores_the_student_against_the_frontier():
    grader = make_grader("agreement")
    it = item(None, "agreement")
    assert grader.needs_frontier
    assert grader.grade("Hello, world!", it, frontier_answer="hello world") == 1.0
    assert grader.grade("Goodbye", it, frontier_answer="hello world") == 0.0
    assert grader.grade("anything", it) == 1.0  # the frontier itself


def test_helpers():
    assert normalise("  A-b,  C! ") == "a b c"
    assert last_number("from 3 to −4.5") == -4.5 and last_number("none") is None
    assert choice_letter("the answer is (d)") == "D"
    names = {"exact", "normalised", "numeric", "regex", "mc", "json", "json_schema", "ifeval", "agreement"}
    assert names <= set(GRADERS)


def ifeval(answer: str, ids: list[str], kwargs: list[dict], prompt: str = "p", **args) -> float:
    return score("ifeval", answer, None, prompt, instruction_id_list=ids, kwargs=kwargs, **args)


def test_ifeval_strict_prompt_level():
    ids, kwargs = ["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}]
    assert ifeval("all lower case and no commas here", ids, kwargs) == 1.0
    assert ifeval("all lower case, with a comma", ids, kwargs) == 0.0
    assert ifeval("all lower case, with a comma", ids, kwargs, partial=True) == 0.5
    assert ifeval("", ids, kwargs) == 0.0


def test_ifeval_loose_mode_forgives_a_preamble_line():
    ids, kwargs = ["startend:end_checker"], [{"end_phrase": "Is there anything else I can help with?"}]
    answer = "Here you go.\nIs there anything else I can help with?\n**"
    assert ifeval(answer, ids, kwargs) == 0.0
    assert ifeval(answer, ids, kwargs, mode="loose") == 1.0


def test_ifeval_offline_sentence_counting():
    ids = ["length_constraints:number_sentences"]
    three = "Dr. Smith arrived at 3.5 p.m. today. He was late. Nobody minded!"
    assert ifeval(three, ids, [{"relation": "less than", "num_sentences": 4}]) == 1.0
    assert ifeval(three, ids, [{"relation": "at least", "num_sentences": 4}]) == 0.0
    assert ifeval(three, ids, [{"relation": "at least", "num_sentences": 3}]) == 1.0


def test_ifeval_offline_word_tokenizer_counts_capital_words():
    ids = ["change_case:capital_word_frequency"]
    answer = "THIS IS VERY IMPORTANT. Please READ it."
    assert ifeval(answer, ids, [{"capital_relation": "at least", "capital_frequency": 5}]) == 1.0
    assert ifeval(answer, ids, [{"capital_relation": "less than", "capital_frequency": 5}]) == 0.0


def test_ifeval_language_check_is_deterministic():
    ids, kwargs = ["language:response_language"], [{"language": "de"}]
    german = "Das ist ein kurzer Satz auf Deutsch, und er bleibt auf Deutsch."
    assert [ifeval(german, ids, kwargs) for _ in range(3)] == [1.0, 1.0, 1.0]
    assert ifeval("This sentence is written in plain English words.", ids, kwargs) == 0.0


def test_ifeval_rejects_unknown_instructions():
    with pytest.raises(ConfigError, match="unknown IFEval instruction"):
        make_grader("ifeval", {"instruction_id_list": ["made:up"], "kwargs": [{}]})


@pytest.mark.skipif(not (DATA / "ifeval").is_dir(), reason=f"public test data not found at {DATA}")
def test_every_public_ifeval_prompt_has_known_verifiers_and_grades():
    lines = (DATA / "ifeval" / "en_input_data.jsonl").read_text().splitlines()
    for line in lines:
        row = json.loads(line)
        ids = [i.removeprefix("en:") for i in row["instruction_id_list"]]
        grader = make_grader("ifeval", {"instruction_id_list": ids, "kwargs": row["kwargs"]})
        it = item(None, "ifeval", row["prompt"], instruction_id_list=ids, kwargs=row["kwargs"])
        assert grader.grade(row["prompt"], it) in (0.0, 1.0)
    assert len(lines) == 541
