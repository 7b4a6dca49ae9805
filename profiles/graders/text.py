"""Graders on answer text: exact, normalised, regex, multiple-choice letter, agreement."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from profiles.graders.base import Grader, register
from sdk.textmatch import normalise

if TYPE_CHECKING:
    from profiles.suites.item import Item

__all__ = ["Agreement", "Exact", "MultipleChoice", "Normalised", "Regex", "normalise"]


def references(item: Item) -> list[str]:
    """The item's reference(s) as strings (empty when it has none)."""
    ref = item.reference
    if ref is None:
        return []
    values = ref if isinstance(ref, list) else [ref]
    return [_as_text(v) for v in values]


def _as_text(value: str | float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _last_line(answer: str) -> str:
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@register
class Exact(Grader):
    """1 when the stripped answer equals a reference exactly."""

    name = "exact"
    last_line: bool = False
    """Compare only the answer's last non-blank line (for answers that show work)."""

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        text = (_last_line(answer) if self.last_line else answer).strip()
        return float(text in [r.strip() for r in references(item)])


@register
class Normalised(Grader):
    """1 when the answer equals a reference after :func:`normalise` (case, space, punctuation)."""

    name = "normalised"
    last_line: bool = False
    """Compare only the answer's last non-blank line."""
    contains: bool = False
    """Accept a reference that appears as whole words inside the answer."""

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        text = normalise(_last_line(answer) if self.last_line else answer)
        for ref in map(normalise, references(item)):
            if text == ref or (self.contains and ref and f" {ref} " in f" {text} "):
                return 1.0
        return 0.0


@register
class Regex(Grader):
    """1 when ``pattern`` (or, without one, each reference as a pattern) matches the answer."""

    name = "regex"
    pattern: str | None = None
    """The regular expression; defaults to the item's reference(s)."""
    fullmatch: bool = False
    """Require the whole stripped answer to match, not just a part."""
    ignore_case: bool = False
    """Match case-insensitively."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        flags = re.IGNORECASE if self.ignore_case else 0
        patterns = [self.pattern] if self.pattern is not None else references(item)
        match = re.fullmatch if self.fullmatch else re.search
        return float(any(match(p, answer.strip(), flags) for p in patterns))


_LETTER_PATTERNS = [
    re.compile(r"(?i)answer\s*(?:is|:)?\s*:?\s*\(?([A-Z])\)?(?![A-Za-z])"),
    re.compile(r"\(([A-Z])\)"),
    re.compile(r"^\s*([A-Z])(?:[.):]|\s*$)", re.MULTILINE),
]


def choice_letter(answer: str) -> str | None:
    """The letter an answer picks: "answer is B" first, then "(B)", then a line "B." / "B"."""
    for pattern in _LETTER_PATTERNS:
        found = pattern.findall(answer)
        if found:
            return found[-1].upper()
    return None


@register
class MultipleChoice(Grader):
    """1 when the letter the answer picks ("(B)", "B", "answer is B") is the reference's."""

    name = "mc"
    choices: str = Field(default="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_length=2)
    """The letters offered; a picked letter outside them scores 0."""

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        picked = choice_letter(answer)
        if picked is None or picked not in self.choices:
            return 0.0
        wanted = {r.strip().strip("()").upper() for r in references(item)}
        return float(picked in wanted)


@register
class Agreement(Grader):
    """For items without a reference: the student scores 1 when its answer matches the
    frontier's after :func:`normalise`; the frontier scores 1 by definition."""

    name = "agreement"
    needs_frontier = True

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        if frontier_answer is None:
            return 1.0
        return float(normalise(answer) == normalise(frontier_answer))
