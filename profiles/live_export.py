"""Live observations as outcome rows (``profiles.outcomes``), so ``bitrate profile import`` and
``bitrate route eval`` run on production evidence (``bitrate profile export``).

One observation is one row::

    {"id": 17, "category": "math", "messages": [...], "student": 0.0, "frontier": 1.0}

- ``id``: the store's observation id (unique in the store, so in the file);
- ``messages``: the request's messages, when the store captured them (``capture: true``);
  otherwise ``prompt`` is a placeholder naming the prompt's hash,
  ``[prompt not captured; sha256 <hex>]``: the same conversation gets the same placeholder (so
  ``route eval`` groups repeats as it groups equal prompts), and a reader can tell it from text
  anyone typed. Rows without text carry their category, so no detector needs the prompt;
- ``student``, ``frontier``: the live scores.

The outcomes format has no field for the grader or the direction (``shadow``/``spot_check``),
so :class:`ExportSummary` counts them for the command to print: a live figure never passes
for an offline one unannounced.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from profiles.outcomes import OutcomeRow
from sdk.errors import ConfigError
from sdk.live.records import Observation

__all__ = ["ExportSummary", "export_outcomes", "outcome_row", "placeholder_prompt"]


def placeholder_prompt(prompt_hash: str) -> str:
    """The ``prompt`` of a row whose text was not captured."""
    return f"[prompt not captured; sha256 {prompt_hash}]"


def _captured_messages(observation: Observation) -> list[dict[str, Any]] | None:
    """The captured messages when they make a valid ``messages`` field, else None."""
    if observation.messages is None:
        return None
    try:
        messages = json.loads(observation.messages)
    except json.JSONDecodeError:
        return None
    if not isinstance(messages, list) or not messages:
        return None
    return messages


def outcome_row(observation: Observation) -> dict[str, Any]:
    """The observation as one outcomes line (checked against :class:`OutcomeRow`); it must come
    from a store (have an ``id``)."""
    if observation.id is None:
        raise ValueError("only a stored observation (one with an id) makes an outcome row")
    head = {"id": observation.id, "category": observation.category}
    scores = {"student": observation.student, "frontier": observation.frontier}
    messages = _captured_messages(observation)
    if messages is not None:
        row = {**head, "messages": messages, **scores}
        try:
            OutcomeRow.model_validate(row)
            return row
        except ValidationError:
            pass  # captured, but not chat messages the outcomes format reads: the hash stands in
    return {**head, "prompt": placeholder_prompt(observation.prompt_hash), **scores}


@dataclass
class ExportSummary:
    """What an export wrote."""

    path: Path
    """The outcomes file."""
    rows: int = 0
    """Observations written."""
    with_messages: int = 0
    """Rows carrying the captured messages (the rest carry the placeholder prompt)."""
    graders: Counter[str] = field(default_factory=Counter)
    """Rows per grader."""
    directions: Counter[str] = field(default_factory=Counter)
    """Rows per direction (``shadow``, ``spot_check``, ``replay``)."""

    def line(self) -> str:
        """One line for a person: ``wrote F: N observations (...)``."""
        return (
            f"wrote {self.path}: {self.rows} live observations (graders: {_counts(self.graders)}; "
            f"directions: {_counts(self.directions)}; {self.with_messages} with messages, "
            f"{self.rows - self.with_messages} with a placeholder prompt)"
        )


def _counts(counter: Counter[str]) -> str:
    """``name n, ...``, most first, then by name."""
    return ", ".join(
        f"{name} {n}" for name, n in sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    )


def export_outcomes(observations: Iterable[Observation], path: str | os.PathLike[str]) -> ExportSummary:
    """Write ``observations`` as an outcomes JSONL file, atomically, streaming. With no
    observation nothing is written (an empty file is no outcomes file): ``rows`` is 0.
    ``ConfigError`` when the file cannot be written."""
    target = Path(path)
    summary = ExportSummary(target)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as out:
            for observation in observations:
                row = outcome_row(observation)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                summary.rows += 1
                summary.with_messages += "messages" in row
                summary.graders[observation.grader] += 1
                summary.directions[observation.direction] += 1
        if summary.rows:
            os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(f"cannot write outcomes: {exc.strerror or exc}", location=str(target)) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return summary
