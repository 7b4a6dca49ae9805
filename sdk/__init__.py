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
    UpstreamStatusError,
)
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = [
    "AuthError",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BitrateError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatRequest",
    "ConfigError",
    "InvalidRequest",
    "RequestError",
    "UnknownModel",
    "UpstreamStatusError",
    "errors",
    "protocol",
]

__version__ = "0.1.0"
