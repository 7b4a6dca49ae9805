"""The ``openai`` client's exceptions and raw responses, for ``sdk.Client``.

Code written against the official client keeps working on ``sdk.Client``: when ``openai`` is
installed, a bitrate error leaves the client as an instance of a class that derives from both the
official client's exception and the bitrate error it was, so ``except openai.RateLimitError`` and
``except sdk.errors.UpstreamStatusError`` both catch an upstream 429. It carries what the official
one does (``status_code``, ``body``: the OpenAI error object, ``response``: an HTTP response with
the OpenAI error body and ``x-request-id``, ``request_id``, ``message``, ``code``, ``param``,
``type``) and the bitrate error's attributes (``backend``, ``upstream_status``...). Without
``openai`` the bitrate errors leave as they are.

In-process there is no gateway between the caller and the upstream, so an upstream's status
reaches the caller as it is (the gateway answers 502 instead: the upstream is not its caller's):

==========================================  ===================================================
bitrate error                               openai exception (``status_code``)
==========================================  ===================================================
``InvalidRequest``, ``Unsupported``          ``BadRequestError`` (400)
``UnknownModel``                             ``NotFoundError`` (404)
``UpstreamStatusError``                      by the upstream's status, as the official client
                                             maps it: 400 ``BadRequestError``, 401
                                             ``AuthenticationError``, 403 ``PermissionDeniedError``,
                                             404 ``NotFoundError``, 409 ``ConflictError``, 422
                                             ``UnprocessableEntityError``, 429 ``RateLimitError``,
                                             5xx ``InternalServerError``, else ``APIStatusError``
``BackendTimeout``; ``timeout=`` elapsed     ``APITimeoutError`` (no status)
``BackendUnavailable`` (refused, reset,      ``APIConnectionError`` (no status)
circuit open)
any other ``BackendError``, ``InternalError``  ``InternalServerError`` (its status: 500-504)
==========================================  ===================================================

``ConfigError`` (a policy or model that cannot load) is not an API error and is never translated.
:class:`RawResponse` is what ``with_raw_response.create(...)`` returns, as the official client's.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Generic, TypeVar

from sdk.errors import (
    BackendTimeout,
    BackendUnavailable,
    BitrateError,
    ConfigError,
    UpstreamStatusError,
)
from sdk.headers import REQUEST_ID_HEADER

__all__ = ["IN_PROCESS_URL", "RawResponse", "http_module", "openai_error", "openai_module"]

R = TypeVar("R")

IN_PROCESS_URL = "http://bitrate.in-process/v1/chat/completions"
"""The URL of the request an in-process answer or error names (no request leaves the process)."""

_BY_STATUS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
"""The official client's class for each status (its ``_make_status_error``)."""


@functools.cache
def openai_module() -> ModuleType | None:
    """The ``openai`` package, or ``None`` when it is not installed."""
    try:
        import openai
    except ImportError:
        return None
    return openai


@functools.cache
def http_module() -> Any:
    """The HTTP library whose ``Response`` and ``Headers`` the official client uses (``httpx``, or
    ``httpx2`` in newer releases), so ``response`` objects are the very classes it hands out."""
    openai = openai_module()
    if openai is not None:
        module = importlib.import_module("openai._exceptions")
        found = getattr(module, "httpx2", None) or getattr(module, "httpx", None)
        if isinstance(found, ModuleType):
            return found
    return importlib.import_module("httpx")


class _Stop(Exception):
    """Ends the official exception's ``super().__init__`` chain before the bitrate error's
    ``__init__`` (which takes other arguments) in a class derived from both."""

    def __init__(self, *args: object, **_kwargs: object):
        Exception.__init__(self, *args)


_COMBINED: dict[tuple[type[Exception], type[BitrateError]], type[Exception]] = {}


def _combined(official: type[Exception], ours: type[BitrateError]) -> type[Exception]:
    """A class that is both ``official`` and ``ours``: its MRO is ``official``'s chain, then
    ``_Stop``, then ``ours``'s (made once per pair)."""
    made = _COMBINED.get((official, ours))
    if made is None:
        doc = f"{official.__name__} from the openai client, and bitrate's {ours.__name__}."
        attributes = {"__module__": __name__, "__doc__": doc}
        made = _COMBINED[official, ours] = type(official.__name__, (official, _Stop, ours), attributes)
    return made


def status_of(exc: BitrateError) -> int:
    """The HTTP status of ``exc`` in-process: an upstream's own status passes through."""
    return exc.upstream_status if isinstance(exc, UpstreamStatusError) else exc.status


def error_body(exc: BitrateError) -> dict[str, Any]:
    """The OpenAI error object (what the official client keeps as ``body``)."""
    return dict(exc.to_body()["error"])


def _official_class(openai: ModuleType, exc: BitrateError) -> type[Exception]:
    if isinstance(exc, BackendTimeout):
        return openai.APITimeoutError
    if isinstance(exc, BackendUnavailable):
        return openai.APIConnectionError
    status = status_of(exc)
    name = _BY_STATUS.get(status) or ("InternalServerError" if status >= 500 else "APIStatusError")
    return getattr(openai, name)


def openai_error(exc: BitrateError, request_id: str | None = None) -> BitrateError:
    """``exc`` as the official client's exception (see the module docstring); ``exc`` itself when
    ``openai`` is not installed or ``exc`` is a ``ConfigError``."""
    openai = openai_module()
    if openai is None or isinstance(exc, ConfigError):
        return exc
    official = _official_class(openai, exc)
    cls = _combined(official, type(exc))
    err: Any = cls.__new__(cls)
    err.__dict__.update(exc.__dict__)
    http = http_module()
    request = http.Request("POST", IN_PROCESS_URL)
    if not issubclass(official, openai.APIStatusError):
        openai.APIConnectionError.__init__(err, message=exc.message, request=request)
        return err
    status, body = status_of(exc), error_body(exc)
    headers = {"content-type": "application/json"}
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["retry-after"] = str(int(retry_after))
    content = json.dumps({"error": body}).encode()
    response = http.Response(status, headers=headers, content=content, request=request)
    openai.APIStatusError.__init__(err, f"Error code: {status} - {exc.message}", response=response, body=body)
    return err


class RawResponse(Generic[R]):
    """What ``chat.completions.with_raw_response.create(...)`` returns, as the official client's
    ``LegacyAPIResponse``: ``headers`` (``x-request-id`` and ``x-bitrate-*``), ``status_code``,
    ``request_id``, ``http_response``, ``content`` and ``parse()`` for the completion (or stream)."""

    def __init__(self, parsed: R, headers: Mapping[str, str]):
        self._parsed = parsed
        self.headers = http_module().Headers(dict(headers))
        """The answer's headers."""
        self.status_code = 200
        """Always 200: a failed call raises instead."""
        self.retries_taken = 0
        """Always 0: retries happen inside the backends."""

    @property
    def request_id(self) -> str | None:
        """The call's ``x-request-id``."""
        return self.headers.get(REQUEST_ID_HEADER)

    @functools.cached_property
    def content(self) -> bytes:
        """The body: the completion's JSON (empty for a stream)."""
        dump = getattr(self._parsed, "model_dump_json", None)
        return dump().encode() if dump is not None else b""

    @property
    def text(self) -> str:
        """:attr:`content` decoded."""
        return self.content.decode()

    @functools.cached_property
    def http_response(self) -> Any:
        """The answer as an HTTP response."""
        http = http_module()
        request = http.Request("POST", IN_PROCESS_URL)
        return http.Response(200, headers=self.headers, content=self.content, request=request)

    def parse(self) -> R:
        """The completion (or the stream), as ``create`` would have returned it."""
        return self._parsed
