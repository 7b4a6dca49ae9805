"""Backends: one interface, three implementations, built from typed config.

``make_backend(name, config)`` imports the implementation lazily, so
``import sdk`` never pulls torch, transformers or vllm.
"""

from __future__ import annotations

import importlib

from sdk.backends.base import Backend
from sdk.backends.config import ModelConfig, OpenAIConfig, Price, TransformersConfig, VLLMConfig

__all__ = [
    "Backend",
    "ModelConfig",
    "OpenAIConfig",
    "Price",
    "TransformersConfig",
    "VLLMConfig",
    "make_backend",
]

# backend kind -> "module:class"; imported only when a backend of that kind is built
_REGISTRY = {
    "openai": "sdk.backends.openai_http:OpenAIBackend",
    "transformers": "sdk.backends.transformers_local:TransformersBackend",
    "vllm": "sdk.backends.vllm_engine:VLLMBackend",
}


def make_backend(name: str, config: ModelConfig) -> Backend:
    """Build the backend for one policy model entry. ``name`` is the entry's key."""
    module_name, class_name = _REGISTRY[config.backend].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(name, config)
