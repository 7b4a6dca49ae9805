"""The grader interface and its registry.

A grader is a small frozen pydantic model: its fields are the item's ``grader_args``
(unknown keys rejected), and ``grade(answer, item)`` returns a score in [0, 1].
Graders that compare with the frontier's answer set ``needs_frontier``; the runner
then passes ``frontier_answer`` for the student and scores the frontier 1.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from sdk.errors import ConfigError

if TYPE_CHECKING:
    from profiles.suites.item import Item

__all__ = ["GRADERS", "Grader", "make_grader", "register"]


class Grader(BaseModel):
    """Scores one answer to one item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    """Registry name, used in an item's ``grader`` field."""
    needs_frontier: ClassVar[bool] = False
    """True when the student's score is agreement with the frontier's answer."""

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        """Score in [0, 1] of ``answer`` to ``item``."""
        raise NotImplementedError


GRADERS: dict[str, type[Grader]] = {}
"""Grader registry: name -> class."""


def register(cls: type[Grader]) -> type[Grader]:
    """Class decorator adding a grader to :data:`GRADERS`."""
    GRADERS[cls.name] = cls
    return cls


@lru_cache(maxsize=256)
def _make(name: str, args_json: str) -> Grader:
    cls = GRADERS.get(name)
    if cls is None:
        raise ConfigError(f"unknown grader '{name}' (have: {', '.join(sorted(GRADERS))})")
    try:
        return cls(**json.loads(args_json))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"grader '{name}' argument {where}: {first['msg']}") from exc


def make_grader(name: str, args: dict[str, Any] | None = None) -> Grader:
    """The grader ``name`` built with ``args`` (cached); bad names or args raise ConfigError."""
    return _make(name, json.dumps(args or {}, sort_keys=True))
