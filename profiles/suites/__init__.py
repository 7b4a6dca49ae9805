"""Probe suites: the item format, loaders for public formats, and spec strings.

Public surface: :class:`Item`, :class:`Suite`, :func:`load_suite`, :func:`parse_spec`,
:data:`LOADERS`, :func:`suite_hash`, :data:`TINY_PATH`.
"""

from profiles.suites.item import Item, Suite, suite_hash
from profiles.suites.loaders import LOADERS, TINY_PATH, Loader, read_jsonl
from profiles.suites.spec import load_suite, parse_spec

__all__ = [
    "LOADERS",
    "TINY_PATH",
    "Item",
    "Loader",
    "Suite",
    "load_suite",
    "parse_spec",
    "read_jsonl",
    "suite_hash",
]
