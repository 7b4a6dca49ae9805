"""The live worker: ``python -m sdk.live.worker``, the child process of
:class:`~sdk.live.isolated.IsolatedLive` (the wire is described there).

It builds the backends of the models its routes shadow with (their own connections), runs a
:class:`~sdk.live.runtime.LiveRuntime` on them (shadow calls, grading, the store, the monitors,
the log lines and the webhook), takes jobs from stdin and writes its figures to stdout every
``tick``. At EOF on stdin it writes what is pending and exits. Its log goes to stderr, which it
shares with the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from sdk.backends import Backend, make_backend
from sdk.errors import BitrateError
from sdk.live.isolated import LINE_LIMIT, encode_figures, shadowed_models
from sdk.live.runtime import LiveRuntime
from sdk.live.shadow import ShadowJob
from sdk.policy import Policy
from sdk.protocol import ChatCompletion, ChatRequest

__all__ = ["main", "serve"]

log = logging.getLogger("bitrate.live")


def _write(line: bytes) -> None:
    sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()


class _Worker:
    def __init__(self, runtime: LiveRuntime, tick: float):
        self.runtime, self.tick = runtime, tick
        self.taken: dict[str, int] = {}

    def take(self, message: dict[str, Any]) -> None:
        if "traffic" in message:
            for route, (requests, undetected) in message["traffic"].items():
                traffic = self.runtime.traffic.get(route)
                if traffic is not None:
                    traffic.requests, traffic.undetected = int(requests), int(undetected)
            return
        route, category, direction, at, served = message["j"]
        self.taken[route] = self.taken.get(route, 0) + 1
        shadow = self.runtime.shadows.get(route)
        if shadow is not None:
            request = ChatRequest.model_validate(message["r"])
            shadow.offer(ShadowJob(category, direction, request, served, at))

    def figures(self) -> bytes:
        runtime = self.runtime
        snapshots = runtime.snapshots()
        return encode_figures(
            taken=self.taken,
            shadows=runtime.shadow_figures(),
            snapshots=snapshots,
            graders={key: runtime.grader(*key) for key in snapshots},
            demotions={key: d for key in snapshots if (d := runtime.demotion(*key)) is not None},
            seen=runtime.demotions_seen,
        )

    async def report(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            _write(self.figures())


async def serve(tick: float = 0.2) -> int:
    """Run the worker on this process's stdin and stdout; the exit status."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    init = orjson.loads(await reader.readline())["init"]
    backends: dict[str, Backend] = {}
    try:
        policy = Policy.model_validate(init["policy"])
        source = init["source"]
        policy.bind(Path(source).resolve().parent if source else Path.cwd(), source=source)
        for name in shadowed_models(policy):
            backends[name] = await asyncio.to_thread(make_backend, name, policy.models[name])

        def call(target: str, request: ChatRequest) -> Awaitable[ChatCompletion]:
            return backends[target].complete(request)

        known = {route: frozenset(tasks) for route, tasks in init["known"].items()}
        runtime = LiveRuntime(policy, call, known=known, tick=tick)
        await runtime.start()
    except (BitrateError, ValidationError) as exc:
        _write(orjson.dumps({"error": str(exc)}) + b"\n")
        return 2
    worker = _Worker(runtime, tick)
    _write(b'{"ready":true}\n' + worker.figures())
    reporter = asyncio.create_task(worker.report())
    try:
        while line := await reader.readline():
            worker.take(orjson.loads(line))
    finally:
        reporter.cancel()
        await runtime.aclose()
        for backend in backends.values():
            await backend.close()
        _write(worker.figures())
    return 0


def main() -> None:
    """The entry point (``python -m sdk.live.worker``)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(serve()))


if __name__ == "__main__":
    main()
