"""Comparing answer texts: the normal form, the last number, JSON. Shared by the offline graders
(``profiles.graders``) and the live ones (``sdk.live.graders``), so an offline figure and a live
one compare answers the same way."""

from __future__ import annotations

import json
import re
import string
from typing import Any

__all__ = ["last_number", "normalise", "parse_json"]

_PUNCT = str.maketrans({c: " " for c in string.punctuation})
# optional sign, digits with thousands commas, optional decimals; or a bare decimal like .5
_NUMBER = re.compile(r"[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-−]?\.\d+")
_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def normalise(text: str) -> str:
    """Lower case, punctuation to spaces, whitespace collapsed."""
    return " ".join(text.lower().translate(_PUNCT).split())


def last_number(text: str) -> float | None:
    """The last number written in ``text`` ("$1,234.50" -> 1234.5), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    return float(found[-1].replace(",", "").replace("−", "-"))


def parse_json(text: str) -> tuple[bool, Any]:
    """``(True, value)`` when ``text`` is JSON (also inside one Markdown code fence), else
    ``(False, None)``."""
    fenced = _FENCE.match(text)
    try:
        return True, json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return False, None
