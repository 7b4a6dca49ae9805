"""Escalation checks on the student's answer: when one fails, the frontier answers instead.

Each check is a small object built from its policy entry (``escalate: [{check: ...}]``)
through ``CHECKS``: ``applies(request)`` says whether it concerns this request at all
(a request no check applies to is never buffered when streamed), ``passes(request, texts)``
judges the answer's choices.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from sdk.policy import Check
from sdk.protocol import ChatCompletion, ChatRequest

__all__ = ["CHECKS", "AnswerCheck", "JsonValid", "NonEmpty", "build_checks", "choice_texts", "failed_check"]


class AnswerCheck(Protocol):
    """A judgement on the student's answer."""

    name: str

    def applies(self, request: ChatRequest) -> bool:
        """Whether this check concerns ``request``."""
        ...

    def passes(self, request: ChatRequest, texts: Sequence[str]) -> bool:
        """Whether the answer (one text per choice) is acceptable."""
        ...


class JsonValid:
    """Applies when ``response_format`` asks for JSON; every choice must parse as JSON."""

    name = "json_valid"

    def applies(self, request: ChatRequest) -> bool:
        fmt = request.response_format
        return fmt is not None and fmt.type in ("json_object", "json_schema")

    def passes(self, request: ChatRequest, texts: Sequence[str]) -> bool:
        for text in texts:
            try:
                json.loads(text)
            except ValueError:
                return False
        return True


class NonEmpty:
    """Applies to every request; every choice must hold some non-blank text."""

    name = "non_empty"

    def applies(self, request: ChatRequest) -> bool:
        return True

    def passes(self, request: ChatRequest, texts: Sequence[str]) -> bool:
        return all(text.strip() for text in texts)


CHECKS: dict[str, type] = {"json_valid": JsonValid, "non_empty": NonEmpty}
"""Check name (the policy's ``check:`` value) -> class."""


def build_checks(configs: Sequence[Check]) -> list[AnswerCheck]:
    """The check objects for a route's ``escalate`` list."""
    return [CHECKS[c.check]() for c in configs]


def choice_texts(completion: ChatCompletion) -> list[str]:
    """The text of each choice; a choice holding only tool calls counts as their arguments."""
    texts = []
    for choice in completion.choices:
        msg = choice.message
        calls = "".join(c.function.arguments for c in msg.tool_calls or [])
        texts.append(msg.content or calls or "")
    return texts


def failed_check(checks: Sequence[AnswerCheck], request: ChatRequest, texts: Sequence[str]) -> str | None:
    """The name of the first applicable check that fails, or ``None``."""
    for check in checks:
        if check.applies(request) and not check.passes(request, texts):
            return check.name
    return None
