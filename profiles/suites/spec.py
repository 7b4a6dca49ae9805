"""Suite spec strings, as given to ``bitrate profile build --suite``.

Grammar: ``[FORMAT:]PATH[@N]`` or ``tiny[@N]``.

- ``tiny``: the shipped probe suite.
- ``gsm8k:PATH``, ``bbh:PATH``, ``ifeval:PATH``, ``jsonl:PATH``: a file in that format.
- ``PATH`` ending in ``.jsonl`` or ``.jsonl.gz``: a file in the native item format.
- ``@N`` (optional, any form): keep at most the first ``N`` items *of each category*,
  in file order. Per category rather than overall, so a sample of a sorted file still
  measures every category; deterministic, so a re-run hits the cache.

Several specs load into one suite named by joining them with ``+``; item ids must
stay unique across them.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from profiles.suites.item import Item, Suite
from profiles.suites.loaders import LOADERS
from sdk.errors import ConfigError

__all__ = ["load_suite", "parse_spec"]

_SAMPLE = re.compile(r"^(?P<body>.+)@(?P<n>\d+)$")


def parse_spec(spec: str) -> tuple[str, Path, int | None]:
    """Split a spec into ``(format, path, per_category_limit)``."""
    limit = None
    match = _SAMPLE.match(spec)
    if match:
        spec, limit = match["body"], int(match["n"])
        if limit < 1:
            raise ConfigError(f"sample size must be >= 1 in suite spec '{spec}'")
    fmt, sep, rest = spec.partition(":")
    if sep and fmt in LOADERS:
        return fmt, Path(rest).expanduser(), limit
    loader = LOADERS.get(spec)
    if loader is not None and loader.default_path is not None:
        return spec, loader.default_path, limit
    if spec.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl", Path(spec).expanduser(), limit
    known = ", ".join(sorted(LOADERS))
    raise ConfigError(f"unknown suite spec '{spec}': use tiny, FORMAT:PATH ({known}) or a .jsonl path")


def _sample(items: list[Item], limit: int | None) -> list[Item]:
    if limit is None:
        return items
    kept: Counter[str] = Counter()
    out = []
    for item in items:
        if kept[item.category] < limit:
            kept[item.category] += 1
            out.append(item)
    return out


def load_suite(specs: str | list[str]) -> Suite:
    """Load one or more specs into a single :class:`Suite`."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise ConfigError("no suite given")
    items: list[Item] = []
    seen: set[str] = set()
    for spec in specs:
        fmt, path, limit = parse_spec(spec)
        for item in _sample(LOADERS[fmt]().load(path), limit):
            if item.id in seen:
                raise ConfigError(f"item id '{item.id}' appears in two suites", location=spec, key="id")
            seen.add(item.id)
            items.append(item)
    return Suite(name="+".join(specs), items=items)
