"""Line-aware YAML loading into any pydantic model: errors point at the file, line and key at fault.

:func:`load_yaml_model` is generic over the model it fills (the policy is one such model).
PyYAML composes the document into a node tree that keeps each node's position;
pydantic reports errors by key path (``loc``). Walking the tree along the path
gives the line. This module is the one boundary where YAML and pydantic errors
become :class:`~sdk.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sdk.errors import ConfigError

__all__ = ["Problem", "load_yaml_model", "node_line"]

M = TypeVar("M", bound=BaseModel)
Problem = tuple[tuple[str, ...], str]
"""A cross-check that failed after validation: ``(key path, message)``."""


def _read(path: Path, what: str) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", location=str(path)) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", location=where) from exc
    duplicate = _duplicate_key(node)
    if duplicate:
        line, key = duplicate
        raise ConfigError("key defined twice", location=f"{path}:{line}", key=key)
    return data, node


def _duplicate_key(node: yaml.Node | None, path: tuple[str, ...] = ()) -> tuple[int, str] | None:
    """The first key defined twice in one mapping (PyYAML would silently keep the last)."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, (*path, str(i)))
            if found:
                return found
    if not isinstance(node, yaml.MappingNode):
        return None
    seen: set[str] = set()
    for key, value in node.value:
        dotted = (*path, str(key.value))
        if key.value in seen:
            return key.start_mark.line + 1, ".".join(dotted)
        seen.add(key.value)
        found = _duplicate_key(value, dotted)
        if found:
            return found
    return None


def _child(node: yaml.Node, part: object) -> tuple[int, yaml.Node] | None:
    """The child at ``part`` and the line to show for it (a mapping entry's key line)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return key.start_mark.line + 1, value
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item = node.value[part]
        return item.start_mark.line + 1, item
    return None


def node_line(root: yaml.Node | None, loc: Sequence[object]) -> tuple[int | None, str | None]:
    """The 1-based line of the deepest node along ``loc`` and the dotted key. Parts not in the
    file are skipped (union tags pydantic inserts, like the backend name), except the last one
    (a missing key: the line is then its parent mapping's)."""
    if not loc:
        return (root.start_mark.line + 1 if root is not None else None), None
    node, line, parts = root, None, []
    for i, part in enumerate(loc):
        found = _child(node, part) if node is not None else None
        if found is not None:
            line, node = found
        if found is not None or i == len(loc) - 1:
            parts.append(str(part))
    if line is None and root is not None:
        line = root.start_mark.line + 1
    return line, ".".join(parts)


def _first_error(exc: ValidationError) -> tuple[tuple[object, ...], str]:
    errors = exc.errors(include_url=False)
    # a misspelt key shows up twice (unknown key + required key missing): name the typo
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    return loc, msg


def load_yaml_model(
    path: Path,
    model: type[M],
    *,
    what: str,
    context: dict[str, Any] | None = None,
    problems: Callable[[M], Sequence[Problem]] | None = None,
) -> M:
    """Read ``path`` and validate it into ``model``; then run the ``problems`` cross-check. The first
    mistake raises ``ConfigError`` with file:line and key; ``what`` names the file's kind."""
    data, root = _read(path, what)
    if not isinstance(data, dict):
        raise ConfigError(f"a {what} must be a YAML mapping", location=f"{path}:1")
    try:
        value = model.model_validate(data, context=context)
    except ValidationError as exc:
        loc, msg = _first_error(exc)
        raise _located(path, root, loc, msg) from exc
    found = problems(value) if problems is not None else ()
    if found:
        loc, msg = found[0]
        raise _located(path, root, loc, msg)
    return value


def _located(path: Path, root: yaml.Node | None, loc: Sequence[object], msg: str) -> ConfigError:
    line, key = node_line(root, loc)
    where = f"{path}:{line}" if line else str(path)
    return ConfigError(msg, location=where, key=key)
