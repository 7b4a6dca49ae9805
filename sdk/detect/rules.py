"""Regex rules from the policy over the last user message; the first match names the task."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sdk.decision import TaskGuess
from sdk.detect.base import DetectContext, last_user_text
from sdk.protocol import ChatRequest

__all__ = ["RulesDetector", "from_context"]


class RulesDetector:
    """Tries ``(pattern, task)`` pairs in order with ``re.search``."""

    name = "rules"

    def __init__(self, rules: Sequence[tuple[re.Pattern[str], str]]):
        self.rules = list(rules)

    def detect(self, request: ChatRequest, hint: str | None) -> TaskGuess | None:
        """The first matching rule's task, confidence 1; ``None`` when none matches."""
        text = last_user_text(request)
        for pattern, task in self.rules:
            if pattern.search(text):
                return TaskGuess(task, "rule", 1.0, rule=pattern.pattern)
        return None


def from_context(ctx: DetectContext) -> RulesDetector:
    """Registry factory: the route's compiled rules."""
    return RulesDetector([(rule.pattern, rule.task) for rule in ctx.route.tasks.rules])
