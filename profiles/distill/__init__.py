"""Distillation: the next student trained on the frontier's captured answers (``bitrate student
distill``), and the training data exported from the live store (``bitrate capture export``).

- :func:`distill`: one training run (:class:`DistillConfig` in, :class:`DistillResult` out);
  torch and transformers are imported only when it runs (``pip install 'bitrate[train]'``).
- :func:`export_captures`: captured frontier answers as chat training data plus a held-out suite.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from profiles.distill.config import DistillConfig, DistillResult
from profiles.distill.data import ChatExample, read_chat_jsonl
from profiles.distill.export import ExportResult, export_captures
from sdk.errors import DependencyMissing

__all__ = [
    "ChatExample",
    "DistillConfig",
    "DistillResult",
    "ExportResult",
    "distill",
    "export_captures",
    "read_chat_jsonl",
]


def distill(config: DistillConfig, emit: Callable[[str], None] = print) -> DistillResult:
    """Train the next student as ``config`` says; ``emit`` receives progress lines."""
    for module in ("torch", "transformers", "accelerate") + (("peft",) if config.lora else ()):
        if importlib.util.find_spec(module) is None:
            raise DependencyMissing(module, "train")
    from profiles.distill.trainer import run_distill  # torch and transformers: only when a run starts

    return run_distill(config, emit)
