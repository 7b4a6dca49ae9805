"""The numeric grader: the last number in the answer against the reference."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from profiles.graders.base import Grader, register
from sdk.textmatch import last_number

if TYPE_CHECKING:
    from profiles.suites.item import Item

__all__ = ["Numeric", "last_number"]


@register
class Numeric(Grader):
    """1 when the last number in the answer equals a reference within the tolerances."""

    name = "numeric"
    abs_tol: float = Field(default=1e-6, ge=0)
    """Absolute tolerance."""
    rel_tol: float = Field(default=0.0, ge=0)
    """Relative tolerance (0.01 = 1%)."""

    def grade(self, answer: str, item: Item, *, frontier_answer: str | None = None) -> float:
        got = last_number(answer)
        if got is None:
            return 0.0
        refs = item.reference if isinstance(item.reference, list) else [item.reference]
        for ref in refs:
            wanted = last_number(str(ref)) if isinstance(ref, str) else ref
            if wanted is not None and math.isclose(got, wanted, rel_tol=self.rel_tol, abs_tol=self.abs_tol):
                return 1.0
        return 0.0
