"""A minimal real OpenAI-compatible HTTP server around any sdk ``Backend``, for tests.

Starlette + uvicorn on 127.0.0.1 (a free port), in a background thread with its
own event loop. ``POST /v1/chat/completions`` answers JSON or SSE (``data: {...}``
events, then ``data: [DONE]``), ``GET /v1/models`` lists the one model. sdk
errors become OpenAI error bodies with their status; an error before the first
chunk of a stream is an ordinary error response, one after it an SSE error event.

    with serve_backend(backend) as base_url:   # "http://127.0.0.1:PORT/v1"
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pydantic
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sdk.backends.base import Backend
from sdk.errors import BitrateError, InvalidRequest
from sdk.protocol import ChatCompletionChunk, ChatRequest

__all__ = ["build_app", "serve_backend"]


def _error(exc: BitrateError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status)


async def _parse(request: Request) -> ChatRequest:
    try:
        return ChatRequest.model_validate(json.loads(await request.body()))
    except (json.JSONDecodeError, pydantic.ValidationError) as exc:
        raise InvalidRequest(f"invalid request body: {exc}") from exc


def _sse(chunk: ChatCompletionChunk) -> bytes:
    return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n".encode()


async def _events(
    first: ChatCompletionChunk, rest: AsyncIterator[ChatCompletionChunk]
) -> AsyncIterator[bytes]:
    try:
        yield _sse(first)
        async for chunk in rest:
            yield _sse(chunk)
    except BitrateError as exc:
        yield f"data: {json.dumps(exc.to_body())}\n\n".encode()
    finally:
        await rest.aclose()  # the client went away: stop generating
    yield b"data: [DONE]\n\n"


def build_app(backend: Backend) -> Starlette:
    """The Starlette app serving ``backend`` under ``/v1``."""

    async def chat(request: Request) -> Response:
        try:
            body = await _parse(request)
            if not body.stream:
                answer = await backend.complete(body)
                return JSONResponse(answer.model_dump(mode="json", exclude_none=True))
            chunks = backend.stream(body)
            try:
                first = await anext(chunks)
            except BaseException:
                await chunks.aclose()
                raise
        except BitrateError as exc:
            return _error(exc)
        return StreamingResponse(_events(first, chunks), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        card = {"id": backend.name, "object": "model", "created": 0, "owned_by": "bitrate-tests"}
        return JSONResponse({"object": "list", "data": [card]})

    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
    return Starlette(routes=routes)


@contextlib.contextmanager
def serve_backend(backend: Backend, *, startup_timeout: float = 20.0) -> Iterator[str]:
    """Serve ``backend`` on 127.0.0.1 while the block runs; yield the ``/v1`` base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(backend), log_level="warning", lifespan="off", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test model server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
