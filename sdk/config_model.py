"""The one base of every file format a user writes or reads: policy, profile, backend config,
outcome rows. Unknown keys are rejected (a typo is an error, not a silently ignored key) and
each field's docstring becomes its description in the JSON Schema (``bitrate policy schema``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """A typed configuration or file-format object: ``extra="forbid"``, field docstrings documented."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
