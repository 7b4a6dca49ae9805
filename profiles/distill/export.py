"""Captured frontier answers as training data and a held-out suite (``bitrate capture export``).

From the live store's captures (``sdk.live.capture``):

- **Sources**: the captures (frontier-served requests, ``sdk.live.capture``) and the frontier's
  side of live pairs stored with their texts (spot checks: student-served requests the frontier
  also answered, which give the categories the student already serves well: rehearsal, so the
  next student does not forget them), as :func:`sdk.live.capture.frontier_answers` reads them.
- **Deduplicated** by prompt hash (the SHA-256 of the request's messages): the newest answer
  to a conversation wins (the frontier's latest).
- **Split** by prompt hash, not by a random draw: a conversation is held out when the first 8
  hex digits of its hash, as a fraction of 16^8, fall below ``holdout``. So a re-export of a
  grown store keeps every conversation on the side it was on, and the held-out split never
  leaks into a later training set.
- **Training file**: the OpenAI fine-tuning shape, one ``{"messages": [...]}`` a line: the
  captured request's messages, then the frontier's answer as the assistant turn.
- **Held-out file**: a native-format suite (``profiles.suites.item``) that ``bitrate profile
  build --suite FILE`` reads: ``id`` (``held-`` and 16 hex digits of the prompt hash, stable
  across exports), ``category``, ``messages``,
  ``reference`` (the frontier's answer text) and ``grader`` (``exact`` or ``normalised``). A
  capture whose answer is only tool calls has no text reference: it stays in training.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdk.errors import ConfigError
from sdk.live.capture import Capture

__all__ = ["ExportResult", "export_captures", "held_out"]

Grader = Literal["exact", "normalised"]


def held_out(prompt_hash: str, holdout: float) -> bool:
    """Whether the conversation with this hash belongs to the held-out split."""
    return int(prompt_hash[:8], 16) / 16**8 < holdout


@dataclass
class ExportResult:
    """What an export wrote."""

    train: Path
    """The training file."""
    heldout: Path | None
    """The held-out suite (None when ``holdout`` is 0)."""
    train_counts: Counter[str] = field(default_factory=Counter)
    """Training conversations per category."""
    heldout_counts: Counter[str] = field(default_factory=Counter)
    """Held-out items per category."""
    read: int = 0
    """Captures read from the store."""
    duplicates: int = 0
    """Captures dropped as repeats of a newer one of the same conversation."""
    skipped: int = 0
    """Captures outside the categories asked for."""

    def table(self) -> list[str]:
        """Per-category counts, one line each, then the totals."""
        names = sorted(self.train_counts.keys() | self.heldout_counts.keys())
        width = max([len("category"), *map(len, names)])
        lines = [f"{'category':<{width}}  {'train':>6}  {'heldout':>7}"]
        lines += [f"{n:<{width}}  {self.train_counts[n]:>6}  {self.heldout_counts[n]:>7}" for n in names]
        lines.append(f"{'total':<{width}}  {self.train_counts.total():>6}  {self.heldout_counts.total():>7}")
        return lines


def _newest_per_prompt(
    captures: Iterable[Capture], categories: set[str] | None, result: ExportResult
) -> list[Capture]:
    latest: dict[str, Capture] = {}
    for capture in captures:
        result.read += 1
        if categories is not None and capture.category not in categories:
            result.skipped += 1
            continue
        if capture.prompt_hash in latest:
            result.duplicates += 1
        latest[capture.prompt_hash] = capture  # read oldest first: a later one is newer
    return sorted(latest.values(), key=lambda c: c.at)


def _suite_item(capture: Capture, grader: Grader) -> dict[str, Any] | None:
    answer = json.loads(capture.answer)
    if answer.get("tool_calls") or not isinstance(answer.get("content"), str):
        return None
    return {
        "id": f"held-{capture.prompt_hash[:16]}",
        "category": capture.category,
        "messages": json.loads(capture.messages),
        "reference": answer["content"],
        "grader": grader,
    }


def _write_lines(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror or exc}", location=str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def export_captures(
    captures: Iterable[Capture],
    train: str | os.PathLike[str],
    heldout: str | os.PathLike[str] | None,
    *,
    holdout: float = 0.2,
    categories: Iterable[str] | None = None,
    grader: Grader = "exact",
) -> ExportResult:
    """Write ``captures`` (oldest first) as the training file and the held-out suite (see the
    module docstring); only ``categories`` when given. ``ConfigError`` when nothing is left to
    write for training, or a file cannot be written."""
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"holdout must be in [0, 1), got {holdout:g}", key="--holdout")
    result = ExportResult(Path(train), Path(heldout) if heldout is not None and holdout > 0 else None)
    wanted = set(categories) if categories is not None else None
    train_lines: list[str] = []
    heldout_lines: list[str] = []
    for capture in _newest_per_prompt(captures, wanted, result):
        item = _suite_item(capture, grader) if result.heldout is not None else None
        if item is not None and held_out(capture.prompt_hash, holdout):
            heldout_lines.append(json.dumps(item, ensure_ascii=False))
            result.heldout_counts[capture.category] += 1
        else:
            train_lines.append(json.dumps({"messages": capture.chat()}, ensure_ascii=False))
            result.train_counts[capture.category] += 1
    if not train_lines:
        raise ConfigError(
            f"no captured answer to export ({result.read} captures read, "
            f"{result.skipped} outside the categories asked for)"
        )
    _write_lines(result.train, train_lines)
    if result.heldout is not None:
        _write_lines(result.heldout, heldout_lines)
    return result
