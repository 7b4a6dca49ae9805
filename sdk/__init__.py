"""bitrate's core: wire types, errors, backends, policy, profiles, routing, clients.

Importing this package loads no web framework and no ML library; those are
imported by the backend or detector that needs them.
"""

from sdk import errors, protocol
from sdk.errors import (
    AuthError,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BitrateError,
    ConfigError,
    InvalidRequest,
    RequestError,
    UnknownModel,
    Unsupported,
    UpstreamStatusError,
)
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = [
    "AsyncClient",
    "AuthError",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BitrateError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatRequest",
    "Client",
    "ConfigError",
    "Decision",
    "InvalidRequest",
    "RequestError",
    "UnknownModel",
    "Unsupported",
    "UpstreamStatusError",
    "default_policy",
    "errors",
    "load_policy",
    "protocol",
]

# Routing names load on first use, so `import sdk` stays light (no numpy, no engine).
_LAZY = {
    "AsyncClient": "sdk.client",
    "Client": "sdk.client",
    "Decision": "sdk.decision",
    "default_policy": "sdk.policy",
    "load_policy": "sdk.policy",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdk' has no attribute {name!r}")


__version__ = "0.1.0"
