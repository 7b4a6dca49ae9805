"""The outcomes JSONL that ``bitrate profile import`` reads: evidence from an eval already run.

One item a line (blank lines are skipped)::

    {"id": "q1", "category": "math", "prompt": "2+2?", "student": 0, "frontier": 1}

Fields:

- ``id`` (string or integer, unique in the file): the item's id.
- ``category`` (non-empty string): the task category.
- ``prompt`` (string) **or** ``messages`` (a list of ``{"role", "content"}``):
  what was asked; with ``messages``, the evidence keeps the user messages' text
  joined by blank lines.
- ``student``, ``frontier`` (number in [0, 1], or true/false): the two scores.
- optional ``student_cost``, ``frontier_cost`` ($ per call, >= 0),
  ``student_latency``, ``frontier_latency`` (seconds, >= 0),
  ``student_tokens``, ``frontier_tokens`` (>= 0).

Unknown fields are rejected (a typo would otherwise silently drop data). The
whole file is read and checked before anything is written; the first bad line
raises ``ConfigError`` naming the file, the line number and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from profiles.assemble import ItemOutcome
from sdk.errors import ConfigError

__all__ = ["file_sha256", "read_outcomes", "write_outcomes"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


Score = StrictBool | float


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | int
    category: str = Field(min_length=1)
    prompt: str | None = None
    messages: list[_Message] | None = None
    student: Score
    frontier: Score
    student_cost: float | None = Field(default=None, ge=0)
    frontier_cost: float | None = Field(default=None, ge=0)
    student_latency: float | None = Field(default=None, ge=0)
    frontier_latency: float | None = Field(default=None, ge=0)
    student_tokens: int | None = Field(default=None, ge=0)
    frontier_tokens: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_prompt(self) -> _Row:
        if (self.prompt is None) == (self.messages is None):
            raise _FieldError("prompt", "give exactly one of 'prompt' or 'messages'")
        for side in ("student", "frontier"):
            score = float(getattr(self, side))
            if not 0.0 <= score <= 1.0:
                raise _FieldError(side, f"score must be in [0, 1], got {score}")
        return self


class _FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _prompt_text(row: _Row) -> str:
    if row.prompt is not None:
        return row.prompt
    texts = []
    for message in row.messages or []:
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            texts.append(message.content)
        elif isinstance(message.content, list):
            texts.extend(str(part.get("text", "")) for part in message.content if part.get("type") == "text")
    return "\n\n".join(texts)


def _to_outcome(row: _Row) -> ItemOutcome:
    return ItemOutcome(
        id=str(row.id),
        category=row.category,
        prompt=_prompt_text(row),
        student=float(row.student),
        frontier=float(row.frontier),
        student_cost=row.student_cost,
        frontier_cost=row.frontier_cost,
        student_latency=row.student_latency,
        frontier_latency=row.frontier_latency,
        student_tokens=row.student_tokens,
        frontier_tokens=row.frontier_tokens,
    )


def _parse_line(line: str, where: str) -> ItemOutcome:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} (column {exc.colno})", location=where) from exc
    if not isinstance(data, dict):
        raise ConfigError("each line must be a JSON object", location=where)
    try:
        return _to_outcome(_Row.model_validate(data))
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


def read_outcomes(path: str | os.PathLike[str]) -> list[ItemOutcome]:
    """Read and check the whole outcomes file; ``ConfigError`` on the first bad line."""
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read outcomes: {exc}", location=str(source)) from exc
    outcomes: list[ItemOutcome] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        outcome = _parse_line(line, where)
        if outcome.id in first_line:
            message = f"duplicate id {outcome.id!r} (first on line {first_line[outcome.id]})"
            raise ConfigError(message, location=where, key="id")
        first_line[outcome.id] = number
        outcomes.append(outcome)
    if not outcomes:
        raise ConfigError("no outcomes in file", location=str(source))
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
