"""The embedded default: a tiny teacher (plays the frontier), a student distilled
from it, and the profile measured between them, shipped as package data.

Files (written by ``examples/distill/train.py`` and ``bitrate profile build``):

- ``teacher/``, ``student/``: ``save_pretrained`` directories (config, safetensors
  weights, tokenizer with its chat template);
- ``profile.json``: the capability profile of student vs teacher on the ``tiny`` suite.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["EMBEDDED_DIR", "model_dir", "profile_path", "resolve_model_path"]

EMBEDDED_DIR = Path(__file__).resolve().parent
_PREFIX = "embedded:"


def model_dir(name: str) -> Path:
    """Directory of the shipped model ``teacher`` or ``student``."""
    if name not in ("teacher", "student"):
        raise ValueError(f"no embedded model '{name}' (have: teacher, student)")
    return EMBEDDED_DIR / name


def profile_path() -> Path:
    """Path of the shipped profile (student vs teacher on the ``tiny`` suite)."""
    return EMBEDDED_DIR / "profile.json"


def resolve_model_path(model: str) -> str:
    """Turn ``embedded:NAME`` into the shipped directory; other paths pass unchanged."""
    if model.startswith(_PREFIX):
        return str(model_dir(model[len(_PREFIX) :]))
    return model
