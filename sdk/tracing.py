"""Traces: OpenTelemetry spans for each chat call, or nothing at all.

Off by default, and then free: every hook reads one module global and returns. On when the
standard OpenTelemetry environment asks for it, ``OTEL_TRACES_EXPORTER`` naming an exporter
(``console``, ``otlp``...; several comma-separated) with ``OTEL_SDK_DISABLED`` not ``true``, and the
OpenTelemetry SDK installed (``pip install 'bitrate[otel]'``; ``otlp`` needs an exporter package,
``opentelemetry-exporter-otlp``). A tracer provider the application (or ``opentelemetry-instrument``)
already set is used as it is; otherwise one is made from the environment (``OTEL_SERVICE_NAME``,
default ``bitrate``) and set as the global one. :func:`enable` turns tracing on in code, with a
given provider (tests use the SDK's ``InMemorySpanExporter``); :func:`disable` turns it off.

Spans, with the GenAI semantic conventions' ``gen_ai.*`` attributes and bitrate's ``bitrate.*``::

    chat auto               one call: the gateway's request (SERVER) or sdk.Client's (INTERNAL);
    │                         gen_ai.request.model is the name asked for, gen_ai.response.model the
    │                         model that answered, usage and finish reasons, bitrate.route/task/
    │                         target/reason; http.response.status_code at the gateway
    ├── bitrate.decide      task detection and the routing decision (bitrate.*)
    ├── chat small          a backend call (CLIENT): gen_ai.provider.name (and gen_ai.system) is the
    │                         backend kind, gen_ai.request.model the backend's model; a failure is
    │                         recorded on it (status ERROR, error.type, the exception)
    └── bitrate.fallback    the first target failed: the other side answers (bitrate.escalation
        └── chat big          likewise, when the student's answer failed a check)

A streamed backend call's span ends once its first chunk is in; the request's span ends with
the answer's last byte. The engine calls :func:`decide`, :func:`backend_call`, :func:`step` and
:func:`backend_failed` (which also logs a refused key, traced or not); the gateway and
``sdk.Client`` open the request's span with :func:`start_request`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from sdk import __version__
from sdk.decision import Decision
from sdk.errors import BitrateError, UpstreamStatusError
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest, Usage

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from sdk.policy import Policy

__all__ = [
    "RequestSpan",
    "backend_call",
    "backend_failed",
    "decide",
    "disable",
    "enable",
    "inject",
    "reset",
    "start_request",
    "step",
    "tracer",
]

log = logging.getLogger("bitrate.tracing")
engine_log = logging.getLogger("bitrate.engine")

T = TypeVar("T")
Attributes = dict[str, Any]
_NOTHING: AbstractContextManager[None] = nullcontext()
_REFUSED = frozenset({401, 403})


class _State:
    """The tracer in use (``None``: tracing is off), read from the environment on first use."""

    resolved = False
    tracer: Tracer | None = None


_state = _State()


def tracer() -> Tracer | None:
    """bitrate's tracer, or ``None`` while tracing is off."""
    if _state.resolved:
        return _state.tracer
    _state.tracer, _state.resolved = _from_environment(), True
    return _state.tracer


def enable(provider: TracerProvider | None = None) -> None:
    """Trace from now on, into ``provider`` (default: the global tracer provider)."""
    from opentelemetry import trace

    _state.tracer = trace.get_tracer("bitrate", __version__, tracer_provider=provider)
    _state.resolved = True


def disable() -> None:
    """Stop tracing (spans already open still end)."""
    _state.tracer, _state.resolved = None, True


def reset() -> None:
    """Forget :func:`enable`/:func:`disable`: the next call reads the environment again."""
    _state.tracer, _state.resolved = None, False


def _exporter_names() -> list[str]:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = (n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(","))
    return [n for n in names if n and n != "none"]


def _from_environment() -> Tracer | None:
    names = _exporter_names()
    if not names:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER is set but the OpenTelemetry SDK is not installed; tracing is off "
            "(pip install 'bitrate[otel]')"
        )
        return None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        enable()  # the application set its provider up: spans go there
        return _state.tracer
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "bitrate"}))
    for exporter in filter(None, map(_exporter, names)):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    enable(provider)
    return _state.tracer


def _exporter(name: str) -> Any:
    """The span exporter registered under ``name`` (the SDK's own entry points), or ``None``."""
    found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
    if not found:
        log.warning(
            "OTEL_TRACES_EXPORTER: no span exporter '%s' installed (for otlp: pip install "
            "opentelemetry-exporter-otlp)",
            name,
        )
        return None
    try:
        return found[0].load()()
    except Exception as exc:  # noqa: BLE001 - a third-party plugin: any failure leaves that exporter out
        log.warning("OTEL_TRACES_EXPORTER: span exporter '%s' did not start: %s", name, exc)
        return None


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current trace context (``traceparent``...) to outgoing ``headers``, when tracing."""
    if tracer() is not None:
        from opentelemetry import propagate

        propagate.inject(headers)


# ----------------------------------------------------------------------- attributes


def request_attributes(request: ChatRequest) -> Attributes:
    """``gen_ai.request.*`` of a chat request (the parameters it set)."""
    attributes: Attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": request.model}
    params = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_completion_tokens or request.max_tokens,
        "seed": request.seed,
    }
    attributes.update({f"gen_ai.request.{k}": v for k, v in params.items() if v is not None})
    if request.n != 1:
        attributes["gen_ai.request.choice.count"] = request.n
    return attributes


def decision_attributes(decision: Decision, *, detail: bool = True) -> Attributes:
    """``bitrate.*`` of a routing decision: where, what and why (the request's span), and with
    ``detail`` how it was decided too (the decision's span)."""
    attributes: Attributes = {
        "bitrate.route": decision.route,
        "bitrate.task": decision.task,
        "bitrate.target": decision.target,
        "bitrate.side": decision.side,
        "bitrate.reason": decision.reason,
    }
    if detail:
        attributes["bitrate.task_source"] = decision.task_source
        attributes["bitrate.rule"] = decision.rule
        attributes["bitrate.verdict"] = decision.verdict
    if decision.fallback_from:
        attributes["bitrate.fallback_from"] = decision.fallback_from
    if decision.escalated:
        attributes["bitrate.escalated"] = True
    return attributes


def usage_attributes(usage: Usage | None) -> Attributes:
    """``gen_ai.usage.*``, when the answer counted its tokens."""
    if usage is None:
        return {}
    return {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
    }


def completion_attributes(completion: ChatCompletion) -> Attributes:
    """``gen_ai.response.*`` and usage of a complete answer."""
    return {
        "gen_ai.response.model": completion.model,
        "gen_ai.response.id": completion.id,
        "gen_ai.response.finish_reasons": [c.finish_reason or "" for c in completion.choices],
        **usage_attributes(completion.usage),
    }


def chunks_attributes(chunks: Iterable[ChatCompletionChunk]) -> Attributes:
    """What the chunks seen so far of a streamed answer say (model, finish reasons, usage)."""
    attributes: Attributes = {}
    reasons: list[str] = []
    for chunk in chunks:
        attributes.setdefault("gen_ai.response.model", chunk.model)
        attributes.setdefault("gen_ai.response.id", chunk.id)
        reasons += [c.finish_reason for c in chunk.choices if c.finish_reason]
        attributes.update(usage_attributes(chunk.usage))
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    return attributes


def _result_attributes(result: object) -> Attributes:
    """A backend call's result: a completion, buffered chunks, or ``(first chunks, rest)``."""
    if isinstance(result, ChatCompletion):
        return completion_attributes(result)
    if isinstance(result, tuple) and result:
        result = result[0]
    if isinstance(result, list):
        return chunks_attributes(c for c in result if isinstance(c, ChatCompletionChunk))
    return {}


def _backend_attributes(target: str, policy: Policy) -> Attributes:
    config = policy.models.get(target)
    if config is None:
        return {"bitrate.model": target}
    attributes: Attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": config.backend,
        "gen_ai.system": config.backend,
        "gen_ai.request.model": config.model,
        "bitrate.model": target,
    }
    base_url = getattr(config, "base_url", None)
    if base_url:
        parts = urlsplit(base_url)
        attributes["server.address"] = parts.hostname or ""
        attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return attributes


def _error_type(exc: BaseException) -> str:
    return (exc.code or type(exc).__name__) if isinstance(exc, BitrateError) else type(exc).__name__


def _failed(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(exc)
    span.set_attribute("error.type", _error_type(exc))
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))


# ----------------------------------------------------------------------- engine hooks


def decide(explain: Callable[[ChatRequest, str | None], Decision], request: ChatRequest, hint: str | None):
    """``explain(request, hint)``, in a ``bitrate.decide`` span when tracing."""
    active = tracer()
    if active is None:
        return explain(request, hint)
    with active.start_as_current_span(
        "bitrate.decide", record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            decision = explain(request, hint)
        except BaseException as exc:
            _failed(span, exc)
            raise
        span.set_attributes(decision_attributes(decision))
    return decision


def backend_call(call: Awaitable[T], target: str, policy: Policy) -> Awaitable[T]:
    """``call`` (to model ``target``), in a ``chat {model}`` client span when tracing."""
    active = tracer()
    if active is None:
        return call
    return _traced_call(active, call, target, policy)


async def _traced_call(active: Tracer, call: Awaitable[T], target: str, policy: Policy) -> T:
    from opentelemetry.trace import SpanKind

    attributes = _backend_attributes(target, policy)
    name = f"chat {attributes.get('gen_ai.request.model', target)}"
    with active.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            result = await call
        except BaseException as exc:
            _failed(span, exc)
            raise
        span.set_attributes(_result_attributes(result))
        return result


def step(kind: str, decision: Decision) -> AbstractContextManager[object]:
    """A ``bitrate.{kind}`` span (``fallback``, ``escalation``) around the call that ``decision``,
    the new one, makes; nothing when not tracing."""
    active = tracer()
    if active is None:
        return _NOTHING
    return active.start_as_current_span(f"bitrate.{kind}", attributes=decision_attributes(decision))


def backend_failed(target: str, policy: Policy, exc: BitrateError) -> None:
    """A backend call failed: a refused key (upstream 401 or 403) is logged as a warning naming
    the backend and the variable its key comes from."""
    if isinstance(exc, UpstreamStatusError) and exc.upstream_status in _REFUSED:
        variable = getattr(policy.models.get(target), "api_key_env", None)
        where = f"the key in ${variable}" if variable else "no key is configured (api_key_env)"
        engine_log.warning(
            "backend '%s': upstream answered %d, its API key was refused; check %s",
            target,
            exc.upstream_status,
            where,
        )


# ----------------------------------------------------------------------- the request's span


class RequestSpan:
    """One chat call's span, ``chat {model}``; its children open while it is entered."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span):
        self._span = span
        self._token: object | None = None

    def enter(self) -> None:
        """Make this the current span (the engine's spans become its children)."""
        from opentelemetry import context, trace

        self._token = context.attach(trace.set_span_in_context(self._span))

    def leave(self) -> None:
        """Undo :meth:`enter` (the span stays open until :meth:`end`)."""
        if self._token is not None:
            from opentelemetry import context

            context.detach(self._token)  # type: ignore[arg-type]
            self._token = None

    def requested(self, request: ChatRequest) -> None:
        """Name the span after the model asked for, with the request's parameters."""
        self._span.update_name(f"chat {request.model}")
        self._span.set_attributes(request_attributes(request))

    def end(
        self,
        decision: Decision | None = None,
        *,
        attributes: Mapping[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End the span: the decision's and the answer's attributes, or the error."""
        span = self._span
        end: Attributes = dict(attributes or {})
        if decision is not None:
            end.update(decision_attributes(decision, detail=False))
            end["gen_ai.provider.name"] = end["gen_ai.system"] = "bitrate"
        if end:
            span.set_attributes(end)
        if error is not None:
            _failed(span, error)
        span.end()


def start_request(
    *,
    server: bool,
    carrier: Mapping[str, str] | None = None,
    request_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> RequestSpan | None:
    """A new request span (``None`` when not tracing): kind SERVER with the trace context of the
    caller's ``carrier`` headers (``traceparent``) at the gateway, INTERNAL in ``sdk.Client``."""
    active = tracer()
    if active is None:
        return None
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(carrier) if carrier is not None else None
    kind = SpanKind.SERVER if server else SpanKind.INTERNAL
    initial: Attributes = {"gen_ai.operation.name": "chat", **(attributes or {})}
    if request_id is not None:
        initial["bitrate.request_id"] = request_id
    return RequestSpan(active.start_span("chat", context=parent, kind=kind, attributes=initial))
