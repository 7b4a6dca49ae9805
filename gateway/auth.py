"""Optional API keys: ``Authorization: Bearer KEY``, checked in constant time.

The keys come from the environment variable the policy names
(``server.api_keys_env``), several separated by commas. A policy that names a
variable which is unset or empty fails at startup (it never silently serves
without keys). Keys are never logged or echoed in an error.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from sdk.errors import AuthError, ConfigError

__all__ = ["ApiKeys"]

_BEARER = "bearer "


class ApiKeys:
    """The accepted keys; with none, every request is let in."""

    __slots__ = ("_keys",)

    def __init__(self, keys: list[str] | tuple[str, ...] = ()):
        self._keys = tuple(k.encode() for k in keys if k)

    @classmethod
    def from_env(cls, env_name: str | None, environ: Mapping[str, str] | None = None) -> ApiKeys:
        """Keys from the variable ``env_name`` (comma-separated); no variable named: open."""
        if not env_name:
            return cls()
        raw = (os.environ if environ is None else environ).get(env_name, "")
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        if not keys:
            raise ConfigError(
                f"the policy asks for API keys from ${env_name}, which is unset or empty",
                key="server.api_keys_env",
            )
        return cls(keys)

    @property
    def enabled(self) -> bool:
        """True when requests must carry a key."""
        return bool(self._keys)

    def check(self, authorization: str | None) -> None:
        """Raise ``AuthError`` unless ``authorization`` is ``Bearer <a known key>``."""
        if not self._keys:
            return
        if not authorization or authorization[:7].lower() != _BEARER:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        given = authorization[7:].strip().encode()
        # Compare against every key (no early exit), so timing says nothing about which matched.
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        if not ok:
            raise AuthError("invalid API key")
