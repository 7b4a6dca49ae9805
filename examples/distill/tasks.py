"""Synthetic chat tasks with exactly gradable answers, from easy to hard.

Each category is a small object with ``name`` and ``make(rng) -> (prompt, answer)``;
``CATEGORIES`` lists them in the order tables print. Prompts are natural one-liners
("reverse: abcde") and answers are short strings graded by exact match.

Difficulty, roughly, for a small transformer: ``copy`` and ``uppercase`` (one
position-aligned lookup) < ``lookup`` and ``reverse`` (find a position by
content or by arithmetic) < ``sort`` and ``count`` (a global pass) < ``add``
(carries run right to left, the answer is written left to right) and
``balanced`` (a running depth over the whole string).
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["CATEGORIES", "Category", "Example", "by_name", "sample", "sample_many"]

LOWER = string.ascii_lowercase


@dataclass(frozen=True)
class Example:
    """One task instance: the user's message and the exact reference answer."""

    category: str
    prompt: str
    answer: str


class Category:
    """A task family; subclasses set ``name`` and implement ``make``."""

    name: str = ""

    def make(self, rng: random.Random) -> tuple[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError


def _word(rng: random.Random, lo: int, hi: int, alphabet: str = LOWER) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


class Copy(Category):
    name = "copy"

    def make(self, rng: random.Random) -> tuple[str, str]:
        s = _word(rng, 3, 5)
        return f"copy: {s}", s


class Uppercase(Category):
    name = "uppercase"

    def make(self, rng: random.Random) -> tuple[str, str]:
        s = _word(rng, 3, 5)
        return f"uppercase: {s}", s.upper()


class Reverse(Category):
    name = "reverse"

    def make(self, rng: random.Random) -> tuple[str, str]:
        s = _word(rng, 3, 5)
        return f"reverse: {s}", s[::-1]


class Double(Category):
    name = "double"

    def make(self, rng: random.Random) -> tuple[str, str]:
        s = _word(rng, 2, 5)
        return f"double: {s}", "".join(c + c for c in s)


class Largest(Category):
    name = "largest"

    def make(self, rng: random.Random) -> tuple[str, str]:
        digits = [str(rng.randint(0, 9)) for _ in range(rng.randint(3, 6))]
        return f"largest: {' '.join(digits)}", max(digits)


class Lookup(Category):
    name = "lookup"

    def make(self, rng: random.Random) -> tuple[str, str]:
        keys = rng.sample(LOWER, rng.randint(2, 3))
        values = [str(rng.randint(0, 9)) for _ in keys]
        key = rng.choice(keys)
        pairs = " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
        return f"lookup {key}: {pairs}", values[keys.index(key)]


class Sort(Category):
    name = "sort"

    def make(self, rng: random.Random) -> tuple[str, str]:
        letters = rng.sample(LOWER, rng.randint(3, 4))
        return f"sort: {''.join(letters)}", "".join(sorted(letters))


class Count(Category):
    name = "count"

    def make(self, rng: random.Random) -> tuple[str, str]:
        alphabet = LOWER[: rng.randint(2, 3)]
        s = _word(rng, 3, 6, alphabet)
        target = rng.choice(alphabet)
        return f"count {target}: {s}", str(s.count(target))


class Add(Category):
    name = "add"

    def make(self, rng: random.Random) -> tuple[str, str]:
        a = rng.randint(0, 10 ** rng.randint(1, 2) - 1)
        b = rng.randint(0, 10 ** rng.randint(1, 2) - 1)
        return f"add: {a}+{b}", str(a + b)


def _balanced(rng: random.Random, pairs: int) -> str:
    """A uniformly-ish random balanced string of ``pairs`` bracket pairs."""
    out, depth, opened = [], 0, 0
    while len(out) < 2 * pairs:
        can_open = opened < pairs
        if can_open and (depth == 0 or rng.random() < 0.5):
            out.append("(")
            depth, opened = depth + 1, opened + 1
        else:
            out.append(")")
            depth -= 1
    return "".join(out)


def _is_balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += 1 if ch == "(" else -1
        if depth < 0:
            return False
    return depth == 0


class Balanced(Category):
    """Half balanced strings, half near misses (one bracket flipped or swapped)."""

    name = "balanced"

    def make(self, rng: random.Random) -> tuple[str, str]:
        s = _balanced(rng, rng.randint(2, 5))
        if rng.random() < 0.5:
            chars = list(s)
            i = rng.randrange(len(chars))
            if rng.random() < 0.5 and len(chars) > 1:
                j = rng.randrange(len(chars))
                chars[i], chars[j] = chars[j], chars[i]
            else:
                chars[i] = "(" if chars[i] == ")" else ")"
            s = "".join(chars)
        return f"balanced: {s}", "yes" if _is_balanced(s) else "no"


CATEGORIES: tuple[Category, ...] = (
    Uppercase(),
    Reverse(),
    Copy(),
    Double(),
    Largest(),
    Sort(),
)
"""The trained and shipped categories. ``Lookup``, ``Count``, ``Add`` and ``Balanced``
are kept below but not trained: the 4-layer teacher did not reach 0.95 on them
within the CPU budget (after 4000 steps: lookup 0.43, count 0.53, add 0.28,
balanced 0.47, while uppercase, reverse and sort were >= 0.9)."""

UNUSED: tuple[Category, ...] = (Lookup(), Count(), Add(), Balanced())


def by_name(name: str) -> Category:
    """The category called ``name``."""
    for cat in CATEGORIES:
        if cat.name == name:
            return cat
    raise KeyError(name)


def sample(
    rng: random.Random, exclude: frozenset[str] = frozenset(), weights: dict[str, float] | None = None
) -> Example:
    """One example whose prompt is not in ``exclude``; the category is drawn with
    ``weights`` (by name; uniform when ``None``)."""
    if weights is None:
        cat = rng.choice(CATEGORIES)
    else:
        cat = rng.choices(CATEGORIES, [weights.get(c.name, 1.0) for c in CATEGORIES])[0]
    while True:
        prompt, answer = cat.make(rng)
        if prompt not in exclude:
            return Example(cat.name, prompt, answer)


def sample_many(rng: random.Random, n: int, exclude: frozenset[str] = frozenset()) -> Iterator[Example]:
    """``n`` examples, categories drawn uniformly, prompts outside ``exclude``."""
    for _ in range(n):
        yield sample(rng, exclude)
