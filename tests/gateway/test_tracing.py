"""Traces of chat calls through the gateway (in-process, upstream: the fault server), collected
with the OpenTelemetry SDK's in-memory exporter; the console exporter under ``bitrate serve`` is
tests/cli/test_serve_observability.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sdk import tracing
from sdk.engine import Circuit, Engine
from tests.sdk.test_client_openai_compat import MESSAGES, policy_for
from tests.support.fault_server import FaultServer, Ok, Status, fault_server
from tests.support.inprocess import InProcess, inprocess_gateway

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"
STUDENT = {"x-bitrate-task": "copy"}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
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


@pytest.fixture
async def gateway(server: FaultServer) -> AsyncIterator[InProcess]:
    engine = Engine(policy_for(server.base_url), circuit=Circuit(threshold=10**6))
    async with inprocess_gateway(engine) as running:
        yield running


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": MESSAGES, **fields}


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_chat_call_is_a_server_span_with_genai_attributes(gateway, server, exporter):
    headers = {"traceparent": TRACEPARENT, **STUDENT}
    answer = await gateway.http.post("/v1/chat/completions", json=chat(temperature=0), headers=headers)
    assert answer.status_code == 200
    spans = by_name(exporter)
    request, decide, backend = spans["chat auto"], spans["bitrate.decide"], spans["chat small"]

    assert request.kind is SpanKind.SERVER
    assert request.context is not None and f"{request.context.trace_id:032x}" == CALLER_TRACE
    assert parent_of(decide) == parent_of(backend) == span_id(request)
    attributes = request.attributes
    assert attributes is not None
    assert attributes["gen_ai.operation.name"] == "chat"
    assert (attributes["gen_ai.request.model"], attributes["gen_ai.response.model"]) == ("auto", "small")
    assert attributes["gen_ai.usage.input_tokens"] == answer.json()["usage"]["prompt_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == answer.json()["usage"]["completion_tokens"]
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attributes["bitrate.route"], attributes["bitrate.task"], attributes["bitrate.target"]) == (
        "auto",
        "copy",
        "student",
    )
    assert attributes["bitrate.reason"] == answer.headers["x-bitrate-reason"]
    assert attributes["bitrate.request_id"] == answer.headers["x-request-id"]
    assert (attributes["http.request.method"], attributes["url.path"]) == ("POST", "/v1/chat/completions")
    assert attributes["http.response.status_code"] == 200
    assert backend.kind is SpanKind.CLIENT and backend.attributes is not None
    assert backend.attributes["gen_ai.provider.name"] == "openai"

    upstream = server.chat_requests[-1].headers
    assert upstream["x-request-id"] == answer.headers["x-request-id"]
    assert upstream["traceparent"].split("-")[1] == CALLER_TRACE


async def test_a_fallback_at_the_gateway(gateway, server, exporter):
    server.script(Status(503, "student down"), Ok())
    answer = await gateway.http.post("/v1/chat/completions", json=chat(), headers=STUDENT)
    assert answer.status_code == 200 and answer.headers["x-bitrate-target"] == "frontier"
    spans = by_name(exporter)
    assert spans["chat small"].status.status_code is StatusCode.ERROR
    assert parent_of(spans["bitrate.fallback"]) == span_id(spans["chat auto"])
    assert parent_of(spans["chat big"]) == span_id(spans["bitrate.fallback"])


async def test_a_streams_span_ends_with_its_last_byte(gateway, exporter):
    body = chat(stream=True, stream_options={"include_usage": True})
    answer = await gateway.http.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n")
    request = by_name(exporter)["chat auto"]
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["gen_ai.usage.output_tokens"] > 0
    assert request.attributes["bitrate.target"] == "frontier"


async def test_a_failed_call_is_an_error_span(gateway, exporter):
    answer = await gateway.http.post("/v1/chat/completions", json=chat(model="nope"))
    assert answer.status_code == 404
    request = by_name(exporter)["chat nope"]
    assert request.status.status_code is StatusCode.ERROR
    assert request.attributes is not None
    assert (request.attributes["error.type"], request.attributes["http.response.status_code"]) == (
        "model_not_found",
        404,
    )
