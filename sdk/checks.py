"""Escalation checks on the student's answer: when one fails, the frontier answers instead.

Each check is a small object built from its policy entry (``escalate: [{check: ...}]``)
through ``CHECKS``: ``applies(request)`` says whether it concerns this request at all
(a request no check applies to is never buffered when streamed), ``passes(request, answer)``
judges the answer's choices (:class:`AnswerChoice`, read from a completion by
:func:`answer_of` or from a buffered stream's chunks by :func:`answer_of_chunks`). An answer
with no choices passes no check.

============== ============================================ ===================================
check          applies to                                   fails when a choice
============== ============================================ ===================================
json_valid     ``response_format`` json_object/json_schema  does not parse as JSON
json_schema    ``response_format`` json_schema with schema  does not validate against it
tool_args      requests with ``tools``                      calls a tool not offered, with
                                                            arguments that are not a JSON object
                                                            valid against its ``parameters``, or
                                                            makes no call ``tool_choice`` asked for
refusal        every request                                refuses (:class:`Refusal`)
not_truncated  requests without a token limit               ends with ``finish_reason: length``
non_empty      every request                                holds no text and no tool call
============== ============================================ ===================================

``json_schema`` and ``tool_args`` validate with ``jsonschema`` (``pip install 'bitrate[checks]'``),
imported when a route that lists them loads: a missing package fails the start, not a request.
A schema the validator cannot use (invalid, or a ``$ref`` it cannot resolve) fails the check,
so the frontier answers and judges the schema itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from sdk.bounded import BoundedCache
from sdk.errors import DependencyMissing
from sdk.policy import Check
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest, FinishReason, Tool

__all__ = [
    "CHECKS",
    "AnswerCheck",
    "AnswerChoice",
    "Call",
    "JsonSchema",
    "JsonValid",
    "NonEmpty",
    "NotTruncated",
    "Refusal",
    "ToolArgs",
    "answer_of",
    "answer_of_chunks",
    "build_checks",
    "failed_check",
]


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call of an answer."""

    name: str
    """The function called."""
    arguments: str
    """Its arguments as the model wrote them (JSON text, when well formed)."""


@dataclass(frozen=True, slots=True)
class AnswerChoice:
    """One choice of an answer, as the checks see it."""

    content: str = ""
    """The text (empty when none)."""
    calls: tuple[Call, ...] = ()
    """Tool calls, in order."""
    refusal: str | None = None
    """The message's ``refusal`` field, when the backend sets one (OpenAI structured outputs)."""
    finish_reason: FinishReason | None = None
    """Why generation ended."""

    @property
    def text(self) -> str:
        """The content, or for a choice holding only tool calls their arguments joined."""
        return self.content or "".join(call.arguments for call in self.calls)


class AnswerCheck(Protocol):
    """A judgement on the student's answer."""

    name: str

    def applies(self, request: ChatRequest) -> bool:
        """Whether this check concerns ``request``."""
        ...

    def passes(self, request: ChatRequest, answer: Sequence[AnswerChoice]) -> bool:
        """Whether the answer (its choices) is acceptable; never for no choices."""
        ...


def answer_of(completion: ChatCompletion) -> list[AnswerChoice]:
    """The choices of a completion."""
    answer = []
    for choice in completion.choices:
        msg = choice.message
        calls = tuple(Call(c.function.name, c.function.arguments) for c in msg.tool_calls or ())
        refusal = (msg.model_extra or {}).get("refusal")
        answer.append(
            AnswerChoice(
                msg.content or "", calls, refusal if isinstance(refusal, str) else None, choice.finish_reason
            )
        )
    return answer


@dataclass
class _Joined:
    """A choice being put together from stream deltas."""

    content: list[str]
    calls: dict[int, list[str]]
    names: dict[int, str]
    refusal: list[str]
    finish_reason: FinishReason | None = None

    def choice(self) -> AnswerChoice:
        calls = tuple(Call(self.names.get(i, ""), "".join(self.calls[i])) for i in sorted(self.calls))
        return AnswerChoice("".join(self.content), calls, "".join(self.refusal) or None, self.finish_reason)


def answer_of_chunks(chunks: Sequence[ChatCompletionChunk]) -> list[AnswerChoice]:
    """The choices of a whole stream, joined from its chunks' deltas (tool-call pieces by their
    ``index``, a ``refusal`` delta field as the choice's refusal)."""
    joined: dict[int, _Joined] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            part = joined.setdefault(choice.index, _Joined([], {}, {}, []))
            delta = choice.delta
            part.content.append(delta.content or "")
            refusal = (delta.model_extra or {}).get("refusal")
            if isinstance(refusal, str):
                part.refusal.append(refusal)
            for call in delta.tool_calls or ():
                _join_call(part, call)
            part.finish_reason = choice.finish_reason or part.finish_reason
    return [joined[i].choice() for i in sorted(joined)]


def _join_call(part: _Joined, call: dict[str, Any]) -> None:
    index = call.get("index", 0)
    index = index if isinstance(index, int) else 0
    function = call.get("function") or {}
    if isinstance(function.get("name"), str):
        part.names[index] = function["name"]
    part.calls.setdefault(index, []).append(str(function.get("arguments") or ""))


def _jsonschema() -> ModuleType:
    try:
        import jsonschema
    except ImportError as exc:
        raise DependencyMissing("jsonschema", "checks") from exc
    return jsonschema


def _parsed(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except ValueError:
        return False, None


_SCHEMAS = 256
"""Most checked schemas kept per check (checking a schema against its metaschema costs ~2 ms)."""
_SCHEMA_BYTES = 8 << 20
"""Most bytes of checked schemas kept per check: a schema is the caller's to choose."""
_VALIDATOR_BYTES = 4096
"""About what a validator holds besides its schema's text (the parsed schema, its resolver)."""


def _validator_bytes(key: str, _validator: object) -> int:
    return _VALIDATOR_BYTES + 2 * len(key)


class _Validator:
    """``jsonschema`` behind one call: is ``instance`` valid against ``schema``? Each schema is
    checked against its metaschema once and its validator kept (by the schema's JSON text)."""

    def __init__(self) -> None:
        self._lib = _jsonschema()
        from referencing.exceptions import Unresolvable  # installed with jsonschema

        self._unusable = (self._lib.exceptions.SchemaError, Unresolvable)
        self._checked = BoundedCache[str, Any](_SCHEMAS, _SCHEMA_BYTES, _validator_bytes)
        """Schema JSON (keys sorted) -> its validator, or ``False`` for a schema that is not valid."""

    def valid(self, schema: dict[str, Any], instance: Any) -> bool:
        """True when ``instance`` validates; False when it does not or the schema is unusable."""
        key = json.dumps(schema, sort_keys=True)
        validator = self._checked.get(key)
        if validator is None:
            validator = self._build(schema)
            self._checked.put(key, validator)
        if validator is False:
            return False
        try:
            return bool(validator.is_valid(instance))
        except self._unusable:  # a $ref is resolved when validation reaches it
            return False

    def _build(self, schema: dict[str, Any]) -> Any:
        cls = self._lib.validators.validator_for(schema, default=self._lib.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except self._lib.exceptions.SchemaError:
            return False
        return cls(schema)


class JsonValid:
    """Applies when ``response_format`` asks for JSON; every choice must parse as JSON."""

    name = "json_valid"

    def applies(self, request: ChatRequest) -> bool:
        fmt = request.response_format
        return fmt is not None and fmt.type in ("json_object", "json_schema")

    def passes(self, request: ChatRequest, answer: Sequence[AnswerChoice]) -> bool:
        return bool(answer) and all(_parsed(choice.text)[0] for choice in answer)


class JsonSchema:
    """Applies when ``response_format`` is a ``json_schema`` with a schema; every choice's content
    must parse as JSON and validate against that schema."""

    name = "json_schema"

    def __init__(self) -> None:
        self._validator = _Validator()

    @staticmethod
    def _schema(request: ChatRequest) -> dict[str, Any] | None:
        fmt = request.response_format
        return fmt.json_schema.schema_ if fmt is not None and fmt.type == "json_schema" else None

    def applies(self, request: ChatRequest) -> bool:
        return self._schema(request) is not None

    def passes(self, request: ChatRequest, answer: Sequence[AnswerChoice]) -> bool:
        schema = self._schema(request)
        if not answer or schema is None:
            return False
        for choice in answer:
            ok, value = _parsed(choice.content)
            if not ok or not self._validator.valid(schema, value):
                return False
        return True


class ToolArgs:
    """Applies to a request with ``tools``. Every tool call must name an offered function and carry
    arguments that parse as a JSON object valid against that function's ``parameters`` (when
    given); ``tool_choice: required`` (or a named function) needs at least one call (to it)."""

    name = "tool_args"

    def __init__(self) -> None:
        self._validator = _Validator()

    def applies(self, request: ChatRequest) -> bool:
        return bool(request.tools)

    def passes(self, request: ChatRequest, answer: Sequence[AnswerChoice]) -> bool:
        tools = {tool.function.name: tool for tool in request.tools or ()}
        forced = _forced_call(request.tool_choice)
        return bool(answer) and all(self._choice_ok(choice, tools, forced) for choice in answer)

    def _choice_ok(self, choice: AnswerChoice, tools: dict[str, Tool], forced: str | bool) -> bool:
        if forced and not choice.calls:
            return False
        for call in choice.calls:
            tool = tools.get(call.name)
            if tool is None or (isinstance(forced, str) and call.name != forced):
                return False
            ok, args = _parsed(call.arguments or "{}")
            if not ok or not isinstance(args, dict):
                return False
            schema = tool.function.parameters
            if schema is not None and not self._validator.valid(schema, args):
                return False
        return True


def _forced_call(tool_choice: str | dict[str, Any] | None) -> str | bool:
    """The function ``tool_choice`` forces (its name), ``True`` for ``required``, else ``False``."""
    if tool_choice == "required":
        return True
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        return name if isinstance(name, str) else True
    return False


_A = "['\u2019]"  # a straight or a typographic apostrophe
_REFUSAL_START = re.compile(
    rf"""^\s*
    (?:(?:I{_A}m|I\ am)\ (?:very\ |so\ |truly\ )?sorry|sorry|I\ apologi[sz]e|unfortunately)?[,.!]?\s*
    (?:but\s+)?
    (?:as\ an\ AI(?:\ (?:language\ )?model)?,?\s+)?
    (?:(?:I|we)\s+(?:cannot|can\ not|can{_A}t|won{_A}t|will\ not|am\ unable\ to|are\ unable\ to
                     |am\ not\ able\ to|must\ decline\ to)
      |I{_A}m\ (?:unable|not\ able)\ to|we{_A}re\ (?:unable|not\ able)\ to)
    \s+(?:help|assist|comply|provide|fulfill?|do\ that|do\ this|answer|generate|create|write|share
          |engage|support|complete|continue|participate)\b
    (?!\s+but\b)""",
    re.IGNORECASE | re.VERBOSE,
)
REFUSAL_MAX_CHARS = 300
"""Longest answer the phrase list may call a refusal: longer ones that start with "I can't..." go on
to answer (hedges, caveats), and a false alarm costs a frontier call."""


class Refusal:
    """Applies to every request; fails when a choice refuses: its ``refusal`` field is set (OpenAI's
    structured outputs), or, conservatively, it is short (at most :data:`REFUSAL_MAX_CHARS`) and
    begins like a refusal ("I'm sorry, but I can't help with that", "As an AI, I cannot provide",
    "I won't do that"; not "I can't help but notice"). A choice holding only tool calls never refuses."""

    name = "refusal"

    def applies(self, request: ChatRequest) -> bool:
        return True

    def passes(self, request: ChatRequest, answer: Sequence[AnswerChoice]) -> bool:
        return bool(answer) and not any(is_refusal(choice) for choice in answer)


def is_refusal(choice: AnswerChoice) -> bool:
    """Whether ``choice`` refuses (see :class:`Refusal`)."""
    if choice.refusal:
        return True
    text = choice.content.strip()
    return len(text) <= REFUSAL_MAX_CHARS and _REFUSAL_START.match(text) is not None


class NotTruncated:
    """Applies when the caller set no ``max_tokens``/``max_completion_tokens`` (so asked for the
    whole answer: a cut came from the student's own limit or context, not from the caller);
    fails when a choice ended with ``finish_reason: length``."""

    name = "not_truncated"

    def applies(self, request: ChatRequest) -> bool:
        return request.token_limit is None

    def passes(self, request: ChatRequest, answer: Sequence[AnswerChoice]) -> bool:
        return bool(answer) and all(choice.finish_reason != "length" for choice in answer)


class NonEmpty:
    """Applies to every request; every choice must hold some non-blank text (or a tool call's
    non-blank arguments)."""

    name = "non_empty"

    def applies(self, request: ChatRequest) -> bool:
        return True

    def passes(self, request: ChatRequest, answer: Sequence[AnswerChoice]) -> bool:
        return bool(answer) and all(choice.text.strip() for choice in answer)


CHECKS: dict[str, type[AnswerCheck]] = {
    "json_valid": JsonValid,
    "json_schema": JsonSchema,
    "tool_args": ToolArgs,
    "refusal": Refusal,
    "not_truncated": NotTruncated,
    "non_empty": NonEmpty,
}
"""Check name (the policy's ``check:`` value) -> class."""


def build_checks(configs: Sequence[Check]) -> list[AnswerCheck]:
    """The check objects for a route's ``escalate`` list (``DependencyMissing`` when one needs
    ``jsonschema`` and it is not installed)."""
    return [CHECKS[c.check]() for c in configs]


def failed_check(
    checks: Sequence[AnswerCheck], request: ChatRequest, answer: Sequence[AnswerChoice]
) -> str | None:
    """The name of the first applicable check that fails, or ``None``."""
    for check in checks:
        if check.applies(request) and not check.passes(request, answer):
            return check.name
    return None
