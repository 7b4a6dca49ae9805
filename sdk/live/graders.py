"""Grading a live pair without a reference: the student's and the frontier's answers to one
request become scores ``(s, f)`` in [0, 1], and the grader's name is recorded with them.

Each grader is a small object built from its policy entry (``sdk.live.shadow_config``) by
:func:`build_grader`; ``await grader.grade(pair)`` returns ``(s, f)``. The live loss of a pair
is ``f - s`` (``sdk.live.monitor``), so a grader that treats the frontier as the reference
(``agreement``, ``embedding``) measures disagreement, and one that scores each side on its own
(``json_valid``, ``numeric``, ``judge``) measures breaks minus fixes.

============ ===================================================================================
name         ``(s, f)``
============ ===================================================================================
agreement:M  ``(1, 1)`` when the answers agree under mode ``M`` (exact, normalised, numeric,
             json), else ``(0, 1)``
json_valid   1 per side whose answer is JSON (and valid against the request's ``json_schema``)
numeric      ``f``: the frontier wrote a number; ``s``: the student wrote the same number, or any
             number where the frontier wrote none; both 1 when neither wrote one
judge:MODEL  ``(won by the student, won by the frontier)`` / 2 over both orders; a tie wins
             neither, so ``(0, 0)`` is two ties
embedding:T  ``(1, 1)`` when cosine similarity >= ``T``, else ``(0, 1)``
============ ===================================================================================

A grader that cannot grade a pair (the judge's answer names no winner) raises
:class:`Ungradable`; the pair is dropped and counted, never guessed.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sdk.checks import AnswerChoice, JsonSchema
from sdk.embed import MINILM_PACKAGE, Embedder, MiniLMEmbedder, minilm_available
from sdk.errors import DependencyMissing
from sdk.live.shadow_config import (
    AgreementGrader,
    EmbeddingGrader,
    GraderConfig,
    JsonValidGrader,
    JudgeGrader,
    NumericGrader,
)
from sdk.protocol import ChatMessage, ChatRequest
from sdk.textmatch import last_number, normalise, parse_json

__all__ = ["JudgeCall", "LiveGrader", "LivePair", "Ungradable", "build_grader", "judge_prompt"]

JudgeCall = Callable[[ChatRequest], Awaitable[str]]
"""Asks the judge model: the request in, the text of its answer out (the caller routes nothing:
it calls the judge's backend and counts what the call cost)."""


@dataclass(frozen=True, slots=True)
class LivePair:
    """One request answered by both sides: what a grader judges."""

    request: ChatRequest
    """The caller's request."""
    student: str
    """The student's answer (the text of its first choice; tool-call arguments when no text)."""
    frontier: str
    """The frontier's answer, likewise."""


class Ungradable(Exception):
    """The grader could not score this pair (it is dropped and counted, not guessed)."""


class LiveGrader(Protocol):
    """Scores a live pair."""

    name: str
    """Recorded with every observation, e.g. ``agreement:normalised``."""

    async def grade(self, pair: LivePair) -> tuple[float, float]:
        """``(s, f)`` in [0, 1]; :class:`Ungradable` when the pair cannot be scored."""
        ...


def _agree_exact(a: str, b: str, _tol: float) -> bool:
    return a.strip() == b.strip()


def _agree_normalised(a: str, b: str, _tol: float) -> bool:
    return normalise(a) == normalise(b)


def _agree_numeric(a: str, b: str, tol: float) -> bool:
    x, y = last_number(a), last_number(b)
    return x is not None and y is not None and math.isclose(x, y, rel_tol=0.0, abs_tol=tol)


def _agree_json(a: str, b: str, _tol: float) -> bool:
    (ok_a, x), (ok_b, y) = parse_json(a), parse_json(b)
    return ok_a and ok_b and x == y


_AGREE: dict[str, Callable[[str, str, float], bool]] = {
    "exact": _agree_exact,
    "normalised": _agree_normalised,
    "numeric": _agree_numeric,
    "json": _agree_json,
}


class Agreement:
    """The student agrees with the frontier, which is the reference."""

    def __init__(self, config: AgreementGrader):
        self.name = f"agreement:{config.mode}"
        self._agree = _AGREE[config.mode]
        self._tol = config.abs_tol

    async def grade(self, pair: LivePair) -> tuple[float, float]:
        return float(self._agree(pair.student, pair.frontier, self._tol)), 1.0


class JsonValid:
    """Each side on its own: is the answer JSON (valid against the request's schema)?"""

    name = "json_valid"

    def __init__(self, config: JsonValidGrader):
        self._schema = _schema_check() if config.schema_check else None

    def _valid(self, request: ChatRequest, text: str) -> float:
        ok, _value = parse_json(text)
        if ok and self._schema is not None and self._schema.applies(request):
            ok = self._schema.passes(request, [AnswerChoice(text)])
        return float(ok)

    async def grade(self, pair: LivePair) -> tuple[float, float]:
        return self._valid(pair.request, pair.student), self._valid(pair.request, pair.frontier)


def _schema_check() -> JsonSchema | None:
    """The ``json_schema`` check, or None without ``jsonschema`` (then only JSON is checked)."""
    try:
        return JsonSchema()
    except DependencyMissing:
        return None


class Numeric:
    """The last number of each answer: the frontier's is the reference when it wrote one."""

    name = "numeric"

    def __init__(self, config: NumericGrader):
        self._abs, self._rel = config.abs_tol, config.rel_tol

    async def grade(self, pair: LivePair) -> tuple[float, float]:
        s, f = last_number(pair.student), last_number(pair.frontier)
        if f is None:
            return 1.0, float(s is None)  # the student answered a number where the frontier did not
        same = s is not None and math.isclose(s, f, rel_tol=self._rel, abs_tol=self._abs)
        return float(same), 1.0


Winner = Literal["student", "frontier", "tie"]

_JUDGE_SYSTEM = (
    "You compare two answers to the same conversation. Judge which answer better serves the "
    "user: correct, complete, following every instruction. Reply with one letter only: A if "
    "answer A is better, B if answer B is better, T if they are equally good."
)
_VERDICT = re.compile(r"\b([ABT])\b")


def _text_of(message: ChatMessage) -> str:
    content = message.content
    if isinstance(content, str) or content is None:
        return content or ""
    return "\n".join(getattr(part, "text", "") or "" for part in content)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def judge_prompt(pair: LivePair, first: str, second: str, max_chars: int) -> list[dict[str, Any]]:
    """The judge's messages: the conversation, answer A = ``first``, answer B = ``second``."""
    conversation = "\n".join(f"{m.role}: {_text_of(m)}" for m in pair.request.messages)
    user = (
        f"Conversation:\n{_cut(conversation, max_chars)}\n\n"
        f"Answer A:\n{_cut(first, max_chars)}\n\nAnswer B:\n{_cut(second, max_chars)}\n\n"
        "Which answer is better? Reply A, B or T."
    )
    return [{"role": "system", "content": _JUDGE_SYSTEM}, {"role": "user", "content": user}]


class Judge:
    """A judge model compares the answers in both orders (position bias cancels); ties allowed."""

    def __init__(self, config: JudgeGrader, model: str, call: JudgeCall):
        self.name = f"judge:{model}"
        self._model, self._call, self._max = model, call, config.max_chars

    async def _winner(self, pair: LivePair, student_first: bool) -> Winner:
        first, second = (pair.student, pair.frontier) if student_first else (pair.frontier, pair.student)
        request = ChatRequest.model_validate(
            {
                "model": self._model,
                "messages": judge_prompt(pair, first, second, self._max),
                "temperature": 0.0,
                "max_tokens": 4,
            }
        )
        found = _VERDICT.search(await self._call(request))
        if found is None:
            raise Ungradable(f"the judge '{self._model}' named no winner (A, B or T)")
        letter = found.group(1)
        if letter == "T":
            return "tie"
        return "student" if (letter == "A") == student_first else "frontier"

    async def grade(self, pair: LivePair) -> tuple[float, float]:
        winners = await asyncio.gather(self._winner(pair, True), self._winner(pair, False))
        return winners.count("student") / 2, winners.count("frontier") / 2


class Embedding:
    """The student agrees with the frontier when their embeddings are close enough."""

    def __init__(self, config: EmbeddingGrader, embedder: Embedder | None = None):
        """``embedder``: MiniLM unless given (tests give a light one)."""
        if embedder is None and not minilm_available():
            raise DependencyMissing(MINILM_PACKAGE.replace("_", "-"), "embeddings")
        self.name = f"embedding:{config.threshold:g}"
        self._threshold = config.threshold
        self._embedder = embedder or MiniLMEmbedder(threads=1)

    async def grade(self, pair: LivePair) -> tuple[float, float]:
        vectors = await asyncio.to_thread(self._embedder.embed, [pair.student, pair.frontier])
        return float(float(vectors[0] @ vectors[1]) >= self._threshold), 1.0


@dataclass(frozen=True, slots=True)
class _Context:
    judge_model: str
    judge: JudgeCall | None


def _judge(config: JudgeGrader, ctx: _Context) -> LiveGrader:
    if ctx.judge is None:
        raise ValueError("a judge grader needs a judge call")
    return Judge(config, ctx.judge_model, ctx.judge)


_BUILDERS: dict[str, Callable[[Any, _Context], LiveGrader]] = {
    "agreement": lambda config, _ctx: Agreement(config),
    "json_valid": lambda config, _ctx: JsonValid(config),
    "numeric": lambda config, _ctx: Numeric(config),
    "embedding": lambda config, _ctx: Embedding(config),
    "judge": _judge,
}
"""Grader kind -> builder (the policy's discriminated union picks the kind)."""


def build_grader(config: GraderConfig, *, judge_model: str, judge: JudgeCall | None = None) -> LiveGrader:
    """The grader for a policy entry. ``judge_model`` names the judge (in the grader's name);
    ``judge`` asks it (needed by ``judge`` graders only). A missing optional package raises
    ``DependencyMissing`` here, at startup."""
    return _BUILDERS[config.kind](config, _Context(judge_model, judge))
