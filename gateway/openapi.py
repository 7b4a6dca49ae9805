"""The gateway's OpenAPI document, generated from the wire types in ``sdk.protocol``.

The routes are plain Starlette routes (see ``gateway.routes``), so FastAPI cannot
infer their schemas; this module states them once, from the same pydantic models
the handlers validate with. Served at ``/openapi.json`` (and ``/docs``), built on first use.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest, ErrorBody

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Malformed JSON or an invalid field (``param`` names it)",
    "401": "Missing or wrong API key",
    "404": "No route or model by that name",
    "413": "Body over the configured limit",
    "502": "The backend failed (the message names it)",
    "503": "The backend is unreachable",
    "504": "The backend did not answer in time",
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


def _chat_operation(refs: dict[str, str]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "The answer; server-sent events of chunks when ``stream`` is true",
            "content": {
                **_json(refs["ChatCompletion"]),
                "text/event-stream": {"schema": {"$ref": refs["ChatCompletionChunk"]}},
            },
        }
    }
    responses.update(
        {code: {"description": why, "content": _json(refs["ErrorBody"])} for code, why in _ERRORS.items()}
    )
    return {
        "summary": "Chat completion, routed to the student or the frontier",
        "requestBody": {"required": True, "content": _json(refs["ChatRequest"])},
        "responses": responses,
    }


def openapi_document(title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway's routes."""
    models: list[type[BaseModel]] = [ChatRequest, ChatCompletion, ChatCompletionChunk, ErrorBody]
    keys, schema = models_json_schema(
        [(m, "validation" if m is ChatRequest else "serialization") for m in models], ref_template=_REF
    )
    refs = {m.__name__: keys[(m, mode)]["$ref"] for (m, mode) in keys}
    plain = {"200": {"description": "OK"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": {
            "/v1/chat/completions": {"post": _chat_operation(refs)},
            "/v1/models": {
                "get": {"summary": "Routes, then direct models (OpenAI list format)", "responses": plain}
            },
            "/v1/models/{name}": {"get": {"summary": "One route or model", "responses": plain}},
            "/healthz": {"get": {"summary": "Alive", "responses": plain}},
            "/readyz": {"get": {"summary": "Every route can serve (503 otherwise)", "responses": plain}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": plain}},
        },
        "components": {"schemas": schema.get("$defs", {})},
    }
