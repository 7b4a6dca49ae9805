"""bitrate's exceptions, split by who is at fault.

::

    BitrateError
    ├── ConfigError                 the deployment's files are wrong; raised at load
    │   └── DependencyMissing       an optional extra is missing ("pip install bitrate[local]")
    ├── RequestError                the caller's request is wrong (HTTP 4xx)
    │   ├── InvalidRequest          400: malformed JSON, an invalid field, unsupported option
    │   │   └── Unsupported         400: the model cannot serve what the request needs (tools,
    │   │                           images, a longer context); on a route, the other side is asked
    │   ├── AuthError               401: missing or wrong API key
    │   ├── NotFound                404: nothing by that name
    │   │   ├── UnknownModel        404: no route or model by that name
    │   │   └── UnknownPath         404: no such URL path
    │   ├── PayloadTooLarge         413: body over the configured limit
    │   └── RequestTimeout          408: the request's headers or body came too slowly
    ├── BackendError                a backend failed (HTTP 5xx); always names the backend
    │   ├── BackendTimeout          504: no answer within the timeout
    │   ├── BackendUnavailable      503: connection refused or reset, circuit open, not loaded
    │   └── UpstreamStatusError     502: the upstream answered with an error status
    │       (keeps the upstream's status and request id; an upstream 400, 413 or
    │       422, which says the caller's request is wrong, is re-raised to the
    │       caller as its 4xx; 401/403/404 say our key, model name or URL is
    │       wrong: the backend's fault, a 502)
    ├── ShuttingDown                503: the gateway stopped before it could answer
    └── InternalError               500: a bug in bitrate

Foreign exceptions (httpx, torch, pydantic) are translated to these at exactly
one boundary each, with ``raise ... from exc``. Messages never contain API keys.
"""

from __future__ import annotations

__all__ = [
    "CALLER_FAULT_STATUSES",
    "AuthError",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BitrateError",
    "ConfigError",
    "DependencyMissing",
    "InternalError",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "RequestError",
    "RequestTimeout",
    "ShuttingDown",
    "UnknownModel",
    "UnknownPath",
    "Unsupported",
    "UpstreamStatusError",
]


class BitrateError(Exception):
    """Base of every bitrate error.

    ``status`` is the HTTP status the gateway answers with, ``type`` and ``code``
    go into the OpenAI error body, ``param`` names the request field at fault.
    """

    status: int = 500
    type: str = "internal_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI-style error body for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(BitrateError):
    """A policy, profile or suite file is invalid. ``location`` is ``file:line``
    and ``key`` the dotted key at fault, when known."""

    code = "config_error"

    def __init__(self, message: str, *, location: str | None = None, key: str | None = None):
        parts = [p for p in (location, f"key '{key}'" if key else None) if p]
        full = f"{': '.join(parts)}: {message}" if parts else message
        super().__init__(full)
        self.location = location
        self.key = key


class DependencyMissing(ConfigError):
    """An optional dependency is missing; the message says which extra to install."""

    code = "dependency_missing"

    def __init__(self, module: str, extra: str):
        super().__init__(f"'{module}' is not installed; install it with: pip install 'bitrate[{extra}]'")
        self.module = module
        self.extra = extra


class RequestError(BitrateError):
    """The caller's request is at fault."""

    status = 400
    type = "invalid_request_error"


class InvalidRequest(RequestError):
    """Malformed JSON, an invalid field or an unsupported option."""

    code = "invalid_request"


class Unsupported(InvalidRequest):
    """The model cannot serve what the request needs, before any token was produced: ``need`` is
    ``tools``, ``vision`` (a non-text part), ``json_schema`` or ``context`` (the prompt is longer than
    the model's context). A 400 for a model called directly; on a route the engine asks the route's
    other side instead when that side supports the need (``sdk.decide.capability_fallback``)."""

    code = "unsupported"

    def __init__(self, message: str, *, need: str, param: str | None = None, code: str | None = None):
        super().__init__(message, param=param, code=code)
        self.need = need


class AuthError(RequestError):
    """A missing or wrong API key."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class NotFound(RequestError):
    """Nothing by the name the caller gave."""

    status = 404
    type = "not_found_error"
    code = "not_found"


class UnknownModel(NotFound):
    """No route or model by the name in the request's ``model``."""

    code = "model_not_found"


class UnknownPath(NotFound):
    """No such URL path on the gateway."""

    code = "unknown_path"


class PayloadTooLarge(RequestError):
    """A request body over the configured limit."""

    status = 413
    code = "payload_too_large"


class RequestTimeout(RequestError):
    """The client sent its request's headers or body too slowly."""

    status = 408
    code = "request_timeout"


class BackendError(BitrateError):
    """A backend failed. ``backend`` is the model name from the policy."""

    status = 502
    type = "upstream_error"
    code = "backend_error"

    def __init__(self, message: str, *, backend: str, code: str | None = None):
        super().__init__(f"backend '{backend}': {message}", code=code)
        self.backend = backend


class BackendTimeout(BackendError):
    status = 504
    type = "timeout_error"
    code = "backend_timeout"


class BackendUnavailable(BackendError):
    status = 503
    code = "backend_unavailable"


CALLER_FAULT_STATUSES = frozenset({400, 413, 422})
"""Upstream statuses that blame the content of the caller's request (passed through as they are).
Any other 4xx blames the backend's configuration (key, model name, URL) or is transient (408, 429)."""


class UpstreamStatusError(BackendError):
    """The upstream answered ``upstream_status``; ``request_id`` is its request id.

    ``message`` and ``request_id`` come from the upstream: the backend scrubs them of its key
    and cuts them short (``sdk.backends.scrub``) before they get here."""

    code = "upstream_status"

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        upstream_status: int,
        request_id: str | None = None,
        retry_after: float | None = None,
    ):
        detail = f"upstream answered {upstream_status}: {message}"
        if request_id:
            detail += f" (upstream request id {request_id})"
        super().__init__(detail, backend=backend)
        self.upstream_status = upstream_status
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def is_caller_fault(self) -> bool:
        """True for an upstream 400, 413 or 422: the caller's request itself was bad. A 401, 403
        or 404 is not: the gateway's key, model name or URL is wrong, which no caller can fix."""
        return self.upstream_status in CALLER_FAULT_STATUSES

    def to_body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error body; an upstream's caller-fault 4xx is typed as the caller's error."""
        body = super().to_body()
        if self.is_caller_fault:
            body["error"]["type"] = RequestError.type
        return body


class ShuttingDown(BitrateError):
    """The gateway is stopping and gave up on a request still in flight; retry it elsewhere."""

    status = 503
    type = "server_error"
    code = "shutting_down"


class InternalError(BitrateError):
    """A bug in bitrate."""

    code = "internal_error"
