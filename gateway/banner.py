"""The lines ``bitrate serve`` logs once at start-up: what it serves, from where, and where it listens.

::

    bitrate 0.1.0 gateway, policy examples/policy.yaml
    route 'auto': student 'student', frontier 'frontier', profile profiles/pair.json, max_loss 0.02 at 90%
    model 'frontier': openai at https://api.example.com/v1, model 'big-model', key from $FRONTIER_API_KEY
    model 'student': vllm, model ./models/student
    listening on http://127.0.0.1:8000, log format plain

A URL is shown without its user, password, query or fragment; a key never (only the variable it
comes from).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sdk import __version__
from sdk.backends.config import OpenAIConfig, TransformersConfig
from sdk.policy import Policy, RouteConfig

__all__ = ["banner_lines", "public_url"]


def public_url(url: str) -> str:
    """``url`` as ``scheme://host[:port]/path``: no credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _route_line(name: str, route: RouteConfig) -> str:
    tol = route.tolerance
    return (
        f"route '{name}': student '{route.student}', frontier '{route.frontier}', "
        f"profile {route.profile or 'none'}, max_loss {tol.max_loss:g} at {tol.confidence:.0%}"
    )


def _model_line(name: str, model: object) -> str:
    if isinstance(model, OpenAIConfig):
        key = f"key from ${model.api_key_env}" if model.api_key_env else "no key"
        return f"model '{name}': openai at {public_url(model.base_url)}, model '{model.model}', {key}"
    where = f"model {getattr(model, 'model', '?')}"
    if isinstance(model, TransformersConfig):
        where += f" on {model.device}"
    return f"model '{name}': {getattr(model, 'backend', '?')}, {where}"


def banner_lines(policy: Policy, source: str | None, url: str, log_format: str) -> list[str]:
    """The banner: ``source`` is the policy file (``None``: the embedded pair), ``url`` where the
    gateway listens."""
    lines = [f"bitrate {__version__} gateway, policy {source or 'embedded default (the shipped pair)'}"]
    lines += [_route_line(name, route) for name, route in policy.routes.items()]
    lines += [_model_line(name, model) for name, model in policy.models.items()]
    lines.append(f"listening on {url}, log format {log_format}")
    return lines
