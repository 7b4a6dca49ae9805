"""Typed configuration of the backends, one model per entry of a policy's ``models``.

A discriminated union on ``backend``; unknown keys are rejected at load, and so are a
``base_url`` that is not http(s) and an ``api_key_env`` that is not a variable name (an API
key pasted there is refused without being echoed).

An ``openai`` backend without ``base_url`` follows the official ``openai`` client: it calls
``$OPENAI_BASE_URL`` (else ``https://api.openai.com/v1``) with the key in ``$OPENAI_API_KEY``
(unless ``api_key_env`` names another variable). With a ``base_url`` in the file, a key is sent
only when ``api_key_env`` names its variable: a key meant for OpenAI never goes to another server.
The environment is read when the policy is loaded.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from sdk.config_model import StrictModel

__all__ = [
    "OPENAI_API_KEY_ENV",
    "OPENAI_BASE_URL_ENV",
    "OPENAI_DEFAULT_BASE_URL",
    "ModelConfig",
    "OpenAIConfig",
    "Price",
    "SupportsConfig",
    "TransformersConfig",
    "VLLMConfig",
    "env_var_name",
    "http_url",
]

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Where an ``openai`` backend with no ``base_url`` (and no ``$OPENAI_BASE_URL``) sends its calls."""
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"
"""The official client's variable for the API root, read when ``base_url`` is left out."""
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
"""The official client's variable for the key, used when ``base_url`` and ``api_key_env`` are left out."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
"""A portable environment variable name, at most 64 characters."""
_KEY_PREFIXES = ("sk_", "pk_", "rk_", "gsk_", "hf_", "ghp_", "github_pat_", "AIza")
"""How common API keys begin (the ones made of name characters only; ``sk-...`` fails the pattern)."""


def env_var_name(value: str | None) -> str | None:
    """``value`` when it can be an environment variable's name; a ``ValueError`` that does not echo it
    when it looks like a secret instead (characters a name cannot hold, a key's prefix, over 64
    characters, or a long mix of upper case, lower case and digits)."""
    if value is None:
        return None
    random_looking = (
        len(value) >= 20
        and any(c.islower() for c in value)
        and any(c.isupper() for c in value)
        and any(c.isdigit() for c in value)
    )
    if not _ENV_NAME.fullmatch(value) or value.startswith(_KEY_PREFIXES) or random_looking:
        raise ValueError(
            "this looks like an API key, not the name of an environment variable (the value is not shown); "
            "put the key in a variable such as OPENAI_API_KEY and write that name here"
        )
    return value


def http_url(value: str) -> str:
    """``value`` when it is an ``http://`` or ``https://`` URL with a host; else a ``ValueError`` that
    does not echo it (a URL may carry credentials)."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        ok = False
    if not ok:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. https://api.openai.com/v1")
    return value


class Price(StrictModel):
    """Dollars per one million tokens."""

    input: float = Field(default=0.0, ge=0)
    """$ per 1M prompt tokens."""
    output: float = Field(default=0.0, ge=0)
    """$ per 1M completion tokens."""

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for one call with these token counts."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


class SupportsConfig(StrictModel):
    """What a model can serve; a key left out takes its backend's default (``sdk.capabilities``:
    an ``openai`` backend supports everything, a local one no tools, images or JSON schema, and
    the context its model directory's ``config.json`` states). A route sends a request that needs
    what its student lacks to its frontier."""

    tools: bool | None = None
    """Calls tools (a request with ``tools``, or a ``tool_choice`` that asks for a call)."""
    vision: bool | None = None
    """Reads image parts (and any other non-text part of a message)."""
    json_schema: bool | None = None
    """Follows ``response_format: {type: json_schema}``."""
    max_context: int | None = Field(default=None, ge=1)
    """Context length in tokens; a prompt estimated longer (characters / 4) goes to the other side."""


class _Common(StrictModel):
    price: Price = Field(default_factory=Price)
    """What one call costs, for cost accounting."""
    supports: SupportsConfig = Field(default_factory=SupportsConfig)
    """What this model can serve (tools, vision, json_schema, max_context); omitted keys take the
    backend's defaults."""


class OpenAIConfig(_Common):
    """Any OpenAI-compatible HTTP API (a frontier API, ``vllm serve``, another gateway)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    backend: Literal["openai"]
    """Selects this backend."""
    base_url: str = OPENAI_DEFAULT_BASE_URL
    """API root, e.g. ``http://127.0.0.1:8001/v1``: an ``http://`` or ``https://`` URL with a host.
    Left out: ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1``, as the official client."""
    model: str
    """The model name sent upstream."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (letters, digits and ``_``, at most 64);
    the key itself never goes in a file, and a value that looks like a key is refused. Left out:
    ``OPENAI_API_KEY`` when ``base_url`` is left out too, else no key is sent."""
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

    _env_defaults: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, value: str | None) -> str | None:
        return env_var_name(value)

    @model_validator(mode="after")
    def _official_client_defaults(self) -> OpenAIConfig:
        if "base_url" in self.model_fields_set:
            return self
        defaults = ["base_url"]
        from_env = os.environ.get(OPENAI_BASE_URL_ENV, "").strip()
        if from_env:
            try:
                url = http_url(from_env)
            except ValueError as exc:
                raise ValueError(
                    f"base_url is left out, so ${OPENAI_BASE_URL_ENV} is used: it {exc}"
                ) from exc
        else:
            url = OPENAI_DEFAULT_BASE_URL
        key_env = self.api_key_env
        if key_env is None:
            key_env = OPENAI_API_KEY_ENV
            defaults.append("api_key_env")
        # set without validate_assignment: what the file said stays in model_fields_set
        object.__setattr__(self, "base_url", url)
        object.__setattr__(self, "api_key_env", key_env)
        self._env_defaults = tuple(defaults)
        return self

    @property
    def env_defaults(self) -> tuple[str, ...]:
        """The keys the file left out and the official client's defaults filled (``base_url``,
        ``api_key_env``): what a message about them should explain."""
        return self._env_defaults


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
