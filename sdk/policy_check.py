"""Everything ``bitrate serve`` would refuse in a loaded policy, found before anything is loaded.

:func:`check_policy` returns every problem, each a :class:`~sdk.errors.ConfigError` naming the
file, line and key at fault; :func:`require_servable` raises them as one. ``bitrate policy check``
prints all of :func:`check_policy_file`'s; ``gateway.app.create_app`` (so ``bitrate serve``) calls
``require_servable`` before it builds the engine. What loading refuses already (unknown keys,
types, references, a ``base_url`` that is not http(s), an ``api_key_env`` that is not a variable
name) is not repeated here. The checks, in the order they are reported:

==================  ========================================================================
what                refused when
==================  ========================================================================
a route's profile   unreadable, not UTF-8, not JSON, invalid or contradicting itself
                    (``sdk.profile.load_profile``), or measured on other models than the
                    route's, unless the route sets ``profile_models_must_match: false``
a model's API key   ``api_key_env`` names a variable that is unset or empty (``OPENAI_API_KEY``
                    for an ``openai`` backend that leaves out ``base_url`` and ``api_key_env``)
a local model       its optional dependency is not installed, or its directory is missing
                    or holds no ``config.json``
the gateway's keys  ``server.api_keys_env`` names a variable that is unset or empty
==================  ========================================================================

Nothing is loaded and nothing is connected to: files are read and the environment looked at.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from sdk.backends.config import ModelConfig, OpenAIConfig, TransformersConfig, VLLMConfig
from sdk.embedded import resolve_model_path
from sdk.errors import ConfigError, DependencyMissing
from sdk.policy import Policy, ServerSettings, read_policy
from sdk.profile import ModelIdentity, Profile, load_profile
from sdk.yaml_config import Problem, located

__all__ = ["check_policy", "check_policy_file", "profile_model_problem", "require_servable"]

Finding = ConfigError | Problem
"""A problem located already (in a profile file), or one to locate in the policy file."""

_LOCAL_NEEDS: Mapping[type, tuple[str, tuple[str, ...]]] = {
    TransformersConfig: ("local", ("torch", "transformers")),
    VLLMConfig: ("gpu", ("vllm",)),
}
"""Per local backend: the extra to install and the modules it brings."""


def check_policy(
    policy: Policy, *, settings: ServerSettings | None = None, environ: Mapping[str, str] | None = None
) -> list[ConfigError]:
    """Every problem that would stop ``policy`` from serving, one ``ConfigError`` each (none: it can).
    ``settings`` replaces the policy's ``server`` section, as in ``create_app``; ``environ`` the
    process environment."""
    env = os.environ if environ is None else environ
    findings: list[Finding] = [
        *_profile_findings(policy),
        *_model_findings(policy, env),
        *_server_findings(settings or policy.server, env, in_file=settings is None),
    ]
    source = Path(policy.source) if policy.source else None
    placed = iter(located(source, [f for f in findings if not isinstance(f, ConfigError)], what="policy"))
    return [f if isinstance(f, ConfigError) else next(placed) for f in findings]


def check_policy_file(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> tuple[Policy | None, list[ConfigError]]:
    """Every problem of the policy file at ``path``: its own mistakes (all of them) when it does not
    load, else :func:`check_policy`'s. Returns ``(the policy or None, the problems)``."""
    policy, errors = read_policy(path)
    if policy is None:
        return None, errors
    return policy, check_policy(policy, environ=environ)


def require_servable(
    policy: Policy, *, settings: ServerSettings | None = None, environ: Mapping[str, str] | None = None
) -> None:
    """Raise the first of :func:`check_policy`'s problems, saying how many more there are."""
    problems = check_policy(policy, settings=settings, environ=environ)
    if not problems:
        return
    first = problems[0]
    if len(problems) == 1:
        raise first
    error = ConfigError(f"{first.message} (and {len(problems) - 1} more: 'bitrate policy check' lists all)")
    error.location, error.key = first.location, first.key
    raise error


def profile_model_problem(policy: Policy, route: str, profile: Profile, where: str) -> str | None:
    """Why ``profile`` (read from ``where``) was measured on other models than ``route``'s, or ``None``."""
    config = policy.routes[route]
    measured, used = [], []
    for side in ("student", "frontier"):
        recorded: ModelIdentity = getattr(profile, side)
        name: str = getattr(config, side)
        model = policy.models[name].model
        if not _same_model(recorded, name, model):
            measured.append(f"{side} '{recorded.model}'")
            used.append(f"{side} '{model}' (models.{name}.model)")
    if not measured:
        return None
    return (
        f"profile {where} was measured on {' and '.join(measured)}, but route '{route}' uses "
        f"{' and '.join(used)}; set profile_models_must_match: false on the route to reuse it anyway"
    )


def _same_model(recorded: ModelIdentity, name: str, model: str) -> bool:
    """Whether the model a profile recorded is ``model`` (the policy's entry ``name``). Nothing
    recorded: nothing to compare. An import records what its flags gave: the entry's name counts."""
    if recorded.model is None or recorded.model == model:
        return True
    if recorded.backend == "import" and recorded.model == name:
        return True
    return _as_path(recorded.model) == _as_path(model)


def _as_path(model: str) -> str:
    """``model`` as a normalised absolute path (``embedded:NAME`` resolved), for ids that are paths."""
    try:
        return os.path.normpath(os.path.abspath(resolve_model_path(model)))
    except ValueError:  # an unknown embedded:NAME
        return model


def _profile_findings(policy: Policy) -> Iterator[Finding]:
    for name, route in policy.routes.items():
        path = policy.profile_path(name)
        if path is None:
            continue
        try:
            profile = load_profile(path)
        except ConfigError as exc:
            yield exc
            continue
        mismatch = profile_model_problem(policy, name, profile, str(path))
        if mismatch and route.profile_models_must_match:
            yield ("routes", name, "profile"), mismatch


def _model_findings(policy: Policy, env: Mapping[str, str]) -> Iterator[Finding]:
    for name, config in policy.models.items():
        if isinstance(config, OpenAIConfig):
            yield from _key_findings(name, config, env)
        else:
            yield from _local_findings(name, config)


def _key_findings(name: str, config: OpenAIConfig, env: Mapping[str, str]) -> Iterator[Finding]:
    variable = config.api_key_env
    if variable and not env.get(variable, "").strip():
        message = f"environment variable {variable} is not set or empty; it must hold the API key of '{name}'"
        if "api_key_env" in config.env_defaults:
            message += (
                f" (no base_url and no api_key_env: it calls {config.base_url} as the openai client does)"
            )
        yield ("models", name, "api_key_env"), message


def _local_findings(name: str, config: ModelConfig) -> Iterator[Finding]:
    extra, modules = _LOCAL_NEEDS[type(config)]
    missing = next((m for m in modules if importlib.util.find_spec(m) is None), None)
    if missing is not None:
        yield ("models", name, "backend"), DependencyMissing(missing, extra).message
    try:
        path = Path(resolve_model_path(config.model))
    except ValueError as exc:  # an unknown embedded:NAME
        yield ("models", name, "model"), str(exc)
        return
    if not path.is_dir():
        yield ("models", name, "model"), f"model directory '{path}' does not exist"
    elif not (path / "config.json").is_file():
        message = f"'{path}' holds no config.json: not a model directory written by save_pretrained"
        yield ("models", name, "model"), message


def _server_findings(settings: ServerSettings, env: Mapping[str, str], *, in_file: bool) -> Iterator[Finding]:
    variable = settings.api_keys_env
    if variable and not any(k.strip() for k in env.get(variable, "").split(",")):
        message = f"the policy asks for API keys from ${variable}, which is unset or empty"
        if in_file:
            yield ("server", "api_keys_env"), message
        else:  # settings given in code: there is no line to point at
            yield ConfigError(message, key="server.api_keys_env")
