"""``bitrate capture export``: the live store's frontier answers as chat training data plus a
held-out suite that ``profile build`` reads; deduplicated, split by prompt hash, counts printed."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bitrate_cli import build_app
from profiles.distill.export import held_out
from profiles.suites import load_suite
from sdk.live.capture import Capture, CaptureTable
from sdk.live.records import Observation, prompt_hash
from sdk.live.store import open_store


def _messages(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _capture(category: str, prompt: str, answer: str, at: float) -> Capture:
    messages = _messages(prompt)
    return Capture(
        "auto",
        category,
        "frontier",
        prompt_hash(messages),
        at,
        None,
        json.dumps(messages),
        json.dumps({"role": "assistant", "content": answer}),
    )


def _spot_check(category: str, prompt: str, answer: str | None, at: float) -> Observation:
    messages = _messages(prompt)
    texts = (
        {}
        if answer is None
        else {
            "messages": json.dumps(messages),
            "frontier_answer": json.dumps({"role": "assistant", "content": answer}),
            "student_answer": json.dumps({"role": "assistant", "content": answer}),
        }
    )
    return Observation(
        "auto", category, 1.0, 1.0, "agreement:exact", "spot_check", prompt_hash(messages), at, **texts
    )


def _fill(path) -> None:
    with open_store(str(path), capture=True) as store:
        table = CaptureTable(store)
        sorts = [
            _capture("sort", f"sort: {w}", "".join(sorted(w)), 10.0 + i)
            for i, w in enumerate(["dcb", "zyx", "qpo", "nml", "kji", "hgf", "edc", "wvu", "tsr", "cba"])
        ]
        table.add([*sorts, _capture("sort", "sort: dcb", "bcd!", 50.0)])  # a repeat, newer: wins
        table.add(
            [
                _capture("double", f"double: {w}", "".join(c + c for c in w), 20.0 + i)
                for i, w in enumerate(["ab", "cd", "ef", "gh"])
            ]
        )
        store.add(
            [
                _spot_check("reverse", "reverse: abc", "cba", 30.0),
                _spot_check("reverse", "reverse: xyz", None, 31.0),
            ]
        )


def test_export_writes_training_chats_and_a_held_out_suite(tmp_path):
    store = tmp_path / "live.sqlite"
    _fill(store)
    train, heldout = tmp_path / "data" / "train.jsonl", tmp_path / "data" / "heldout.jsonl"
    result = CliRunner().invoke(
        build_app(), ["capture", "export", "--store", str(store), "--out", str(train), "--holdout", "0.5"]
    )
    assert result.exit_code == 0, result.output
    chats = [json.loads(line) for line in train.read_text().splitlines()]
    items = load_suite(str(heldout)).items
    assert len(chats) + len(items) == 15  # 10 sorts + 4 doubles + 1 spot check with texts; 1 repeat dropped
    assert all(set(c) == {"messages"} and c["messages"][-1]["role"] == "assistant" for c in chats)
    every = {c["messages"][0]["content"]: c["messages"][-1]["content"] for c in chats}
    every |= {i.messages[0].content: i.reference for i in items}
    assert every["sort: dcb"] == "bcd!" and every["reverse: abc"] == "cba"
    for item in items:  # the split follows the prompt hash: stable across exports
        assert held_out(prompt_hash(_messages(item.prompt_text)), 0.5) and item.grader == "exact"
    assert "1 duplicates dropped" in result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["category", "train", "heldout"]
    by_name = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in lines[1:5]}
    assert set(by_name) == {"double", "reverse", "sort", "total"} and sum(by_name["sort"]) == 10
    again = tmp_path / "again.jsonl"
    CliRunner().invoke(
        build_app(), ["capture", "export", "--store", str(store), "--out", str(again), "--holdout", "0.5"]
    )
    assert again.read_text() == train.read_text()


def test_export_reads_the_policys_store_and_filters_categories(tmp_path):
    _fill(tmp_path / "live.sqlite")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nmodels:\n  m: {backend: transformers, model: embedded:student}\n"
        "live: {store: live.sqlite}\n"
    )
    out = tmp_path / "train.jsonl"
    result = CliRunner().invoke(
        build_app(),
        [
            "capture",
            "export",
            "--policy",
            str(policy),
            "--out",
            str(out),
            "--holdout",
            "0",
            "--category",
            "double",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 4 and not (tmp_path / "heldout.jsonl").exists()


def test_no_store_or_nothing_to_export_is_one_error_line(tmp_path):
    missing = CliRunner().invoke(
        build_app(),
        ["capture", "export", "--store", str(tmp_path / "no.sqlite"), "--out", str(tmp_path / "t.jsonl")],
    )
    assert missing.exit_code == 2 and missing.output.startswith("error: ")
    open_store(str(tmp_path / "empty.sqlite")).close()
    empty = CliRunner().invoke(
        build_app(),
        ["capture", "export", "--store", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "t.jsonl")],
    )
    assert empty.exit_code == 2 and "no captured answer to export" in empty.output
