"""The openai backend against a hostile upstream: the API key never shows, whole or in part
(scrubbed before any cut, in bodies, request ids, stream errors and retry log lines), an
upstream 401/403/404 is the backend's fault, and every read of a body is bounded by the
model's ``timeout`` (a malformed chunk-size line mid-body cannot hang a call)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from sdk.backends.openai_http import OpenAIBackend
from sdk.backends.read_timeout import bounded
from sdk.backends.scrub import MAX_MESSAGE, scrub
from sdk.errors import BackendError, UpstreamStatusError
from sdk.protocol import ChatCompletionChunk
from tests.sdk.backends.test_openai_http import build, chat
from tests.support.fault_server import BadChunkSize, Drip, FaultServer, Raw, Status, StreamError
from tests.support.fault_server.exchange import DEFAULT_TEXT
from tests.support.secrets import fake_key, key_fragments

KEY_ENV = "HARDENING_UPSTREAM_KEY"
KEY = fake_key("backend hardening")
"""The upstream key: 51 characters, none of its 8-character runs found in ordinary text."""

PAD = "x" * (MAX_MESSAGE - 15)
"""Upstream text before the key, so that the 300-character cut falls 15 characters into it."""


def fragments(text: str) -> list[str]:
    """The runs of 8 characters of :data:`KEY` that ``text`` holds."""
    return key_fragments(KEY, text)


@pytest.fixture(autouse=True)
def hardening_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def keyed(server: FaultServer, transport: str, **config) -> OpenAIBackend:
    """A backend over ``server`` that sends :data:`KEY`."""
    values = {"api_key_env": KEY_ENV, "max_retries": 0, **config}
    return build(server.base_url, transport=transport, **values)


async def failure(backend: OpenAIBackend, *, stream: bool = False) -> BackendError:
    """The error one call raises (a stream is read to its end)."""
    with pytest.raises(BackendError) as info:
        if stream:
            async for _ in backend.stream(chat()):
                pass
        else:
            await backend.complete(chat())
    return info.value


# --------------------------------------------------------------------------- scrub, on its own


@pytest.mark.parametrize(
    "text",
    [
        PAD + KEY + " (check your key)",
        "Incorrect API key provided: " + KEY,
        f"you sent Authorization: Bearer {KEY}",
        f"key {KEY[:20]}... is not valid",
        f"key ...{KEY[-9:]} is not valid",
        f"the middle {KEY[10:30]} of it",
        PAD + KEY[:20] + "..." + KEY[-6:],
        "y" * 5000 + KEY,
        (KEY[:10] + "-") * 500,
    ],
    ids=["straddles-cut", "whole", "bearer", "prefix", "suffix", "middle", "cut-prefix", "far", "repeated"],
)
def test_scrub_leaves_no_run_of_the_key(text: str):
    scrubbed = scrub(text, KEY)
    assert not fragments(scrubbed), scrubbed
    assert len(scrubbed) <= MAX_MESSAGE + 3


def test_scrub_masks_any_bearer_token_and_keeps_the_rest_on_one_line():
    assert scrub("sent Bearer abc.def-123, refused", None) == "sent Bearer ***, refused"
    assert scrub("<html>\n  <body>Not Found</body>\n</html>\n") == "<html> <body>Not Found</body> </html>"
    assert scrub("model 'big' not found", KEY) == "model 'big' not found"
    assert scrub("key EMPTY refused", "EMPTY") == "key *** refused"


# ------------------------------------------------------------------- the key in what the upstream says


@pytest.mark.parametrize("status", [500, 400])
async def test_a_key_straddling_the_cut_never_shows(server: FaultServer, transport: str, status: int):
    server.script(Status(status, message=PAD + KEY + " (check your key)"))
    async with keyed(server, transport) as backend:
        error = await failure(backend)
    assert isinstance(error, UpstreamStatusError) and error.upstream_status == status
    assert PAD[:50] in error.message, "the upstream's own words are kept, cut short"
    assert not fragments(error.message) and not fragments(json.dumps(error.to_body()))


@pytest.mark.parametrize("echo", ["req-{n} {authorization}", "req-{n}-" + KEY], ids=["bearer", "bare"])
async def test_a_key_echoed_in_the_request_id_never_shows(server: FaultServer, transport: str, echo: str):
    server.request_id_format = echo
    server.script(Status(500))
    async with keyed(server, transport) as backend:
        error = await failure(backend)
    assert isinstance(error, UpstreamStatusError) and error.request_id is not None
    assert error.request_id.startswith("req-1") and "req-1" in error.message
    assert not fragments(error.message) and not fragments(error.request_id)


async def test_a_part_of_the_key_echoed_never_shows(server: FaultServer, transport: str):
    server.script(Status(401, message=f"Incorrect API key provided: {KEY[:20]}****{KEY[-6:]}."))
    async with keyed(server, transport) as backend:
        error = await failure(backend)
    assert not fragments(error.message)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_a_content_type_echoing_the_key_never_shows(server: FaultServer, transport: str, stream: bool):
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/{KEY}\r\ncontent-length: 2\r\n\r\n{{}}"
    server.script(Raw(head.encode()))
    async with keyed(server, transport) as backend:
        error = await failure(backend, stream=stream)
    assert error.code == "bad_upstream_response" and "'application/***'" in error.message
    assert KEY[3:20].lower() not in error.message.lower() and not fragments(error.message)


async def test_an_error_event_echoing_the_key_never_shows(server: FaultServer, transport: str):
    server.script(StreamError(error={"message": PAD + KEY, "type": "server_error"}))
    async with keyed(server, transport) as backend:
        error = await failure(backend, stream=True)
    assert error.code == "upstream_stream_error" and not fragments(error.message)


async def test_retry_log_lines_never_show_the_key(
    server: FaultServer, transport: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="bitrate")
    server.request_id_format = "req-{n} {authorization}"
    server.script(*(Status(503, message=PAD + KEY, retry_after=0) for _ in range(3)))
    async with keyed(server, transport, max_retries=2) as backend:
        error = await failure(backend)
    retries = [r.getMessage() for r in caplog.records if r.name == "bitrate.backends.retry"]
    assert len(retries) == 2 and all("upstream answered 503" in line for line in retries)
    assert not fragments("\n".join(r.getMessage() for r in caplog.records))
    assert not fragments(error.message)


# --------------------------------------------------------------------------- whose fault a 4xx is


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_upstream_auth_and_not_found_are_the_backends_fault(
    server: FaultServer, transport: str, status: int
):
    server.script(Status(status, message="Incorrect API key provided: sk-...abcd"))
    async with keyed(server, transport, max_retries=2) as backend:
        error = await failure(backend)
    assert isinstance(error, UpstreamStatusError) and not error.is_caller_fault
    assert error.status == 502 and "backend 'frontier'" in error.message
    assert len(server.chat_requests) == 1, "the same key would be refused again: no retry"


@pytest.mark.parametrize("status", [400, 413, 422])
async def test_upstream_bad_request_stays_the_callers_fault(server: FaultServer, transport: str, status: int):
    server.script(Status(status, message="messages[0].content is too long"))
    async with keyed(server, transport) as backend:
        error = await failure(backend)
    assert isinstance(error, UpstreamStatusError) and error.is_caller_fault


# --------------------------------------------------------------------------- every read bounded


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_a_bad_chunk_size_line_is_bounded_by_the_timeout(
    server: FaultServer, transport: str, stream: bool
):
    fault = BadChunkSize(hold=20)
    server.script(fault)
    async with keyed(server, transport, timeout=0.5) as backend:
        async with asyncio.timeout(fault.hold + 5):  # only a hang reaches this: the call must fail
            error = await failure(backend, stream=stream)
    assert not fault.closed.is_set(), "the call waited for the upstream to close the connection"
    assert "backend 'frontier'" in error.message and error.status in (502, 503, 504)
    assert "127.0.0.1" not in error.message, "no upstream address in what a caller sees"


async def test_time_between_reads_is_not_counted(server: FaultServer, transport: str):
    server.script(Drip(0.05))
    chunks: list[ChatCompletionChunk] = []
    async with keyed(server, transport, timeout=0.5) as backend:
        async for chunk in backend.stream(chat()):
            chunks.append(chunk)
            if len(chunks) == 1:
                await asyncio.sleep(1.0)  # the caller is busy for twice the timeout
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT


async def _parts(gate: asyncio.Event):
    yield b"first"
    await gate.wait()
    yield b"second"


async def test_a_read_waiting_past_the_bound_raises_timeout_error():
    parts = bounded(_parts(asyncio.Event()), 0.05)
    assert await anext(parts) == b"first"
    with pytest.raises(TimeoutError):
        await anext(parts)


async def test_a_cancelled_read_stays_cancelled():
    gate = asyncio.Event()

    async def read_all() -> list[bytes]:
        return [part async for part in bounded(_parts(gate), 30.0)]

    task = asyncio.create_task(read_all())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
