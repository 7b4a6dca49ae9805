"""Typed configuration of the backends, one model per entry of a policy's ``models``.

A discriminated union on ``backend``; unknown keys are rejected at load.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sdk.config_model import StrictModel

__all__ = [
    "ModelConfig",
    "OpenAIConfig",
    "Price",
    "TransformersConfig",
    "VLLMConfig",
]


class Price(StrictModel):
    """Dollars per one million tokens."""

    input: float = Field(default=0.0, ge=0)
    """$ per 1M prompt tokens."""
    output: float = Field(default=0.0, ge=0)
    """$ per 1M completion tokens."""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for one call with these token counts."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


class _Common(StrictModel):
    price: Price = Field(default_factory=Price)
    """What one call costs, for cost accounting."""


class OpenAIConfig(_Common):
    """Any OpenAI-compatible HTTP API (a frontier API, ``vllm serve``, another gateway)."""

    backend: Literal["openai"]
    """Selects this backend."""
    base_url: str
    """API root, e.g. ``https://api.openai.com/v1``."""
    model: str
    """The model name sent upstream."""
    api_key_env: str | None = None
    """Environment variable holding the API key; the key itself never goes in a file."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for an answer (read timeout; for streams, between chunks)."""
    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a connection."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries after the first try on connect errors, 408, 429 and 5xx."""
    retry_after_cap: float = Field(default=10.0, ge=0)
    """Longest ``Retry-After`` honoured, in seconds."""
    max_connections: int = Field(default=256, ge=1)
    """Pooled connections to this upstream."""
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    """HTTP client: ``aiohttp`` (used directly; ~7x less CPU per call here) or ``httpx``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent on every request (no secrets: use ``api_key_env``)."""


class TransformersConfig(_Common):
    """A local Hugging Face model directory, run in-process (CPU or GPU)."""

    backend: Literal["transformers"]
    """Selects this backend."""
    model: str
    """Path to a directory saved with ``save_pretrained``, or ``embedded:teacher`` /
    ``embedded:student`` for the shipped pair. Never fetched from a hub."""
    device: str = "cpu"
    """Torch device: ``cpu``, ``cuda``, ``cuda:1``..."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Weights dtype."""
    max_batch_size: int = Field(default=8, ge=1)
    """Requests generated together in one batch."""
    threads: int | None = Field(default=None, ge=1)
    """Torch intra-op threads (``None`` keeps torch's default)."""
    max_new_tokens: int = Field(default=256, ge=1)
    """Default generation limit when the request sets none."""


class VLLMConfig(_Common):
    """A model served by vLLM's in-process engine (needs ``bitrate[gpu]``)."""

    backend: Literal["vllm"]
    """Selects this backend."""
    model: str
    """Path to a local model directory (or ``embedded:student``)."""
    dtype: str = "auto"
    """Weights dtype passed to vLLM."""
    gpu_memory_utilization: float = Field(default=0.5, gt=0, le=1)
    """Share of GPU memory vLLM may take."""
    max_model_len: int | None = None
    """Context length cap."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """GPUs to shard the model over."""
    max_new_tokens: int = Field(default=256, ge=1)
    """Default generation limit when the request sets none."""


ModelConfig = Annotated[OpenAIConfig | TransformersConfig | VLLMConfig, Field(discriminator="backend")]
