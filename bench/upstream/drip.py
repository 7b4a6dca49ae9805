"""A streaming upstream with a real model's rhythm, and a time-to-first-token probe.

nginx answers the whole fixed SSE body at once, so through it a proxy that holds a
chunk back costs nothing visible. This upstream sends the same six chunks ``--gap-ms``
apart, as a model decoding tokens would: a proxy that holds one chunk back adds a
whole gap to the time to first token.

    python bench/upstream/drip.py --port 18082 --gap-ms 20

``ttft(url, body, n)`` (imported by ``bench/gateway_overhead.py``) times ``n`` sequential
streamed calls from sending the request to the first chunk with non-empty content.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp
from aiohttp import web

_HEAD = '{"id":"chatcmpl-drip","object":"chat.completion.chunk","created":1700000000,"model":"fake",'
DELTAS = [
    '"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}',
    '"choices":[{"index":0,"delta":{"content":"The quick"},"finish_reason":null}]}',
    '"choices":[{"index":0,"delta":{"content":" brown fox"},"finish_reason":null}]}',
    '"choices":[{"index":0,"delta":{"content":" jumps."},"finish_reason":null}]}',
    '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
]
EVENTS = [f"data: {_HEAD}{d}\n\n".encode() for d in DELTAS] + [b"data: [DONE]\n\n"]


def build_app(gap: float) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i, event in enumerate(EVENTS):
            if i > 1:  # role chunk and first token together, then one gap per token
                await asyncio.sleep(gap)
            await response.write(event)
        await response.write_eof()
        return response

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def _has_token(line: bytes) -> bool:
    if not line.startswith(b"data: {"):
        return False
    chunk = json.loads(line[6:])
    return any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or [])


async def _ttft(url: str, body: str, n: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            started = time.perf_counter()
            first = None
            async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
                resp.raise_for_status()
                async for line in resp.content:
                    if first is None and _has_token(line):
                        first = time.perf_counter() - started
            if first is None:
                raise RuntimeError(f"no content token from {url}")
            times.append(first * 1e3)
    return times


def ttft(url: str, body: str, n: int) -> dict:
    """Median and p90 time to the first content token, in ms, over ``n`` sequential streams."""
    times = sorted(asyncio.run(_ttft(url, body, n)))
    return {"p50": statistics.median(times), "p90": times[int(0.9 * (len(times) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause between tokens")
    args = parser.parse_args()
    web.run_app(build_app(args.gap_ms / 1e3), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
