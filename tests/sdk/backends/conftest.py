"""Fixtures shared by the openai backend's tests: a fault server, its key, both transports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sdk.backends.openai_http import OpenAIBackend
from tests.sdk.backends.test_openai_http import KEY, TRANSPORTS, build
from tests.support.fault_server import FaultServer, fault_server


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        yield running


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULT_API_KEY", KEY)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def backend(server: FaultServer, transport: str) -> AsyncIterator[OpenAIBackend]:
    async with build(server.base_url, transport=transport) as opened:
        yield opened
