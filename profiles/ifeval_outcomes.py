"""Outcomes derived from recorded IFEval results (a copy lives in ``../shared/data/ifeval``).

Two files in the data folder:

- ``ifeval_en_outcomes.jsonl.gz``: per prompt, model and mode (``strict`` or
  ``loose``), fields ``key, model, mode, instruction_id_list,
  follow_instruction_list``;
- ``en_input_data.jsonl``: the prompts, fields ``key, prompt, ...``.

For a frontier model, a student model and a mode, ``ifeval_outcomes`` yields one
``ItemOutcome`` per (prompt, instruction): id ``KEY/POSITION/INSTRUCTION``,
category = the instruction group (``en:punctuation:no_comma`` ->
``punctuation``), score 1 when the model followed the instruction, else 0.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from profiles.assemble import ItemOutcome
from sdk.errors import ConfigError

__all__ = ["OUTCOMES_FILE", "PROMPTS_FILE", "ifeval_outcomes", "instruction_group", "list_models"]

OUTCOMES_FILE = "ifeval_en_outcomes.jsonl.gz"
PROMPTS_FILE = "en_input_data.jsonl"


def instruction_group(instruction_id: str) -> str:
    """The category of an instruction id: the part before its second colon, ``en:`` stripped."""
    return instruction_id.removeprefix("en:").split(":", 1)[0]


def _records(data_dir: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    path = data_dir / OUTCOMES_FILE
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield number, json.loads(line)
    except (OSError, EOFError) as exc:
        raise ConfigError(f"cannot read IFEval outcomes: {exc}", location=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg}", location=f"{path}:{number}") from exc


def list_models(data_dir: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Models with recorded outcomes and, for each, its modes (sorted)."""
    models: dict[str, set[str]] = {}
    for _, record in _records(Path(data_dir)):
        models.setdefault(record["model"], set()).add(record["mode"])
    return {model: sorted(modes) for model, modes in sorted(models.items())}


def _load_prompts(data_dir: Path) -> dict[int, str]:
    path = data_dir / PROMPTS_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read IFEval prompts: {exc}", location=str(path)) from exc
    prompts = {}
    for line in lines:
        if line.strip():
            row = json.loads(line)
            prompts[row["key"]] = row["prompt"]
    return prompts


def _model_rows(data_dir: Path, model: str, mode: str) -> dict[int, dict[str, Any]]:
    rows = {rec["key"]: rec for _, rec in _records(data_dir) if rec["model"] == model and rec["mode"] == mode}
    if not rows:
        known = ", ".join(list_models(data_dir))
        raise ConfigError(f"no IFEval outcomes for model {model!r} in mode {mode!r} (models: {known})")
    return rows


def ifeval_outcomes(
    data_dir: str | os.PathLike[str], *, frontier: str, student: str, mode: str = "strict"
) -> list[ItemOutcome]:
    """One outcome per (prompt, instruction) that both models were scored on, ordered by key."""
    root = Path(data_dir)
    prompts = _load_prompts(root)
    f_rows, s_rows = _model_rows(root, frontier, mode), _model_rows(root, student, mode)
    outcomes = []
    for key in sorted(f_rows.keys() & s_rows.keys()):
        f_rec, s_rec = f_rows[key], s_rows[key]
        if f_rec["instruction_id_list"] != s_rec["instruction_id_list"]:
            raise ConfigError(f"prompt {key}: the two models were scored on different instructions")
        followed = zip(f_rec["follow_instruction_list"], s_rec["follow_instruction_list"], strict=True)
        for pos, (instruction, (f_ok, s_ok)) in enumerate(
            zip(f_rec["instruction_id_list"], followed, strict=True)
        ):
            outcomes.append(
                ItemOutcome(
                    id=f"{key}/{pos}/{instruction.removeprefix('en:')}",
                    category=instruction_group(instruction),
                    prompt=prompts.get(key, ""),
                    student=1.0 if s_ok else 0.0,
                    frontier=1.0 if f_ok else 0.0,
                )
            )
    return outcomes
