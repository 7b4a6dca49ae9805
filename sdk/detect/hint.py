"""The explicit hint: the caller names the task (header, ``metadata.task`` or ``bitrate.task``).

A hint becomes the decision's task: it is echoed in the ``x-bitrate-task`` and
``x-bitrate-reason`` headers and the ``bitrate`` object, memoised, and counted (as ``other``
unless the route knows the task). So a hint must look like a task name:

===================  ==================================================================
rule                 1 to :data:`MAX_HINT_CHARS` characters from ASCII letters, digits,
                     space and ``_ - . : /`` (surrounding whitespace is stripped; a blank
                     hint is no hint)
``x-bitrate-task``   invalid -> 400 ``invalid_request``, ``param`` ``x-bitrate-task``
``bitrate.task``     an invalid string -> 400 ``invalid_request``, ``param``
                     ``bitrate.task``: bitrate's own option, so a wrong name is the caller's
                     mistake to hear about (a value that is not a string is no hint)
``metadata.task``    invalid -> not a hint (ignored; the next source and detectors are asked):
                     ``metadata`` is OpenAI's free-form field, sent on upstream, whose values
                     may be any string up to 512 characters, so rejecting it would refuse a
                     request the OpenAI API accepts
===================  ==================================================================

The header is checked where the gateway reads it (:func:`checked_hint`), on every request;
the detector checks the same rule again for the in-process client and the ``route explain``
command.
"""

from __future__ import annotations

import re
from typing import Final

from sdk.decision import TaskGuess
from sdk.detect.base import DetectContext
from sdk.errors import InvalidRequest
from sdk.headers import TASK_HEADER
from sdk.protocol import ChatRequest

__all__ = ["MAX_HINT_CHARS", "HintDetector", "checked_hint", "from_context", "valid_hint"]

MAX_HINT_CHARS: Final = 64
"""Longest task hint accepted, in characters."""
_SAFE: Final = re.compile(r"[A-Za-z0-9_\-.:/ ]+").fullmatch
_RULE: Final = f"1-{MAX_HINT_CHARS} characters from letters, digits, space and _ - . : /"


def valid_hint(value: object) -> str | None:
    """``value`` stripped when it is a valid task name, else ``None`` (also for a blank one)."""
    if not isinstance(value, str):
        return None
    task = value.strip()
    return task if len(task) <= MAX_HINT_CHARS and _SAFE(task) else None


def checked_hint(value: str | None, param: str = TASK_HEADER) -> str | None:
    """``value`` stripped; ``None`` when absent or blank; ``InvalidRequest`` naming ``param``
    when it breaks the rule (the message never repeats the value)."""
    if value is None:
        return None
    task = value.strip()
    if not task:
        return None
    if len(task) > MAX_HINT_CHARS:
        got = f"got {len(task)} characters"
        raise InvalidRequest(f"'{param}' must be a task name of {_RULE} ({got})", param=param)
    if not _SAFE(task):
        got = "got other characters"
        raise InvalidRequest(f"'{param}' must be a task name of {_RULE} ({got})", param=param)
    return task


class HintDetector:
    """Trusts the caller: the ``x-bitrate-task`` header (passed as ``hint``), then
    ``metadata.task``, then ``bitrate.task`` in the body; the first valid one names the task.
    An invalid header or ``bitrate.task`` raises; an invalid ``metadata.task`` is passed over
    (see the module docstring)."""

    name = "hint"

    def detect(self, request: ChatRequest, hint: str | None) -> TaskGuess | None:
        """A guess with confidence 1 when a valid hint is present."""
        task = checked_hint(hint)
        if task is None and request.metadata:
            task = valid_hint(request.metadata.get("task"))
        if task is None and request.bitrate:
            option = request.bitrate.get("task")
            task = checked_hint(option, "bitrate.task") if isinstance(option, str) else None
        return TaskGuess(task, "hint", 1.0) if task is not None else None


def from_context(_ctx: DetectContext) -> HintDetector:
    """Registry factory."""
    return HintDetector()
