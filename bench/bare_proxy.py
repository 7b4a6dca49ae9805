"""The floor for a Python proxy: a bare Starlette pass-through, ~50 lines.

Forwards every ``POST`` to the same path on ``--upstream``, byte for byte (streaming
bodies chunk by chunk) with one pooled aiohttp session. No validation, no routing:
whatever bitrate's gateway adds on top of this is the price of routing.

    python bench/bare_proxy.py --upstream http://127.0.0.1:18080 --port 18081
"""

from __future__ import annotations

import argparse
import contextlib

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def build_app(upstream: str) -> Starlette:
    state: dict[str, aiohttp.ClientSession] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        yield
        await state["session"].close()

    async def chat(request: Request) -> Response:
        body = await request.body()
        headers = {"content-type": "application/json"}
        url = f"{upstream}{request.url.path}"
        resp = await state["session"].post(url, data=body, headers=headers)
        ctype = resp.headers.get("content-type", "application/json")
        if ctype.startswith("text/event-stream"):

            async def relay():
                try:
                    async for chunk in resp.content.iter_any():
                        yield chunk
                finally:
                    resp.release()

            return StreamingResponse(relay(), status_code=resp.status, media_type=ctype)
        data = await resp.read()
        resp.release()
        return Response(data, status_code=resp.status, media_type=ctype)

    return Starlette(routes=[Route("/{path:path}", chat, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="auto",
        http="auto",
    )


if __name__ == "__main__":
    main()
