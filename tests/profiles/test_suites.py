"""Suite loading: the native item format, public formats, spec strings, and errors that name the line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from profiles.suites import LOADERS, TINY_PATH, Item, load_suite, parse_spec, suite_hash
from sdk.errors import ConfigError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"public test data not found at {DATA}")


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


ROWS = [
    {"id": "a1", "category": "add", "prompt": "add: 2 3", "reference": 5, "grader": "numeric"},
    {"id": "a2", "category": "add", "prompt": "add: 1 1", "reference": "2", "grader": "numeric"},
    {
        "id": "r1",
        "category": "reverse",
        "messages": [{"role": "user", "content": "reverse: abc"}],
        "reference": "cba",
    },
    {"id": "f1", "category": "free", "prompt": "say hi", "reference": None, "grader": "agreement"},
]


def test_jsonl_loads_items_in_order_with_defaults(tmp_path):
    suite = load_suite(str(write_jsonl(tmp_path / "s.jsonl", ROWS)))
    assert [item.id for item in suite.items] == ["a1", "a2", "r1", "f1"]
    assert suite.categories == ["add", "reverse", "free"]
    assert suite.items[2].grader == "exact"
    assert suite.items[2].prompt_text == "reverse: abc"
    assert [m.content for m in suite.items[0].chat_messages()] == ["add: 2 3"]


def test_gzipped_jsonl_reads_the_same(tmp_path):
    plain = load_suite(str(write_jsonl(tmp_path / "s.jsonl", ROWS)))
    packed = tmp_path / "s.jsonl.gz"
    with gzip.open(packed, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in ROWS))
    assert load_suite(str(packed)).hash == plain.hash


def test_hash_is_canonical_and_changes_with_content(tmp_path):
    suite = load_suite(str(write_jsonl(tmp_path / "s.jsonl", ROWS)))
    reordered_keys = [dict(reversed(list(row.items()))) for row in ROWS]
    assert load_suite(str(write_jsonl(tmp_path / "k.jsonl", reordered_keys))).hash == suite.hash
    changed = [*ROWS[:-1], {**ROWS[-1], "prompt": "say hello"}]
    assert load_suite(str(write_jsonl(tmp_path / "c.jsonl", changed))).hash != suite.hash
    assert len(suite.hash) == 64 and suite.hash == suite_hash(suite.items)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"id": "x", "category": "c", "prompt": "p"', None),  # not JSON
        ('["a list"]', None),
        ('{"id": "x", "prompt": "p"}', "category"),
        ('{"id": "x", "category": "c"}', None),  # neither prompt nor messages
        ('{"id": "x", "category": "c", "prompt": "p", "messages": [{"role": "user", "content": "p"}]}', None),
        ('{"id": "x", "category": "c", "prompt": "p", "colour": "red"}', "colour"),
        ('{"id": "x", "category": "c", "prompt": "p", "grader": "telepathy"}', "grader"),
        ('{"id": "x", "category": "c", "prompt": "p", "grader": "mc", "grader_args": {"t": 1}}', "grader"),
        ('{"id": "a1", "category": "c", "prompt": "p"}', "id"),  # duplicate of line 1
    ],
)
def test_malformed_line_names_file_line_and_field(tmp_path, line, field):
    path = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], "", line])
    with pytest.raises(ConfigError) as caught:
        load_suite(str(path))
    assert f"{path}:3" in str(caught.value)
    if field:
        assert f"key '{field}" in str(caught.value)


def test_missing_file_and_unknown_spec_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_suite(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ConfigError, match="unknown suite spec"):
        load_suite("mmlu")
    with pytest.raises(ConfigError, match="no suite"):
        load_suite([])


def test_spec_grammar():
    assert parse_spec("tiny") == ("tiny", TINY_PATH, None)
    assert parse_spec("tiny@5") == ("tiny", TINY_PATH, 5)
    assert parse_spec("gsm8k:/d/g.jsonl.gz@10") == ("gsm8k", Path("/d/g.jsonl.gz"), 10)
    assert parse_spec("my@suite.jsonl") == ("jsonl", Path("my@suite.jsonl"), None)
    assert set(LOADERS) == {"jsonl", "tiny", "gsm8k", "bbh", "ifeval"}


def test_sample_keeps_first_n_per_category_and_ids_must_be_unique_across_specs(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", ROWS)
    assert [item.id for item in load_suite(f"{path}@1").items] == ["a1", "r1", "f1"]
    with pytest.raises(ConfigError, match="appears in two suites"):
        load_suite([str(path), f"jsonl:{path}"])


def test_item_model_rejects_both_or_neither_prompt_form():
    with pytest.raises(ValueError, match="exactly one"):
        Item(id="x", category="c")


@needs_data
def test_gsm8k_loader_reads_the_number_after_hashes():
    suite = load_suite(f"gsm8k:{DATA / 'gsm8k' / 'gsm8k_test.jsonl.gz'}")
    assert len(suite.items) == 1319 and suite.categories == ["math"]
    first = suite.items[0]
    assert (first.id, first.reference, first.grader) == ("gsm8k-1", 18.0, "numeric")
    assert first.prompt_text.startswith("Janet")


@needs_data
def test_bbh_loader_uses_task_as_category_and_mc_for_lettered_targets():
    suite = load_suite(f"bbh:{DATA / 'bbh' / 'bbh_all.jsonl.gz'}")
    assert len(suite.items) == 6511 and len(suite.categories) == 27
    graders = {item.grader for item in suite.items if item.category == "date_understanding"}
    assert graders == {"mc"}
    booleans = [item for item in suite.items if item.category == "boolean_expressions"]
    assert booleans[0].grader == "exact" and booleans[0].reference == "False"


@needs_data
def test_ifeval_loader_groups_by_first_instruction_and_drops_language_prefix():
    suite = load_suite(f"ifeval:{DATA / 'ifeval' / 'en_input_data.jsonl'}")
    assert len(suite.items) == 541
    first = suite.items[0]
    assert first.id == "ifeval-1000" and first.category == "punctuation"
    assert first.grader_args["instruction_id_list"][0] == "punctuation:no_comma"
    assert "length_constraints" in suite.categories and "detectable_format" in suite.categories


@pytest.mark.skipif(not TINY_PATH.is_file(), reason="the shipped tiny suite is not generated yet")
def test_shipped_tiny_suite_loads_and_samples_per_category():
    suite = load_suite("tiny")
    assert len(suite.categories) >= 2 and len(suite.items) > 2 * len(suite.categories)
    sample = load_suite("tiny@2")
    assert len(sample.items) == 2 * len(suite.categories) and sample.categories == suite.categories
