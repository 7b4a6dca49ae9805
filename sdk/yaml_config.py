"""Line-aware YAML loading into any pydantic model: errors point at the file, line and key at fault.

:func:`load_yaml_model` is generic over the model it fills (the policy is one such model).
PyYAML composes the document into a node tree that keeps each node's position;
pydantic reports errors by key path (``loc``). Walking the tree along the path
gives the line. This module is the one boundary where YAML and pydantic errors
become :class:`~sdk.errors.ConfigError`. An unknown key names the closest known one
("did you mean 'tolerance'?"), found by walking the model's fields along the same path.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from sdk.errors import ConfigError
from sdk.textfile import read_text

__all__ = ["Problem", "keys_at", "load_yaml_model", "located", "node_line", "validate_yaml_model"]

M = TypeVar("M", bound=BaseModel)
Problem = tuple[tuple[str, ...], str]
"""A cross-check that failed after validation: ``(key path, message)``."""


def _read(path: Path, what: str) -> tuple[Any, yaml.Node | None]:
    text = read_text(path, what)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line, problem = _yaml_problem(exc, text)
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"invalid YAML: {problem}", location=where) from exc
    duplicate = _duplicate_key(node)
    if duplicate:
        line, key = duplicate
        raise ConfigError("key defined twice", location=f"{path}:{line}", key=key)
    return data, node


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """The 1-based line and a one-line description of a PyYAML error (its ``str`` spans lines)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line: int | None = mark.line + 1
    elif isinstance(getattr(exc, "position", None), int):  # a ReaderError: a character YAML refuses
        line = text.count("\n", 0, exc.position) + 1  # type: ignore[attr-defined]
    else:
        line = None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return line, problem


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


def _errors(exc: ValidationError, model: type[BaseModel]) -> list[tuple[tuple[object, ...], str]]:
    """Every error as ``(loc, message)``; an unknown key comes first. A misspelt key shows up
    twice (unknown key + required key missing): the typo is named, not the missing key."""
    errors = exc.errors(include_url=False)
    typo_parents = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"}
    kept = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"][:-1]) in typo_parents)]
    kept.sort(key=lambda e: e["type"] != "extra_forbidden")  # stable: otherwise pydantic's order
    return [(tuple(e["loc"]), _message(e["type"], e["msg"], model, tuple(e["loc"]))) for e in kept]


def _message(kind: str, msg: str, model: type[BaseModel], loc: tuple[object, ...]) -> str:
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), keys_at(model, loc[:-1]), n=1, cutoff=0.6)
        return f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"
    if kind == "missing":
        return "required key is missing"
    return msg.removeprefix("Value error, ")


def keys_at(model: Any, loc: Sequence[object]) -> list[str]:
    """The keys the mapping at ``loc`` (a pydantic error path into ``model``) may hold: the field
    names of the model found there, or ``[]`` when the path leads to no model."""
    origin = get_origin(model)
    if origin is Annotated:
        return keys_at(get_args(model)[0], loc)
    if origin is Union or origin is types.UnionType:
        members = [m for m in get_args(model) if m is not type(None)]
        if len(members) == 1:  # Optional[X]: pydantic adds no tag to the path
            return keys_at(members[0], loc)
        tagged = [m for m in members if loc and _tagged(m, loc[0])]
        return keys_at(tagged[0], loc[1:]) if tagged else []
    is_model = isinstance(model, type) and issubclass(model, BaseModel)
    if not loc:
        return list(model.model_fields) if is_model else []
    if is_model:
        field = model.model_fields.get(str(loc[0]))
        return keys_at(field.annotation, loc[1:]) if field is not None else []
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return keys_at(get_args(model)[-1], loc[1:])
    if origin in (list, tuple, set, frozenset):
        return keys_at(get_args(model)[0], loc[1:])
    return []


def _tagged(member: Any, tag: object) -> bool:
    """Whether ``tag`` (a part of pydantic's error path inside a union) selects ``member``: its class
    name, or the value of a ``Literal`` field (a discriminated union's tag)."""
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return False
    if member.__name__ == tag:
        return True
    return any(
        get_origin(f.annotation) is Literal and tag in get_args(f.annotation)
        for f in member.model_fields.values()
    )


def validate_yaml_model(
    path: Path,
    model: type[M],
    *,
    what: str,
    context: dict[str, Any] | None = None,
    problems: Callable[[M], Sequence[Problem]] | None = None,
) -> tuple[M | None, list[ConfigError]]:
    """Read ``path``, validate it into ``model`` and run the ``problems`` cross-check, keeping every
    mistake: ``(the model, [])``, or ``(None, a ConfigError with file:line and key for each)``.
    ``what`` names the file's kind."""
    try:
        data, root = _read(path, what)
    except ConfigError as exc:
        return None, [exc]
    if not isinstance(data, dict):
        return None, [ConfigError(f"a {what} must be a YAML mapping", location=f"{path}:1")]
    try:
        value = model.model_validate(data, context=context)
    except ValidationError as exc:
        errors = [_located(path, root, loc, msg) for loc, msg in _errors(exc, model)]
        errors[0].__cause__ = exc
        return None, errors
    found = problems(value) if problems is not None else ()
    if found:
        return None, [_located(path, root, loc, msg) for loc, msg in found]
    return value, []


def load_yaml_model(
    path: Path,
    model: type[M],
    *,
    what: str,
    context: dict[str, Any] | None = None,
    problems: Callable[[M], Sequence[Problem]] | None = None,
) -> M:
    """:func:`validate_yaml_model`, raising the first mistake as ``ConfigError``."""
    value, errors = validate_yaml_model(path, model, what=what, context=context, problems=problems)
    if value is None:
        raise errors[0]
    return value


def _located(path: Path, root: yaml.Node | None, loc: Sequence[object], msg: str) -> ConfigError:
    line, key = node_line(root, loc)
    where = f"{path}:{line}" if line else str(path)
    return ConfigError(msg, location=where, key=key)


def located(path: Path | None, problems: Sequence[Problem], *, what: str) -> list[ConfigError]:
    """Problems found after loading, as ``ConfigError`` with the file:line and dotted key of each.
    The file is read again for its lines; without a file (a model built in code) only the key is named."""
    if path is None:
        return [ConfigError(msg, key=".".join(loc)) for loc, msg in problems]
    try:
        _data, root = _read(path, what)
    except ConfigError:  # changed since it was loaded: name the file without a line
        return [ConfigError(msg, location=str(path), key=".".join(loc)) for loc, msg in problems]
    return [_located(path, root, loc, msg) for loc, msg in problems]
