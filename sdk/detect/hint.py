"""The explicit hint: the caller names the task (header, ``metadata.task`` or ``bitrate.task``)."""

from __future__ import annotations

from sdk.decision import TaskGuess
from sdk.detect.base import DetectContext
from sdk.protocol import ChatRequest

__all__ = ["HintDetector", "from_context"]


class HintDetector:
    """Trusts the caller: the ``x-bitrate-task`` header (passed as ``hint``), then
    ``metadata.task``, then ``bitrate.task`` in the body."""

    name = "hint"

    def detect(self, request: ChatRequest, hint: str | None) -> TaskGuess | None:
        """A guess with confidence 1 when any hint is present."""
        task = hint or (request.metadata or {}).get("task") or (request.bitrate or {}).get("task")
        if not isinstance(task, str) or not task.strip():
            return None
        return TaskGuess(task.strip(), "hint", 1.0)


def from_context(_ctx: DetectContext) -> HintDetector:
    """Registry factory."""
    return HintDetector()
