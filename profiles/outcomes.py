"""The outcomes JSONL: evidence from an eval already run, read by ``bitrate profile import`` and
``bitrate route eval`` through one schema (:class:`OutcomeRow`) and one line-aware reader.

One item a line (blank lines are skipped)::

    {"id": "q1", "category": "math", "prompt": "2+2?", "student": 0, "frontier": 1}

Fields:

- ``id`` (string or integer, unique in the file for ``profile import``): the item's id.
- ``category`` (non-empty string): the task category. ``profile import`` requires it;
  ``route eval`` lets the route's detectors name the task when it is absent.
- ``prompt`` (string) **or** ``messages`` (a list of ``{"role", "content"}``):
  what was asked; with ``messages``, the prompt text is the user messages' text
  joined by blank lines.
- ``student``, ``frontier`` (number in [0, 1], or true/false): the two scores.
- optional ``student_cost``, ``frontier_cost`` ($ per call, >= 0),
  ``student_latency``, ``frontier_latency`` (seconds, >= 0),
  ``student_tokens``, ``frontier_tokens`` (>= 0), ``student_mean_logprob``,
  ``student_min_logprob`` (<= 0: the student's token log-probabilities, its confidence).

Unknown fields are rejected (a typo would otherwise silently drop data). The
whole file is read and checked before anything is written; the first bad line
raises ``ConfigError`` naming the file, the line number and the field, with the
same message from both commands.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import Field, StrictBool, ValidationError, field_validator, model_validator

from profiles.assemble import ItemOutcome
from sdk.config_model import StrictModel
from sdk.errors import ConfigError
from sdk.protocol import ChatMessage, ChatRequest, WireModel

__all__ = ["OutcomeRow", "file_sha256", "read_outcome_rows", "read_outcomes", "write_outcomes"]


class OutcomeMessage(WireModel):
    """One chat message of a recorded conversation (extra keys are kept)."""

    role: str
    """``system``, ``user``, ``assistant``, ``tool``..."""
    content: str | list[dict[str, Any]] | None = None
    """Text, or a list of content parts (``{"type": "text", "text": ...}``)."""


class OutcomeRow(StrictModel):
    """One recorded item: what was asked and how each model scored."""

    id: str | int
    """Item id."""
    category: str | None = Field(default=None, min_length=1)
    """Task category; when absent, ``route eval`` lets the route's detectors decide."""
    prompt: str | None = None
    """The prompt text (or give ``messages``)."""
    messages: list[OutcomeMessage] | None = None
    """The conversation, as chat messages (or give ``prompt``)."""
    student: StrictBool | float
    """Student score in [0, 1] (true/false accepted); read back as a float."""
    frontier: StrictBool | float
    """Frontier score in [0, 1] (true/false accepted); read back as a float."""
    student_cost: float | None = Field(default=None, ge=0)
    """What the student call cost ($), if known."""
    frontier_cost: float | None = Field(default=None, ge=0)
    """What the frontier call cost ($), if known."""
    student_latency: float | None = Field(default=None, ge=0)
    """Seconds the student took, if known."""
    frontier_latency: float | None = Field(default=None, ge=0)
    """Seconds the frontier took, if known."""
    student_tokens: int | None = Field(default=None, ge=0)
    """Tokens the student produced, if known."""
    frontier_tokens: int | None = Field(default=None, ge=0)
    """Tokens the frontier produced, if known."""
    student_mean_logprob: float | None = Field(default=None, le=0)
    """Mean log-probability of the student's answer tokens, if recorded (a cascade's signal)."""
    student_min_logprob: float | None = Field(default=None, le=0)
    """Log-probability of the student's least likely answer token, if recorded."""

    @field_validator("student", "frontier", mode="after")
    @classmethod
    def _as_float(cls, value: bool | float) -> float:
        return float(value)

    @model_validator(mode="after")
    def _one_prompt(self) -> OutcomeRow:
        if (self.prompt is None) == (self.messages is None):
            raise _FieldError("prompt", "give exactly one of 'prompt' or 'messages'")
        for side in ("student", "frontier"):
            score = float(getattr(self, side))
            if not 0.0 <= score <= 1.0:
                raise _FieldError(side, f"score must be in [0, 1], got {score}")
        return self

    def prompt_text(self) -> str:
        """What was asked as text: the prompt, or the user messages' text joined by blank lines."""
        if self.prompt is not None:
            return self.prompt
        texts = []
        for message in self.messages or []:
            if message.role != "user":
                continue
            if isinstance(message.content, str):
                texts.append(message.content)
            elif isinstance(message.content, list):
                parts = message.content
                texts.extend(str(part.get("text", "")) for part in parts if part.get("type") == "text")
        return "\n\n".join(texts)

    def prompt_key(self) -> str:
        """What was asked, as one string: rows that share it share a response."""
        if self.messages is None:
            return self.prompt or ""
        return json.dumps([m.model_dump(exclude_none=True) for m in self.messages], sort_keys=True)

    def request(self, route: str) -> ChatRequest:
        """The chat request this row stands for, addressed to ``route``."""
        if self.messages is None:
            return ChatRequest(model=route, messages=[ChatMessage(role="user", content=self.prompt or "")])
        messages = [ChatMessage.model_validate(m.model_dump(exclude_none=True)) for m in self.messages]
        return ChatRequest(model=route, messages=messages)

    def to_outcome(self) -> ItemOutcome:
        """The row as profile evidence (its category must be set)."""
        return ItemOutcome(
            id=str(self.id),
            category=self.category or "",
            prompt=self.prompt_text(),
            student=float(self.student),
            frontier=float(self.frontier),
            student_cost=self.student_cost,
            frontier_cost=self.frontier_cost,
            student_latency=self.student_latency,
            frontier_latency=self.frontier_latency,
            student_tokens=self.student_tokens,
            frontier_tokens=self.frontier_tokens,
            student_mean_logprob=self.student_mean_logprob,
            student_min_logprob=self.student_min_logprob,
        )


class _FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _parse_line(line: str, where: str) -> OutcomeRow:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} (column {exc.colno})", location=where) from exc
    if not isinstance(data, dict):
        raise ConfigError("each line must be a JSON object", location=where)
    try:
        return OutcomeRow.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, where) from exc


def _config_error(exc: ValidationError, where: str) -> ConfigError:
    first = exc.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, _FieldError):
        return ConfigError(str(cause), location=where, key=cause.field)
    loc = [str(part) for part in first["loc"] if not str(part).startswith(("float", "bool", "str", "int"))]
    key = ".".join(loc) or None
    message = first["msg"].removeprefix("Value error, ")
    if key in ("student", "frontier") and first["type"] != "missing":
        message = "score must be a number in [0, 1] (or true/false)"
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return ConfigError(message, location=where, key=key)


def _numbered_rows(path: str | os.PathLike[str]) -> Iterator[tuple[str, OutcomeRow]]:
    """``(file:line, row)`` for every non-blank line; the first bad line raises ``ConfigError``."""
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read outcomes: {exc}", location=str(source)) from exc
    found = False
    for number, line in enumerate(lines, start=1):
        if line.strip():
            found = True
            where = f"{source}:{number}"
            yield where, _parse_line(line, where)
    if not found:
        raise ConfigError("no outcomes in file", location=str(source))


def read_outcome_rows(path: str | os.PathLike[str]) -> list[OutcomeRow]:
    """Read and check the whole outcomes file (``route eval``'s reader: ``category`` optional)."""
    return [row for _where, row in _numbered_rows(path)]


def read_outcomes(path: str | os.PathLike[str]) -> list[ItemOutcome]:
    """Read the file as profile evidence (``profile import``): the same reader, then the stricter
    checks a profile needs (every row has a category, ids are unique), with the same file:line."""
    outcomes: list[ItemOutcome] = []
    first_line: dict[str, str] = {}
    for where, row in _numbered_rows(path):
        if row.category is None:
            raise ConfigError("Field required", location=where, key="category")
        outcome = row.to_outcome()
        if outcome.id in first_line:
            first = first_line[outcome.id].rsplit(":", 1)[1]
            raise ConfigError(
                f"duplicate id {outcome.id!r} (first on line {first})", location=where, key="id"
            )
        first_line[outcome.id] = where
        outcomes.append(outcome)
    return outcomes


def write_outcomes(path: str | os.PathLike[str], outcomes: Iterable[ItemOutcome]) -> Path:
    """Write outcomes as JSONL (``prompt`` form; unknown optional fields omitted), atomically."""
    target = Path(path)
    lines = []
    for outcome in outcomes:
        row = {key: value for key, value in asdict(outcome).items() if value is not None}
        lines.append(json.dumps(row, ensure_ascii=False))
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write outcomes: {exc.strerror or exc}", location=str(target)) from exc
    return target


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (the suite hash of an imported profile)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()
