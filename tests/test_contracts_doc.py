"""docs/CONTRACTS.md cannot drift from the code: every dotted name it puts in backticks resolves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "CONTRACTS.md"
PACKAGES = ("sdk", "gateway", "profiles", "bitrate_cli")
DOTTED = re.compile(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`")
NAMES = sorted({name for name in DOTTED.findall(DOC.read_text()) if name.startswith(PACKAGES)})


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            target = getattr(target, attr)
        return target
    raise ModuleNotFoundError(dotted)


def test_the_page_names_enough_to_be_worth_checking():
    assert len(NAMES) > 25


@pytest.mark.parametrize("dotted", NAMES)
def test_every_named_contract_exists(dotted: str):
    assert _resolve(dotted) is not None
