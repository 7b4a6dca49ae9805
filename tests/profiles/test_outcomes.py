"""The outcomes JSONL reader: good files, and bad lines named by file, line and field."""

from __future__ import annotations

import hashlib
import json

import pytest

from profiles.assemble import ItemOutcome
from profiles.outcomes import file_sha256, read_outcomes, write_outcomes
from sdk.errors import ConfigError

GOOD = [
    {"id": "a1", "category": "math", "prompt": "2+2?", "student": 1, "frontier": 1},
    {
        "id": 7,
        "category": "chat",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "how are you?"}]},
        ],
        "student": 0.25,
        "frontier": True,
        "student_cost": 0.0001,
        "frontier_cost": 0.01,
        "student_latency": 0.2,
        "frontier_tokens": 12,
    },
]


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_reads_prompt_and_messages_rows(tmp_path):
    outcomes = read_outcomes(_write(tmp_path / "o.jsonl", [GOOD[0], "", GOOD[1]]))
    assert outcomes[0] == ItemOutcome(id="a1", category="math", prompt="2+2?", student=1.0, frontier=1.0)
    chat = outcomes[1]
    assert chat.id == "7"
    assert chat.prompt == "hello\n\nhow are you?"
    assert (chat.student, chat.frontier) == (0.25, 1.0)
    assert (chat.student_cost, chat.frontier_cost, chat.student_latency) == (0.0001, 0.01, 0.2)
    assert chat.frontier_tokens == 12 and chat.student_tokens is None


def test_write_then_read_round_trip(tmp_path):
    original = read_outcomes(_write(tmp_path / "o.jsonl", GOOD))
    path = write_outcomes(tmp_path / "copy.jsonl", original)
    assert read_outcomes(path) == original
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


BAD_LINES = [
    ('{"id": 1, "category": "m", "prompt": "p", "student": 1, "frontier": 0', None, "not valid JSON"),
    ("[1, 2]", None, "JSON object"),
    ('{"id": 1, "category": "m", "prompt": "p", "frontier": 0}', "student", "Field required"),
    ('{"id": 1, "category": "m", "prompt": "p", "student": 1.5, "frontier": 0}', "student", "[0, 1]"),
    ('{"id": 1, "category": "m", "prompt": "p", "student": 1, "frontier": "yes"}', "frontier", "[0, 1]"),
    ('{"id": 1, "category": "m", "prompt": "p", "student": 1, "frontier": -0.1}', "frontier", "[0, 1]"),
    ('{"id": 1, "category": "", "prompt": "p", "student": 1, "frontier": 0}', "category", "at least 1"),
    ('{"id": 1, "category": "m", "student": 1, "frontier": 0}', "prompt", "exactly one"),
    (
        '{"id": 1, "category": "m", "prompt": "p", "messages": [], "student": 1, "frontier": 0}',
        "prompt",
        "exactly one",
    ),
    (
        '{"id": 1, "category": "m", "prompt": "p", "student": 1, "frontier": 0, "sudent_cost": 1}',
        "sudent_cost",
        "unknown field",
    ),
    (
        '{"id": 1, "category": "m", "prompt": "p", "student": 1, "frontier": 0, "frontier_cost": -2}',
        "frontier_cost",
        "greater than or equal",
    ),
    ('{"id": 2, "category": "m", "prompt": "p", "student": 1, "frontier": 0}', "id", "duplicate id"),
]


@pytest.mark.parametrize(("line", "field", "message"), BAD_LINES)
def test_bad_line_names_file_line_and_field(tmp_path, line, field, message):
    path = _write(tmp_path / "bad.jsonl", [GOOD[0], {**GOOD[0], "id": 2}, line])
    with pytest.raises(ConfigError) as info:
        read_outcomes(path)
    assert info.value.location == f"{path}:3"
    assert info.value.key == field
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_empty_or_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no outcomes"):
        read_outcomes(_write(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(ConfigError, match="cannot read"):
        read_outcomes(tmp_path / "absent.jsonl")
