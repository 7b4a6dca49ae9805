"""sdk.checks: each answer check on a table of answers, and the answer read from completions and streams."""

from __future__ import annotations

import sys

import pytest

from sdk.checks import (
    AnswerChoice,
    Call,
    JsonSchema,
    NotTruncated,
    Refusal,
    ToolArgs,
    answer_of,
    answer_of_chunks,
    build_checks,
    is_refusal,
)
from sdk.errors import DependencyMissing
from sdk.policy import RouteConfig
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
NO_PARAMS = {"type": "function", "function": {"name": "now"}}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def req(**params: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **params}
    )


def schema_req(schema: dict | None = PERSON) -> ChatRequest:
    spec = {"name": "person"} if schema is None else {"name": "person", "schema": schema}
    return req(response_format={"type": "json_schema", "json_schema": spec})


def text(content: str, finish: str = "stop") -> list[AnswerChoice]:
    return [AnswerChoice(content, finish_reason=finish)]  # type: ignore[arg-type]


def calls(*pairs: tuple[str, str]) -> list[AnswerChoice]:
    return [AnswerChoice("", tuple(Call(n, a) for n, a in pairs), finish_reason="tool_calls")]


# fmt: off
SCHEMA_TABLE = [
    ("valid object", PERSON, text('{"name": "Ada", "age": 36}'), True),
    ("missing a required key", PERSON, text('{"name": "Ada"}'), False),
    ("wrong type", PERSON, text('{"name": "Ada", "age": "36"}'), False),
    ("not JSON", PERSON, text("Ada, 36"), False),
    ("JSON in prose", PERSON, text('Here: {"name": "Ada", "age": 36}'), False),
    ("every choice must validate", PERSON, text('{"name": "A", "age": 1}') + text("{}"), False),
    ("no choices", PERSON, [], False),
    ("an invalid schema fails (the frontier judges it)", {"type": "no-such-type"}, text("{}"), False),
    ("an unresolvable $ref fails", {"$ref": "https://example.invalid/s.json"}, text("{}"), False),
    ("$schema picks the draft", {"$schema": "http://json-schema.org/draft-07/schema#", "type": "array"},
     text("[1, 2]"), True),
]
# fmt: on


@pytest.mark.parametrize(
    ("schema", "answer", "ok"), [r[1:] for r in SCHEMA_TABLE], ids=[r[0] for r in SCHEMA_TABLE]
)
def test_json_schema_check(schema: dict, answer: list[AnswerChoice], ok: bool):
    check = JsonSchema()
    assert check.applies(schema_req(schema))
    assert check.passes(schema_req(schema), answer) is ok


def test_json_schema_applies_only_to_a_schema():
    check = JsonSchema()
    assert not check.applies(req())
    assert not check.applies(req(response_format={"type": "json_object"}))
    assert not check.applies(schema_req(None))


# id, request params, answer, -> passes
# fmt: off
TOOL_TABLE = [
    ("valid call", {}, calls(("get_weather", '{"city": "Oslo", "days": 2}')), True),
    ("arguments not JSON", {}, calls(("get_weather", '{"city": "Oslo"')), False),
    ("arguments not an object", {}, calls(("get_weather", '["Oslo"]')), False),
    ("a required argument missing", {}, calls(("get_weather", '{"days": 2}')), False),
    ("an argument of the wrong type", {}, calls(("get_weather", '{"city": "Oslo", "days": 0}')), False),
    ("an argument not in the schema", {}, calls(("get_weather", '{"city": "Oslo", "unit": "C"}')), False),
    ("a tool not offered", {}, calls(("send_email", "{}")), False),
    ("one bad call of two", {}, calls(("get_weather", '{"city": "Oslo"}'), ("get_weather", "{}")), False),
    ("no parameters schema: any object", {}, calls(("now", '{"tz": "UTC"}')), True),
    ("empty arguments count as {}", {}, calls(("now", "")), True),
    ("text instead of a call, auto", {}, text("It is sunny."), True),
    ("text instead of a call, required", {"tool_choice": "required"}, text("It is sunny."), False),
    ("named function called", {"tool_choice": {"type": "function", "function": {"name": "now"}}},
     calls(("now", "{}")), True),
    ("named function not called", {"tool_choice": {"type": "function", "function": {"name": "now"}}},
     calls(("get_weather", '{"city": "Oslo"}')), False),
    ("no choices", {}, [], False),
]
# fmt: on


@pytest.mark.parametrize(
    ("params", "answer", "ok"), [r[1:] for r in TOOL_TABLE], ids=[r[0] for r in TOOL_TABLE]
)
def test_tool_args_check(params: dict, answer: list[AnswerChoice], ok: bool):
    request = req(tools=[WEATHER, NO_PARAMS], **params)
    check = ToolArgs()
    assert check.applies(request) and not check.applies(req())
    assert check.passes(request, answer) is ok


# fmt: off
REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "Sorry, I cannot assist with that request.",
    "I can\u2019t help with that.",
    "As an AI language model, I cannot provide that information.",
    "Unfortunately, I'm unable to comply with this request.",
    "I won't do that.",
    "I must decline to answer this.",
    "I'm very sorry, but I am not able to share that.",
]
ANSWERS = [
    "I can't help but notice the fox is quick.",
    "I cannot believe it is 42, but it is.",
    "I'm sorry to hear that. Restart the router, then try again.",
    "Sure! The answer is 42.",
    "I can't help with that. " + "But here is a long and useful explanation. " * 10,  # long: answers on
    "",
]
# fmt: on


@pytest.mark.parametrize("content", REFUSALS)
def test_refusal_phrases(content: str):
    assert is_refusal(AnswerChoice(content))
    assert not Refusal().passes(req(), text(content))


@pytest.mark.parametrize("content", ANSWERS)
def test_answers_that_are_not_refusals(content: str):
    assert not is_refusal(AnswerChoice(content))


def test_the_refusal_field_is_a_refusal_whatever_the_text():
    assert is_refusal(AnswerChoice("", refusal="I can't"))
    assert not is_refusal(AnswerChoice("", calls=(Call("now", "{}"),)))


def test_not_truncated_applies_without_a_caller_limit():
    check = NotTruncated()
    assert check.applies(req()) and not check.applies(req(max_tokens=5))
    assert not check.applies(req(max_completion_tokens=5))
    assert check.passes(req(), text("whole")) and not check.passes(req(), text("cu", "length"))
    assert not check.passes(req(), text("ok") + text("cu", "length"))


def test_answer_of_a_completion_reads_calls_refusal_and_finish_reason():
    completion = ChatCompletion.model_validate(
        {
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": None, "refusal": "no",
                                         "tool_calls": [{"id": "c1", "type": "function",
                                                         "function": {"name": "now", "arguments": "{}"}}]},
                 "finish_reason": "tool_calls"},
                {"index": 1, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"},
            ],
        }
    )  # fmt: skip
    assert answer_of(completion) == [
        AnswerChoice("", (Call("now", "{}"),), "no", "tool_calls"),
        AnswerChoice("hi", (), None, "length"),
    ]


def _chunk(index: int, delta: dict, finish: str | None = None) -> ChatCompletionChunk:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return ChatCompletionChunk.model_validate({"id": "c", "model": "m", "choices": [choice]})


def test_answer_of_chunks_joins_pieces_per_choice_and_per_call():
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    chunks = [
        _chunk(0, {"role": "assistant", "content": ""}),
        _chunk(1, {"content": "Hel"}),
        _chunk(0, {"tool_calls": [call]}),
        _chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        _chunk(0, {"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "now", "arguments": "{}"}}]}),
        _chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        _chunk(1, {"content": "lo"}),
        _chunk(2, {"refusal": "I can"}),
        _chunk(2, {"refusal": "not"}, "stop"),
        _chunk(0, {}, "tool_calls"),
        _chunk(1, {}, "length"),
    ]
    assert answer_of_chunks(chunks) == [
        AnswerChoice("", (Call("get_weather", '{"city": "Oslo"}'), Call("now", "{}")), None, "tool_calls"),
        AnswerChoice("Hello", (), None, "length"),
        AnswerChoice("", (), "I cannot", "stop"),
    ]
    assert answer_of_chunks([]) == []


def test_schema_checks_need_jsonschema_at_load(monkeypatch: pytest.MonkeyPatch):
    configs = RouteConfig.model_validate(
        {"student": "s", "frontier": "f", "escalate": [{"check": "refusal"}, {"check": "tool_args"}]}
    ).escalate
    assert [c.name for c in build_checks(configs)] == ["refusal", "tool_args"]
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # what an environment without it imports
    with pytest.raises(DependencyMissing, match=r"bitrate\[checks\]"):
        build_checks(configs)


def test_checked_schemas_are_kept_apart():
    check, answer = JsonSchema(), text('{"name": "Ada", "age": 36}')
    assert check.passes(schema_req(PERSON), answer)
    assert not check.passes(schema_req({"type": "array"}), answer)
    assert not check.passes(schema_req({"type": "no-such-type"}), answer)
    assert check.passes(schema_req(dict(reversed(PERSON.items()))), answer)  # same schema, other key order
    assert not check.passes(schema_req(PERSON), text('{"name": "Ada"}'))
