"""Graders on JSON answers: valid JSON, and JSON that satisfies a JSON Schema.

An answer wrapped in a Markdown code fence (```json ... ```) is unwrapped first.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, field_validator

from profiles.graders.base import Grader, register
from sdk.errors import DependencyMissing

if TYPE_CHECKING:
    from profiles.suites.item import Item

__all__ = ["JSONSchema", "ValidJSON", "parse_json_answer"]

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.DOTALL)
_MISSING = object()


def parse_json_answer(answer: str) -> Any:
    """The JSON value of the answer (fence removed), or a sentinel ``_MISSING``."""
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return _MISSING


@register
class ValidJSON(Grader):
    """1 when the answer is valid JSON (an object, when ``object_only``)."""

    name = "json"
    object_only: bool = False
    """Require a JSON object, not any JSON value."""

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        value = parse_json_answer(answer)
        if value is _MISSING:
            return 0.0
        return float(isinstance(value, dict) or not self.object_only)


def _jsonschema():
    try:
        import jsonschema
    except ImportError as exc:
        raise DependencyMissing("jsonschema", "eval") from exc
    return jsonschema


@register
class JSONSchema(Grader):
    """1 when the answer is JSON that validates against ``schema``."""

    name = "json_schema"
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: dict[str, Any] = Field(alias="schema")
    """The JSON Schema (key ``schema`` in ``grader_args``)."""

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        lib = _jsonschema()
        try:
            lib.validators.validator_for(value).check_schema(value)
        except lib.SchemaError as exc:
            raise ValueError(f"invalid JSON Schema: {exc.message}") from exc
        return value

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        value = parse_json_answer(answer)
        if value is _MISSING:
            return 0.0
        lib = _jsonschema()
        validator = lib.validators.validator_for(self.schema_)(self.schema_)
        return float(validator.is_valid(value))
