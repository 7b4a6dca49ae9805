"""The server: raw HTTP/1.1 on asyncio streams, in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Iterator

from tests.support.fault_server.exchange import Exchange, RecordedRequest
from tests.support.fault_server.faults import Fault, Ok


class FaultServer:
    """The server. Build it with :func:`fault_server`; thread-safe to script and inspect."""

    def __init__(self, model_id: str = "fault-model"):
        self.model_id = model_id
        """The id ``GET /models`` lists."""
        self.port = 0
        self.request_id_format = "req-{n}"
        """The ``x-request-id`` of every answer: ``{n}`` is the request's number (from 1),
        ``{authorization}`` the request's ``Authorization`` header."""
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {"chat": deque(), "models": deque()}
        self._requests: list[RecordedRequest] = []
        self._gone: list[RecordedRequest] = []
        self.client_gone = threading.Event()
        """Set when a client closed a connection while a stream was being sent."""
        self.connections = 0
        """TCP connections accepted so far (pooling shows as few connections for many requests)."""
        self.max_open = 0
        """Most connections open at the same time."""
        self._open = 0
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *faults: Fault, route: str = "chat") -> FaultServer:
        """Queue ``faults`` for the next requests of ``route`` (``chat`` or ``models``)."""
        with self._lock:
            self._queues[route].extend(faults)
        return self

    def unscript(self) -> None:
        """Drop the faults scripted for every route that no request has taken yet."""
        with self._lock:
            for queue in self._queues.values():
                queue.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The ``chat/completions`` requests received so far."""
        return [r for r in self.requests if r.route == "chat"]

    @property
    def streams_abandoned(self) -> list[RecordedRequest]:
        """Requests whose client went away before the stream ended."""
        with self._lock:
            return list(self._gone)

    def record_client_gone(self, request: RecordedRequest) -> None:
        with self._lock:
            if not any(r is request for r in self._gone):
                self._gone.append(request)
        self.client_gone.set()

    def _next_fault(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            self._requests.append(request)
            if request.route is None:
                return None
            queue = self._queues[request.route]
            return queue.popleft() if queue else Ok()

    # ---------------------------------------------------------------- serving

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        with self._lock:
            self.connections += 1
            self._open += 1
            self.max_open = max(self.max_open, self._open)
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            pass  # server shutdown; swallowed so asyncio's start_server callback does not log it
        finally:
            self._tasks.discard(asyncio.current_task())
            with self._lock:
                self._open -= 1
            writer.close()

    async def _one_exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request = await _read_request(reader)
        if request is None:
            return False
        fault = self._next_fault(request)
        request_id = self.request_id_format.format(
            n=len(self.requests), authorization=request.headers.get("authorization", "")
        )
        ex = Exchange(request, reader, writer, self, request_id)
        if fault is None:
            body = {"error": {"message": f"no route {request.path}", "type": "not_found_error"}}
            await ex.send(404, json.dumps(body).encode(), "application/json")
            return True
        return await fault.respond(ex)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def start(self) -> None:
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="fault-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fault server did not start")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
    """One HTTP/1.1 request (``content-length`` bodies only), or ``None`` at a clean EOF."""
    line = await reader.readline()
    if not line.strip():
        return None
    method, path, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RecordedRequest(method, path, headers, body)


@contextlib.contextmanager
def fault_server(model_id: str = "fault-model") -> Iterator[FaultServer]:
    """A running :class:`FaultServer` on a free port of 127.0.0.1, stopped on exit."""
    server = FaultServer(model_id)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def refused_url() -> Iterator[str]:
    """A base URL whose port is bound but not listening: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
