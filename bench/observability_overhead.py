"""What the gateway's observability costs per chat call: request id, log line, spans.

Two measurements, both in-process on this machine's CPU (no network, no server):

- ``hooks``: each piece the hot path gained, called alone in a loop (µs per call): the
  :class:`~gateway.request_log.ChatCall` life cycle with the log line off, the request id
  (made, or the caller's checked), the id added to upstream headers, the engine's tracing
  hooks with tracing off, and the log line on (written to a discarded stream); with two
  references measured the same way, a plain stdlib log line and one bare OpenTelemetry span
  (this machine's load moves every figure; the ratios move less);
- ``calls``: whole chat calls through the gateway's ASGI app (the fast path: routing, an
  ``openai`` backend on ``httpx.MockTransport``, encoding), µs per call, in three settings:
  log and traces off (the default), the request log on at INFO, and traces on (SDK provider,
  batch processor, an exporter that drops the spans).

    .venv/bin/python bench/observability_overhead.py --calls 3000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from gateway.app import create_app
from gateway.request_log import ChatCall
from sdk import tracing
from sdk.backends.config import OpenAIConfig
from sdk.backends.openai_http import OpenAIBackend
from sdk.decision import Decision
from sdk.engine import Engine
from sdk.policy import Policy
from sdk.protocol import ChatRequest, Usage
from sdk.request_context import REQUEST_ID, request_id_from, upstream_headers

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
BODY = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "sort: dcba"}]}).encode()
POLICY = {
    "version": 1,
    "models": {
        name: {"backend": "openai", "base_url": "http://upstream/v1", "model": name, "transport": "httpx"}
        for name in ("student", "frontier")
    },
    "routes": {
        "auto": {
            "student": "student",
            "frontier": "frontier",
            "tasks": {"detect": ["rules"], "rules": [{"match": "^sort:", "task": "sort"}]},
            "pin": {"sort": "student"},
        }
    },
}


def per_call(fn: Callable[[], Any], n: int, repeats: int = 5) -> float:
    """Best of ``repeats`` runs of ``n`` calls, in µs per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def hooks(n: int) -> dict[str, float]:
    tracing.disable()
    scope: dict[str, Any] = {"method": "POST", "path": "/v1/chat/completions"}
    headers: dict[str, str] = {}
    decision = Decision("auto", "student", "student", task="sort", reason="student: sort is safe")
    usage = Usage(prompt_tokens=5, completion_tokens=1, total_tokens=6)
    request = ChatRequest.model_validate_json(BODY)
    policy = Policy.model_validate(POLICY)
    upstream = {"user-agent": "bitrate/0.1", "content-type": "application/json", "accept": "application/json"}

    def call_off() -> None:
        call = ChatCall(scope, headers)
        call.answered(decision, 200, usage, stream=False)
        call.leave()

    async def nothing() -> None:
        return None

    def backend_hook() -> None:
        pending = nothing()
        tracing.backend_call(pending, "student", policy).close()  # type: ignore[attr-defined]

    def bare_coroutine() -> None:
        nothing().close()

    out = {
        "chat_call_log_off": per_call(call_off, n),
        "request_id_made": per_call(lambda: request_id_from(None), n),
        "request_id_callers": per_call(lambda: request_id_from("req-0123456789abcdef"), n),
        "id_header": per_call(lambda: (b"x-request-id", b"0123456789abcdef0123456789abcdef"), n),
        "decide_hook": per_call(lambda: tracing.decide(lambda r, h: decision, request, None), n)
        - per_call(lambda: (lambda r, h: decision)(request, None), n),
        "backend_hook": per_call(backend_hook, n) - per_call(bare_coroutine, n),
    }
    token = REQUEST_ID.set("0123456789abcdef0123456789abcdef")
    out["upstream_headers_with_id"] = per_call(lambda: upstream_headers(upstream), n)
    REQUEST_ID.reset(token)
    logger = logging.getLogger("bitrate.requests")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    out["chat_call_log_on"] = per_call(call_off, n)
    out["ref_stdlib_log_line"] = per_call(lambda: logger.info("a plain line of about the same length"), n)
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    out["ref_one_sdk_span"] = _bare_span_cost(n // 5)
    return out


def _bare_span_cost(n: int) -> float:
    """One OpenTelemetry SDK span, no attributes (batch processor, dropping exporter): the unit
    the traced calls below are made of."""
    undo = configure("trace")
    active = tracing.tracer()
    assert active is not None

    def span() -> None:
        with active.start_as_current_span("probe"):
            pass

    try:
        return per_call(span, n)
    finally:
        undo()


def mock_backend(name: str) -> OpenAIBackend:
    content = json.dumps({**COMPLETION, "model": name}).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})

    config = OpenAIConfig.model_validate(POLICY["models"][name])
    return OpenAIBackend(name, config, transport=httpx.MockTransport(answer))


async def calls(n: int, setting: str) -> float:
    """µs per chat call through the app (the fast path) with ``setting``: off, log, trace."""
    policy = Policy.model_validate(POLICY)
    engine = Engine(policy, backends={name: mock_backend(name) for name in policy.models})
    app = create_app(engine)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
        "query_string": b"",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async with app.router.lifespan_context(app):
        for _ in range(200):  # warm up: caches, memoised decisions, pooled objects
            await app(dict(scope), receive, send)
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                await app(dict(scope), receive, send)
            samples.append((time.perf_counter() - start) / n * 1e6)
    assert set(statuses) == {200}, set(statuses)
    return statistics.median(samples)


def configure(setting: str) -> Callable[[], None]:
    """Turn ``setting`` on; returns what turns it off again."""
    logger = logging.getLogger("bitrate.requests")
    if setting == "log":
        handler = logging.StreamHandler(io.StringIO())
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        return lambda: (logger.removeHandler(handler), logger.setLevel(logging.NOTSET))  # type: ignore[func-returns-value]
    if setting == "trace":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        tracing.enable(provider)
        return lambda: (tracing.disable(), provider.shutdown())  # type: ignore[func-returns-value]
    tracing.disable()
    return lambda: None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="chat calls per sample (5 samples a setting)")
    parser.add_argument("--loops", type=int, default=100_000, help="calls per hook measurement")
    args = parser.parse_args()
    for name, us in hooks(args.loops).items():
        print(f"hook {name:28s} {us:7.3f} us")
    results = {}
    for setting in ("off", "log", "trace", "off"):
        undo = configure(setting)
        results[setting] = asyncio.run(calls(args.calls, setting))
        undo()
        print(f"call {setting:5s} {results[setting]:8.1f} us/call")
    print(
        f"log_on_extra_us={results['log'] - results['off']:.1f} "
        f"trace_on_extra_us={results['trace'] - results['off']:.1f}"
    )


if __name__ == "__main__":
    main()
