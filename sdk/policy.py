"""The routing policy: which models exist, which routes send traffic between them, and how.

A policy is one YAML file, validated at load into these typed models (unknown keys
rejected). ``load_policy(path)`` turns any mistake into ONE :class:`~sdk.errors.ConfigError`
naming the file, the line and the dotted key; ``default_policy()`` is the embedded pair.

Route names and model names share one namespace: ``model="auto"`` in a request
names a route, ``model="frontier"`` a model called directly (no routing).
Secrets never appear in the file; a model names the environment variable holding its key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sdk import embedded
from sdk.backends.config import ModelConfig, env_var_name
from sdk.cascade_config import CascadeConfig
from sdk.config_model import StrictModel
from sdk.errors import ConfigError
from sdk.live.capture_config import CaptureConfig
from sdk.live.config import LiveConfig
from sdk.live.shadow_config import ShadowConfig, shadow_problems
from sdk.yaml_config import Problem, validate_yaml_model

__all__ = [
    "Check",
    "FallbackConfig",
    "JsonSchemaCheck",
    "JsonValidCheck",
    "NonEmptyCheck",
    "NotTruncatedCheck",
    "RefusalCheck",
    "Policy",
    "RouteConfig",
    "RuleConfig",
    "ServerSettings",
    "TasksConfig",
    "ToleranceConfig",
    "ToolArgsCheck",
    "default_policy",
    "load_policy",
    "read_policy",
]

EMBEDDED_PROFILE = "embedded:profile"
DetectorName = Literal["hint", "rules", "embeddings", "lexical"]
RoutedSide = Literal["student", "frontier"]
"""Where a route may send a request: the student or the frontier."""


class ToleranceConfig(StrictModel):
    """How much quality the route may lose on a task, and how sure we must be."""

    max_loss: float = Field(default=0.02, ge=0.0, le=1.0)
    """Largest acceptable mean quality loss (frontier score minus student score), in [0, 1]."""
    confidence: float = Field(default=0.90, gt=0.5, lt=1.0)
    """Confidence of the interval the verdict is read from, e.g. 0.90."""


class RuleConfig(StrictModel):
    """A regex over the last user message that names the task when it matches."""

    match: str
    """Python regular expression (``re.search``); compiled at load, a bad one is a load error."""
    task: str = Field(min_length=1)
    """The task category it names."""
    _pattern: re.Pattern[str] = PrivateAttr()

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    def model_post_init(self, _context: object) -> None:
        self._pattern = re.compile(self.match)

    @property
    def pattern(self) -> re.Pattern[str]:
        """The compiled expression."""
        return self._pattern


def _default_detectors() -> list[DetectorName]:
    return ["hint", "rules", "embeddings", "lexical"]


class TasksConfig(StrictModel):
    """How a request's task category is detected."""

    detect: list[DetectorName] = Field(default_factory=_default_detectors)
    """Detectors tried in order; the first confident guess wins, else the task is ``unknown``."""
    rules: list[RuleConfig] = Field(default_factory=list)
    """Regex rules for the ``rules`` detector, tried in order."""
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    """Guesses less confident than this are ignored (the next detector is asked)."""


class FallbackConfig(StrictModel):
    """Where a request goes when the chosen backend fails (before any byte was sent)."""

    student_error: Literal["frontier", "none"] = "frontier"
    """On a student failure: retry on the frontier, or fail."""
    frontier_error: Literal["student", "none"] = "none"
    """On a frontier failure: retry on the student (never for tasks the profile marks unsafe), or fail."""


class JsonValidCheck(StrictModel):
    """When the request's ``response_format`` asks for JSON, the student's answer must parse as JSON."""

    check: Literal["json_valid"]
    """Selects this check."""


class NonEmptyCheck(StrictModel):
    """The student's answer must contain some non-blank text (or a tool call)."""

    check: Literal["non_empty"]
    """Selects this check."""


class JsonSchemaCheck(StrictModel):
    """When ``response_format`` is a ``json_schema``, the student's answer must validate against the
    schema (``jsonschema``: ``pip install 'bitrate[checks]'``)."""

    check: Literal["json_schema"]
    """Selects this check."""


class ToolArgsCheck(StrictModel):
    """When the request offers ``tools``, each of the student's tool calls must name an offered tool with
    arguments valid against its ``parameters`` schema, and ``tool_choice`` must be honoured
    (``jsonschema``: ``pip install 'bitrate[checks]'``)."""

    check: Literal["tool_args"]
    """Selects this check."""


class RefusalCheck(StrictModel):
    """The student's answer must not refuse: no ``refusal`` field, and not a short answer that begins
    like a refusal ("I'm sorry, but I can't help with that"; see ``sdk.checks.Refusal``)."""

    check: Literal["refusal"]
    """Selects this check."""


class NotTruncatedCheck(StrictModel):
    """When the caller set no ``max_tokens``/``max_completion_tokens``, the student's answer must not end
    with ``finish_reason: length`` (cut by the student's own limit or context)."""

    check: Literal["not_truncated"]
    """Selects this check."""


Check = Annotated[
    JsonValidCheck | JsonSchemaCheck | ToolArgsCheck | RefusalCheck | NotTruncatedCheck | NonEmptyCheck,
    Field(discriminator="check"),
]
"""An escalation check: when it fails on the student's answer, the frontier answers instead."""


class RouteConfig(StrictModel):
    """A route: a name clients send as ``model``, served by a student or a frontier per request."""

    student: str
    """Name of the student model (a key of ``models``)."""
    frontier: str
    """Name of the frontier model (a key of ``models``)."""
    profile: str | None = None
    """Capability profile (JSON): a path relative to the policy file, or ``embedded:profile``.
    Without one every task is ``uncertain``."""
    tolerance: ToleranceConfig = Field(default_factory=ToleranceConfig)
    """The promise: at most ``max_loss`` lost, at ``confidence``."""
    uncertain: RoutedSide = "frontier"
    """Where tasks whose verdict is ``uncertain`` (or that the profile lacks) go."""
    unknown: RoutedSide = "frontier"
    """Where requests whose task could not be detected go."""
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    """Task detection."""
    pin: dict[str, RoutedSide] = Field(default_factory=dict)
    """Categories forced to one side whatever the profile says."""
    fallback: FallbackConfig = Field(default_factory=FallbackConfig)
    """Backend-failure fallback."""
    escalate: list[Check] = Field(default_factory=list)
    """Checks on the student's answer; a failure sends the request to the frontier."""
    per_prompt: bool = False
    """Use per-prompt loss estimates when the profile carries per-item evidence."""
    cascade: CascadeConfig | None = None
    """Let the student answer first and keep its answer when it is confident enough (``sdk.cascade``);
    not with ``per_prompt``. Unset: no cascade."""
    profile_models_must_match: bool = True
    """Refuse to serve (and fail ``bitrate policy check``) when the profile was measured on other
    models than this route's: the profile's recorded ``student.model`` / ``frontier.model`` must
    equal the ``model`` of the route's student / frontier (an imported profile may instead record
    the policy's name for it, as ``profile import --student-name/--frontier-name`` do). A side the
    profile recorded no model for is not compared. ``false`` reuses a profile deliberately."""
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    """Live evidence: shadow traffic, spot checks and their grading (``sdk.live.shadow_config``);
    off unless ``rate`` or ``spot_check`` is set."""
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    """Frontier answers kept as training data (``sdk.live.capture_config``): on when
    ``capture.enabled`` is true, or unset and ``live.capture`` is true; needs the policy's ``live:``."""


class ServerSettings(StrictModel):
    """Settings of the HTTP gateway (``bitrate serve``)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    api_keys_env: str | None = None
    """Name of the environment variable holding comma-separated accepted API keys; unset means no
    auth. A value that looks like a key rather than a name is refused (and not echoed)."""
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    """Largest accepted request body, in bytes."""
    expose_metrics: bool = True
    """Serve Prometheus metrics at ``/metrics``."""
    expose_readyz: bool = True
    """Serve the readiness probe at ``/readyz``."""
    log_bodies: bool = False
    """Log request and response bodies (they may hold personal data)."""
    log_format: Literal["plain", "json"] = "plain"
    """How ``bitrate serve`` logs: ``plain`` lines (a request's line as ``key=value`` pairs) or
    ``json``, one object a line (``bitrate serve --log-format`` overrides it)."""
    request_timeout: float = Field(default=120.0, gt=0)
    """Seconds one request may take end to end, its body's upload included."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client may take to send a request's line and headers (counted from connecting,
    or from the first byte of a later request on the connection); past it the client gets a 408
    and the connection is closed. Applies under ``bitrate serve``."""
    body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a client may take to send a request's body once its headers are in (and never
    past ``request_timeout``); past it the client gets a 408."""
    health_interval: float = Field(default=10.0, gt=0)
    """Seconds between background health checks of the backends; ``/readyz`` answers from the
    last check at once and never calls a backend itself."""
    expose_docs: bool = True
    """Serve the API documentation: ``/docs``, ``/redoc`` and ``/openapi.json``."""
    metrics_auth: bool = False
    """Ask for a gateway API key on ``/metrics``, as on ``/v1/*`` (needs ``api_keys_env``)."""

    @field_validator("api_keys_env")
    @classmethod
    def _a_variable_name(cls, value: str | None) -> str | None:
        return env_var_name(value)

    @model_validator(mode="after")
    def _metrics_auth_needs_keys(self) -> ServerSettings:
        if self.metrics_auth and not self.api_keys_env:
            raise ValueError("metrics_auth: true needs api_keys_env (the keys /metrics would ask for)")
        return self


class Policy(StrictModel):
    """A deployment: models, routes over them, and server settings."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a key pasted in a wrong place: not in errors

    version: Literal[1]
    """Schema version of this file; must be 1."""
    models: dict[str, ModelConfig] = Field(min_length=1)
    """Models by name; each can also be called directly by that name."""
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    """Routes by name (the ``model`` a client sends)."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """Gateway settings."""
    live: LiveConfig | None = None
    """Live safety (``sdk.live``): where live observations and verdicts are kept; routes with
    ``shadow`` traffic need it. Unset: no live monitor."""
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> Policy:
        if info.context and info.context.get("defer_references"):
            return self
        problems = self.reference_problems()
        if problems:
            loc, message = problems[0]
            raise ValueError(f"{'.'.join(map(str, loc))}: {message}")
        return self

    def reference_problems(self) -> list[Problem]:
        """Cross-references that do not hold, as ``(key path, message)``: routes naming
        missing models, names used both as a route and a model."""
        problems: list[Problem] = []
        for name in self.routes:
            if name in self.models:
                problems.append((("routes", name), f"'{name}' is both a route and a model name"))
        for name, route in self.routes.items():
            for side in ("student", "frontier"):
                target = getattr(route, side)
                if target not in self.models:
                    known = ", ".join(sorted(self.models))
                    msg = f"no model named '{target}' (models: {known})"
                    problems.append((("routes", name, side), msg))
            problems += shadow_problems(name, route.shadow, self.models, has_live=self.live is not None)
            if route.cascade is not None and route.per_prompt:
                why = "cascade and per_prompt cannot be combined (a cascade is calibrated on categories)"
                problems.append((("routes", name, "cascade"), why))
            if route.capture.enabled and self.live is None:
                message = "capture needs the policy's `live:` section (the store the answers are kept in)"
                problems.append((("routes", name, "capture"), message))
        return problems

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the policy resolve against (the policy file's)."""
        return self._base_dir

    @property
    def source(self) -> str | None:
        """The file this policy was loaded from, if any."""
        return self._source

    def bind(self, base_dir: Path, source: str | None = None) -> Policy:
        """Set the directory relative profile paths resolve against (the policy file's)."""
        self._base_dir = Path(base_dir)
        self._source = source
        return self

    def profile_path(self, route: str) -> Path | None:
        """Resolved path of a route's profile, or ``None`` when it has none."""
        value = self.routes[route].profile
        if value is None:
            return None
        if value == EMBEDDED_PROFILE:
            return embedded.profile_path()
        path = Path(value)
        return path if path.is_absolute() else self._base_dir / path

    def route_of(self, name: str) -> RouteConfig | None:
        """The route called ``name``, or ``None`` (a direct model or nothing)."""
        return self.routes.get(name)


def read_policy(path: str | Path) -> tuple[Policy | None, list[ConfigError]]:
    """Load and validate a policy file, keeping every mistake: ``(the policy, [])``, or ``(None,
    a ConfigError with file:line and key for each mistake)``."""
    source = Path(path)
    policy, errors = validate_yaml_model(
        source,
        Policy,
        what="policy",
        context={"defer_references": True},
        problems=Policy.reference_problems,
    )
    return (policy.bind(source.resolve().parent, source=str(source)) if policy is not None else None), errors


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file; the first mistake raises ``ConfigError`` with file:line and key."""
    policy, errors = read_policy(path)
    if policy is None:
        raise errors[0]
    return policy


def default_policy() -> Policy:
    """The embedded pair: models ``frontier`` (the tiny teacher) and ``student``, route ``auto``."""
    return load_policy(embedded.EMBEDDED_DIR / "default_policy.yaml")
