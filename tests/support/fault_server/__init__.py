"""A real, scriptable OpenAI-compatible HTTP server for tests: answers well, or fails on cue.

It speaks raw HTTP/1.1 over asyncio streams on 127.0.0.1 (keep-alive, chunked
SSE), in a background thread with its own event loop, so any client can call
it: our backends, the official ``openai`` client (sync or async), a gateway
under test. Raw sockets are what let it drop or reset a connection, hang, or
cut a body short, which a web framework would not allow.

Usage::

    with fault_server() as server:                  # yields a FaultServer
        server.script(Status(503, retry_after=1), Ok())
        ...call f"{server.base_url}/chat/completions"...   # base_url ends in /v1
        assert len(server.chat_requests) == 2
        assert server.requests[0].headers["authorization"] == "Bearer sk-test"

Routes: ``POST .../chat/completions`` and ``GET .../models``; anything else is
a 404 with an OpenAI error body. Each route has its own queue of faults
(``script(..., route="models")``); a request takes the next fault of its route,
and :class:`Ok` when the queue is empty. ``Ok`` answers JSON, or SSE when the
request body says ``"stream": true`` (with a usage chunk when
``stream_options.include_usage``). Every answer carries ``x-request-id: req-N``
(``server.request_id_format`` changes it, e.g. to echo the request's
``Authorization`` header as a careless upstream does).

Faults: :class:`Ok`, :class:`Status` (any status, OpenAI error body,
``Retry-After``), :class:`Hang`, :class:`Drop` (close, or reset, without
answering), :class:`ResetMidBody`, :class:`Malformed` (bad JSON),
:class:`WrongContentType` (text/html), :class:`Truncated` (SSE without
``[DONE]``), :class:`Drip` (slow SSE), :class:`StreamError` (an error event
mid-stream), :class:`Raw` (any bytes), :class:`Stall` (no answer until the
client leaves, which it records), :class:`BadChunkSize` (a chunk-size line that
is not hex mid-body, then silence). New ones subclass :class:`Fault`.

:func:`refused_url` gives a base URL where nothing listens (connection refused).
"""

from tests.support.fault_server.exchange import Exchange, RecordedRequest, completion, stream_events
from tests.support.fault_server.faults import (
    BadChunkSize,
    Drip,
    Drop,
    Fault,
    Hang,
    Malformed,
    Ok,
    Raw,
    ResetMidBody,
    Stall,
    Status,
    StreamError,
    Truncated,
    WrongContentType,
)
from tests.support.fault_server.server import FaultServer, fault_server, refused_url

__all__ = [
    "BadChunkSize",
    "Drip",
    "Drop",
    "Exchange",
    "Fault",
    "FaultServer",
    "Hang",
    "Malformed",
    "Ok",
    "Raw",
    "RecordedRequest",
    "ResetMidBody",
    "Stall",
    "Status",
    "StreamError",
    "Truncated",
    "WrongContentType",
    "completion",
    "fault_server",
    "refused_url",
    "stream_events",
]
