"""The floor any gateway pays: one more loopback hop, uvicorn and one pooled httpx call upstream, no logic.

BENCH_UPSTREAM=<url> BENCH_UPSTREAM_KEY=<key> python -m uvicorn bare_proxy:app --app-dir bench/apps
"""

import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ["BENCH_UPSTREAM"]
HEADERS = {"api-key": os.environ["BENCH_UPSTREAM_KEY"], "content-type": "application/json"}
http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_keepalive_connections=100), trust_env=False)


async def forward(request: Request) -> Response:
    body = await request.body()
    if b'"stream":true' not in body.replace(b" ", b""):
        upstream = await http.post(UPSTREAM, content=body, headers=HEADERS)
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")
    response = await http.send(
        http.build_request("POST", UPSTREAM, content=body, headers=HEADERS), stream=True
    )

    async def relay() -> object:
        try:
            async for piece in response.aiter_raw():
                yield piece
        finally:
            await response.aclose()

    return StreamingResponse(relay(), media_type="text/event-stream")  # type: ignore[arg-type]


app = Starlette(routes=[Route("/", forward, methods=["POST"])])
