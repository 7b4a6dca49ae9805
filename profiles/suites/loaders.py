"""Loaders: one small strategy object per on-disk format, picked from :data:`LOADERS`.

Each loader turns a file into :class:`~profiles.suites.item.Item` rows. A line that
cannot be read fails with :class:`~sdk.errors.ConfigError` naming the file, the line
number and the field at fault. Files ending in ``.gz`` are read compressed.

Formats:

- ``jsonl``: the native item format (see :mod:`profiles.suites.item`).
- ``tiny``: the shipped probe suite ``profiles/data/tiny.jsonl`` (native format).
- ``gsm8k``: ``{"question", "answer"}``; the reference is the number after ``####``;
  graded ``numeric``; category ``math``; id ``gsm8k-<line>``.
- ``bbh``: BIG-Bench Hard, ``{"task", "idx", "input", "target"}``; category = task;
  targets like ``(B)`` are graded ``mc``, others ``exact`` on the answer's last line.
- ``ifeval``: ``{"key", "prompt", "instruction_id_list", "kwargs"}``; one item per
  prompt, graded ``ifeval`` (prompt-level strict: every instruction must hold);
  category = the instruction group (``punctuation``, ``length_constraints``...) of the
  prompt's *first* instruction. An ``en:`` language prefix on ids is dropped.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from profiles.graders import make_grader
from profiles.suites.item import Item
from sdk.errors import ConfigError

__all__ = ["LOADERS", "TINY_PATH", "Loader", "read_jsonl"]

TINY_PATH = Path(__file__).resolve().parent.parent / "data" / "tiny.jsonl"
"""The shipped probe suite."""


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; ``.gz`` is decompressed."""
    if not path.is_file():
        raise ConfigError("suite file not found", location=str(path))
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"invalid JSON: {exc.msg}", location=f"{path}:{number}") from exc
            if not isinstance(obj, dict):
                raise ConfigError("a line must be a JSON object", location=f"{path}:{number}")
            yield number, obj


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ConfigError("missing field", location=where, key=key)
    if not isinstance(obj[key], kind):
        raise ConfigError(f"wrong type {type(obj[key]).__name__}", location=where, key=key)
    return obj[key]


def _build(where: str, **fields: Any) -> Item:
    """Validate one item and its grader; errors name the location and the field."""
    try:
        item = Item(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        raise ConfigError(first["msg"], location=where, key=key) from exc
    try:
        make_grader(item.grader, item.grader_args)
    except ConfigError as exc:
        raise ConfigError(exc.message, location=where, key="grader") from exc
    return item


class Loader:
    """Turns one file into items. Subclasses set ``name`` and ``item_from``."""

    name: ClassVar[str]
    """The spec prefix that selects this loader (``gsm8k:PATH``)."""
    default_path: ClassVar[Path | None] = None
    """Where the loader reads when the spec names no path."""

    def load(self, path: Path) -> list[Item]:
        """All items of ``path``; ids must be unique."""
        items: list[Item] = []
        seen: set[str] = set()
        for number, obj in read_jsonl(path):
            where = f"{path}:{number}"
            item = self.item_from(obj, number, where)
            if item.id in seen:
                raise ConfigError(f"duplicate id '{item.id}'", location=where, key="id")
            seen.add(item.id)
            items.append(item)
        return items

    def item_from(self, obj: dict[str, Any], number: int, where: str) -> Item:
        """Build the item of one line."""
        raise NotImplementedError


class JsonlLoader(Loader):
    """The native item format."""

    name = "jsonl"

    def item_from(self, obj: dict[str, Any], number: int, where: str) -> Item:
        return _build(where, **obj)


class TinyLoader(JsonlLoader):
    """The shipped probe suite, in the native format."""

    name = "tiny"
    default_path = TINY_PATH


class GSM8KLoader(Loader):
    """Grade-school math: the reference is the number after ``####``."""

    name = "gsm8k"
    instruction = "\nSolve the problem and give the final answer as a number on the last line."

    def item_from(self, obj: dict[str, Any], number: int, where: str) -> Item:
        question = _field(obj, "question", str, where)
        answer = _field(obj, "answer", str, where)
        _, sep, final = answer.rpartition("####")
        if not sep:
            raise ConfigError("no '####' before the final answer", location=where, key="answer")
        try:
            reference = float(final.strip().replace(",", ""))
        except ValueError as exc:
            raise ConfigError(
                f"final answer {final.strip()!r} is not a number", location=where, key="answer"
            ) from exc
        return _build(
            where,
            id=f"gsm8k-{number}",
            category="math",
            prompt=question + self.instruction,
            reference=reference,
            grader="numeric",
        )


class BBHLoader(Loader):
    """BIG-Bench Hard: exact targets; multiple-choice targets graded by letter."""

    name = "bbh"
    instruction = "\nGive only the final answer on the last line."
    _choice = re.compile(r"^\([A-Z]\)$")

    def item_from(self, obj: dict[str, Any], number: int, where: str) -> Item:
        task = _field(obj, "task", str, where)
        idx = _field(obj, "idx", (int, str), where)
        text = _field(obj, "input", str, where)
        target = _field(obj, "target", str, where)
        if self._choice.match(target):
            grader, args = "mc", {}
        else:
            grader, args = "exact", {"last_line": True}
        return _build(
            where,
            id=f"{task}-{idx}",
            category=task,
            prompt=text + self.instruction,
            reference=target,
            grader=grader,
            grader_args=args,
        )


class IFEvalLoader(Loader):
    """IFEval prompts, verified by the instruction checkers (prompt-level, strict)."""

    name = "ifeval"

    def item_from(self, obj: dict[str, Any], number: int, where: str) -> Item:
        key = _field(obj, "key", (int, str), where)
        prompt = _field(obj, "prompt", str, where)
        ids = _field(obj, "instruction_id_list", list, where)
        kwargs = _field(obj, "kwargs", list, where)
        if not ids or len(ids) != len(kwargs):
            raise ConfigError("needs one kwargs object per instruction", location=where, key="kwargs")
        ids = [i.removeprefix("en:") for i in ids]
        return _build(
            where,
            id=f"ifeval-{key}",
            category=ids[0].split(":")[0],
            prompt=prompt,
            grader="ifeval",
            grader_args={"instruction_id_list": ids, "kwargs": kwargs},
        )


LOADERS: dict[str, type[Loader]] = {
    cls.name: cls for cls in (JsonlLoader, TinyLoader, GSM8KLoader, BBHLoader, IFEvalLoader)
}
"""Loader registry: spec prefix -> loader class."""
