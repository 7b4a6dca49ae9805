"""Traces of sdk.Client calls (``sdk.tracing``), collected with the OpenTelemetry SDK's in-memory
exporter, on a real ``openai`` backend talking to the fault server; and tracing off by default."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import sdk
from sdk import tracing
from sdk.engine import Circuit, Engine
from tests.sdk.test_client_openai_compat import MESSAGES, STUDENT, policy_for
from tests.support.fault_server import FaultServer, Ok, Status, fault_server


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for the test; back to the environment's choice after it."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.enable(provider)
    yield spans
    tracing.reset()
    provider.shutdown()


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        yield running


def client_on(server: FaultServer, **route: Any) -> sdk.Client:
    engine = Engine(policy_for(server.base_url, **route), circuit=Circuit(threshold=10**6))
    return sdk.Client(engine=engine)


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = exporter.get_finished_spans()
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [s.name for s in spans]
    return named


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def test_a_call_makes_the_request_decision_and_backend_spans(server, exporter):
    with client_on(server) as client:
        completion = client.chat.completions.create(
            model="auto", messages=MESSAGES, extra_headers=STUDENT, temperature=0.5, max_tokens=20
        )
    spans = by_name(exporter)
    assert set(spans) == {"chat auto", "bitrate.decide", "chat small"}
    request, decide, backend = spans["chat auto"], spans["bitrate.decide"], spans["chat small"]

    assert request.kind is SpanKind.INTERNAL and request.parent is None
    assert parent_of(decide) == parent_of(backend) == span_id(request)
    assert request.attributes is not None and backend.attributes is not None
    assert dict(request.attributes) | {"bitrate.request_id": "-"} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "auto",
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.max_tokens": 20,
        "gen_ai.provider.name": "bitrate",
        "gen_ai.system": "bitrate",
        "gen_ai.response.model": "small",
        "gen_ai.response.id": completion.id,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
        "bitrate.route": "auto",
        "bitrate.task": "copy",
        "bitrate.target": "student",
        "bitrate.side": "student",
        "bitrate.reason": completion.bitrate.reason,
        "bitrate.request_id": "-",
    }
    assert backend.kind is SpanKind.CLIENT
    assert {k: backend.attributes[k] for k in ("gen_ai.provider.name", "gen_ai.system")} == {
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
    }
    assert (
        backend.attributes["gen_ai.request.model"] == backend.attributes["gen_ai.response.model"] == "small"
    )
    assert backend.attributes["gen_ai.usage.input_tokens"] == 5
    assert (backend.attributes["server.address"], backend.attributes["bitrate.model"]) == (
        "127.0.0.1",
        "student",
    )
    assert decide.attributes is not None
    assert {k: decide.attributes[k] for k in ("bitrate.target", "bitrate.rule", "bitrate.task_source")} == {
        "bitrate.target": "student",
        "bitrate.rule": "pin",
        "bitrate.task_source": "hint",
    }

    upstream = server.chat_requests[-1].headers
    assert upstream["x-request-id"] == request.attributes["bitrate.request_id"]
    assert upstream["traceparent"].split("-")[1] == f"{backend.context.trace_id:032x}"


def test_a_failed_student_falls_back_in_a_fallback_span(server, exporter):
    server.script(Status(500, "student down"), Ok())
    with client_on(server) as client:
        completion = client.chat.completions.create(model="auto", messages=MESSAGES, extra_headers=STUDENT)
    assert completion.bitrate.fallback_from == "student"
    spans = by_name(exporter)
    request, failed, fallback, answered = (
        spans[name] for name in ("chat auto", "chat small", "bitrate.fallback", "chat big")
    )
    assert failed.status.status_code is StatusCode.ERROR and parent_of(failed) == span_id(request)
    assert failed.attributes is not None and failed.attributes["error.type"] == "upstream_status"
    assert [event.name for event in failed.events] == ["exception"]
    assert parent_of(fallback) == span_id(request) and parent_of(answered) == span_id(fallback)
    assert fallback.attributes is not None
    assert (fallback.attributes["bitrate.target"], fallback.attributes["bitrate.fallback_from"]) == (
        "frontier",
        "student",
    )
    assert request.status.status_code is StatusCode.UNSET
    assert request.attributes is not None and request.attributes["bitrate.fallback_from"] == "student"


def test_a_failed_check_escalates_in_an_escalation_span(server, exporter):
    server.script(Ok(text=""), Ok())
    with client_on(server, escalate=[{"check": "non_empty"}]) as client:
        completion = client.chat.completions.create(model="auto", messages=MESSAGES, extra_headers=STUDENT)
    assert completion.bitrate.escalated
    spans = by_name(exporter)
    escalation = spans["bitrate.escalation"]
    assert parent_of(escalation) == span_id(spans["chat auto"])
    assert parent_of(spans["chat big"]) == span_id(escalation)
    assert escalation.attributes is not None and escalation.attributes["bitrate.escalated"] is True


def test_a_streams_span_ends_with_the_stream(server, exporter):
    with client_on(server) as client:
        stream = client.chat.completions.create(
            model="auto", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert "chat auto" not in by_name(exporter)  # open until the last chunk
        chunks = list(stream)
    request = by_name(exporter)["chat auto"]
    assert request.attributes is not None
    assert request.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert request.attributes["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens
    assert request.attributes["bitrate.target"] == "frontier"


def test_a_failed_call_is_an_error_span(server, exporter):
    server.script(Status(429, "slow down"))
    with client_on(server) as client, pytest.raises(sdk.UpstreamStatusError):
        client.chat.completions.create(model="frontier", messages=MESSAGES)
    request = by_name(exporter)["chat frontier"]
    assert request.status.status_code is StatusCode.ERROR
    assert request.attributes is not None and request.attributes["error.type"] == "upstream_status"


def test_tracing_is_off_by_default_and_the_hooks_pass_through(monkeypatch):
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    tracing.reset()
    assert tracing.tracer() is None
    assert tracing.start_request(server=True) is None

    async def call() -> int:
        return 1

    pending = call()
    assert tracing.backend_call(pending, "student", policy_for("http://127.0.0.1:9/v1")) is pending
    pending.close()
    assert tracing.decide(lambda request, hint: "decided", None, None) == "decided"


def _traced_probe(**env: str) -> subprocess.CompletedProcess[str]:
    """A fresh process with these ``OTEL_*`` settings that traces one span named ``probe``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = (
        "from sdk import tracing\n"
        "t = tracing.tracer()\n"
        "print('tracer:', t is not None)\n"
        "if t is not None:\n"
        "    with t.start_as_current_span('probe'): pass\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, check=True, timeout=60
    )


def test_the_standard_environment_turns_tracing_on_and_off():
    console = _traced_probe(OTEL_TRACES_EXPORTER="console")
    assert "tracer: True" in console.stdout
    assert '"name": "probe"' in console.stdout and '"service.name": "bitrate"' in console.stdout
    named = _traced_probe(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="gw-eu-1")
    assert '"service.name": "gw-eu-1"' in named.stdout
    for off in (
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
    ):
        assert _traced_probe(**off).stdout.strip() == "tracer: False"
    unknown = _traced_probe(OTEL_TRACES_EXPORTER="no-such-exporter")
    assert "no span exporter 'no-such-exporter'" in unknown.stderr
