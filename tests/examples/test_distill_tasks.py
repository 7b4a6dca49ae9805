"""The synthetic tasks' references are right, and the tokenizer round-trips text."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

DISTILL = Path(__file__).resolve().parents[2] / "examples" / "distill"
sys.path.insert(0, str(DISTILL))

import tasks  # noqa: E402


def _check(category: str, prompt: str, answer: str) -> bool:
    """An independent grader per category, written from the prompt text alone."""
    head, _, body = prompt.partition(": ")
    if category == "copy":
        return answer == body
    if category == "uppercase":
        return answer == body.upper()
    if category == "reverse":
        return answer == "".join(reversed(body))
    if category == "double":
        return answer == "".join(c * 2 for c in body)
    if category == "largest":
        return answer == max(body.split())
    if category == "sort":
        return answer == "".join(sorted(body))
    if category == "count":
        return answer == str(body.count(head.split()[1]))
    if category == "add":
        a, b = body.split("+")
        return int(answer) == int(a) + int(b)
    if category == "lookup":
        return dict(p.split("=") for p in body.split())[head.split()[1]] == answer
    if category == "balanced":
        depth, ok = 0, True
        for ch in body:
            depth += 1 if ch == "(" else -1
            ok = ok and depth >= 0
        return answer == ("yes" if ok and depth == 0 else "no")
    raise AssertionError(category)


@pytest.mark.parametrize("category", [c.name for c in tasks.CATEGORIES + tasks.UNUSED])
def test_references_match_an_independent_grader(category: str) -> None:
    rng = random.Random(7)
    cat = next(c for c in tasks.CATEGORIES + tasks.UNUSED if c.name == category)
    for _ in range(300):
        prompt, answer = cat.make(rng)
        assert prompt.startswith(category)
        assert _check(category, prompt, answer), (prompt, answer)


def test_balanced_is_roughly_half_yes() -> None:
    rng = random.Random(3)
    balanced = next(c for c in tasks.UNUSED if c.name == "balanced")
    answers = [balanced.make(rng)[1] for _ in range(1000)]
    assert 0.4 < answers.count("yes") / len(answers) < 0.75  # a swap can land on a balanced string


def test_sampling_avoids_excluded_prompts() -> None:
    exclude = frozenset(ex.prompt for ex in tasks.sample_many(random.Random(1), 2000))
    unfiltered = [ex.prompt for ex in tasks.sample_many(random.Random(2), 2000)]
    assert any(p in exclude for p in unfiltered)  # small categories do collide...
    filtered = [ex.prompt for ex in tasks.sample_many(random.Random(2), 2000, exclude)]
    assert not any(p in exclude for p in filtered)  # ...and the filter removes them


def test_tokenizer_round_trips_and_renders_the_chat_prompt() -> None:
    pytest.importorskip("transformers")
    from tokenizer import build_tokenizer

    tok = build_tokenizer()
    for text in ["reverse: ab cd", "  two  spaces ", "lookup b: a=3 b=7", "tab\tand\nnewline"]:
        assert tok.decode(tok.encode(text)) == text
        assert len(tok.encode(text)) == len(text)
    ids = tok.apply_chat_template([{"role": "user", "content": "copy: abc"}], add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert tok.decode(ids) == "<|user|>copy: abc<|end|><|assistant|>"
    assert tok.eos_token == "<|end|>"
