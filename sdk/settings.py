"""The command line's settings, from flags, the environment and a ``.env`` file.

One typed model (pydantic-settings). Each setting is looked for in this order; the first
place that has it wins:

1. a command-line flag (``--port 9000``): passed to :func:`load_settings`;
2. the environment: ``BITRATE_`` and the setting's name in capitals (``BITRATE_PORT=9000``);
3. a ``.env`` file in the working directory, ``BITRATE_PORT=9000`` lines (other lines ignored);
4. the default below.

=====================  =====================  ================================================
setting                variable               default
=====================  =====================  ================================================
``policy``             ``BITRATE_POLICY``     none: the embedded pair
``host``               ``BITRATE_HOST``       ``127.0.0.1``
``port``               ``BITRATE_PORT``       ``8000``
``log_level``          ``BITRATE_LOG_LEVEL``  ``info``
``cache_dir``          ``BITRATE_CACHE_DIR``  ``./.bitrate-cache`` (profiling's call cache)
=====================  =====================  ================================================

A value that does not validate is one :class:`~sdk.errors.ConfigError` naming its variable.
Nothing here is read at import; ``import sdk`` does not import this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sdk.errors import ConfigError

__all__ = ["ENV_FILE", "ENV_PREFIX", "LOG_LEVELS", "Settings", "load_settings"]

ENV_PREFIX = "BITRATE_"
"""What every variable's name starts with."""
ENV_FILE = ".env"
"""The file read for ``BITRATE_*`` lines, in the working directory."""
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LOG_LEVELS: tuple[str, ...] = ("critical", "error", "warning", "info", "debug")


class Settings(BaseSettings):
    """What the ``bitrate`` commands take from flags, ``BITRATE_*`` variables or ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=ENV_FILE, extra="ignore", use_attribute_docstrings=True
    )

    policy: Path | None = None
    """Policy YAML; none: the embedded pair."""
    host: str = Field(default="127.0.0.1", min_length=1)
    """Interface ``bitrate serve`` listens on."""
    port: int = Field(default=8000, ge=1, le=65535)
    """TCP port ``bitrate serve`` listens on."""
    log_level: LogLevel = "info"
    """Log level of ``bitrate serve``."""
    cache_dir: Path = Path(".bitrate-cache")
    """Folder of profiling's call cache (``bitrate profile build``, ``bitrate demo``)."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


def load_settings(**flags: Any) -> Settings:
    """The settings, ``flags`` (a command's options; ``None`` means not given) over the environment,
    ``.env`` and the defaults. A bad value raises one ``ConfigError`` naming its variable."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        where = f"--{name.replace('_', '-')}" if name in given else f"{ENV_PREFIX}{name.upper()}"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{message} (got {error['input']!r})", key=where) from exc
