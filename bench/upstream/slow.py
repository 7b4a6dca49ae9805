"""A slow JSON upstream: every chat completion answered after ``--delay-ms`` (a frontier under
load), the same fixed completion as nginx's ``/json`` path.

    python bench/upstream/slow.py --port 18083 --delay-ms 500
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

COMPLETION = (
    b'{"id":"chatcmpl-slow","object":"chat.completion","created":1700000000,"model":"fake",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over '
    b'the lazy dog."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,'
    b'"total_tokens":22}}'
)


def build_app(delay: float) -> web.Application:
    async def chat(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(delay)
        return web.Response(body=COMPLETION, content_type="application/json")

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=500.0)
    args = parser.parse_args()
    web.run_app(build_app(args.delay_ms / 1000), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
