"""A route's ``capture:`` section: which of its frontier answers are kept as training data.

::

    live:
      store: bitrate-live.sqlite
      capture: true                 # every route captures (and shadow pairs keep their texts)
      redact: ['\\b\\d{3}-\\d{2}-\\d{4}\\b', '(?i)[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}']
    routes:
      auto:
        capture:
          categories: [uppercase, double, sort]   # default: those the profile does not mark safe
        # capture: false            # this route never captures, whatever live.capture says

Nothing is captured unless configured: a route captures when its ``capture.enabled`` is true,
or is unset and the policy's ``live.capture`` is true. What is kept per captured request (the
``bitrate_live_captures`` table of the live store, under the store's retention): the route,
category, the frontier model's name, the request's messages and the frontier's answer (each
with ``live.redact`` applied first), a hash of the messages, the time and the request id.
"""

from __future__ import annotations

from collections.abc import Container

from pydantic import model_validator

from sdk.config_model import StrictModel

__all__ = ["CaptureConfig"]


class CaptureConfig(StrictModel):
    """Which frontier-served requests of a route are stored with their answers (training data for
    the next student; ``bitrate capture export``). ``capture: true``/``false`` is short for
    ``capture: {enabled: true/false}``."""

    enabled: bool | None = None
    """Capture on this route; null: as the policy's ``live.capture`` says."""
    categories: list[str] | None = None
    """Capture only these task categories; null: every category the route's profile does not
    mark ``safe`` at the route's tolerance (``uncertain``, ``unsafe``, and those it lacks,
    ``unknown`` included): the requests the frontier serves because the student is weak."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"enabled": value} if isinstance(value, bool) else value

    def active(self, live_capture: bool) -> bool:
        """Whether the route captures, given the policy's ``live.capture``."""
        return live_capture if self.enabled is None else self.enabled

    def includes(self, category: str, safe: Container[str]) -> bool:
        """Whether a frontier answer in ``category`` is captured; ``safe``: the categories the
        route's profile marks safe (used when ``categories`` is unset)."""
        return category in self.categories if self.categories is not None else category not in safe
