"""The OpenAPI document the gateway serves describes its chat route."""

from __future__ import annotations

from tests.gateway.conftest import upstream_policy
from tests.support.fault_server import refused_url
from tests.support.inprocess import inprocess_gateway


async def test_openapi_document_describes_the_chat_route():
    with refused_url() as url:
        async with inprocess_gateway(upstream_policy(url)) as gateway:
            document = (await gateway.http.get("/openapi.json")).json()
    operation = document["paths"]["/v1/chat/completions"]["post"]
    request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = document["components"]["schemas"][request_ref.rsplit("/", 1)[1]]
    assert {"model", "messages"} <= set(request_schema["required"])
    assert "route name" in request_schema["properties"]["model"]["description"]
    assert {"200", "400", "401", "404", "413", "502", "503", "504"} <= set(operation["responses"])
