"""A built-in Azure OpenAI emulator: the upstream of `chatgate dev` and of the test suite.

It speaks the Azure OpenAI data-plane wire format on both of Azure's surfaces: the same paths, auth
headers, error bodies, content-filter annotations, rate-limit headers and stream event order.

    dated  POST /openai/deployments/{d}/chat/completions?api-version=YYYY-MM-DD[-preview]   (api-key)
    v1     POST /openai/v1/chat/completions, POST /openai/v1/responses, GET/DELETE
           /openai/v1/responses/{id}, GET /openai/v1/responses/{id}/input_items,
           POST /openai/v1/embeddings (deterministic vectors: azure_emulator_embeddings.py)
           (no api-version; the deployment in `model`; api-key or Authorization: Bearer)

Like Azure, reasoning deployments (o1*, o3*, o4*, gpt-5*) are refused on dated API versions older than
2024-12-01-preview. Markers in the last user message provoke upstream behaviours (both APIs):

    [[content_filter]]         400 content_filter, as Azure rejects a prompt
    [[rate_limit]]             429 with retry-after: 7 / retry-after-ms: 7000
    [[server_error]]           500 InternalServerError
    [[rate_limit:NAME]]        the same, only from the emulator called NAME (or ending in -NAME, as
    [[server_error:NAME]]      `chatgate dev`'s azure-eu-sweden): one resource of a pool fails, others answer
    [[slow:N]]                 wait N ms before answering (streams: before the status line)
    [[stream_error_after:N]]   after N content chunks send an SSE error frame (Responses: response.failed)
    [[stream_reset_after:N]]   after N content chunks drop the connection mid-body (no [DONE])
    [[words:N]]                reply with exactly N words

Start it with `start_emulator()` (tests, `chatgate dev`) or `python -m chatgate.dev.azure_emulator`.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.dev import azure_emulator_wire as wire
from chatgate.dev.azure_emulator_chat import (
    DATED_CHAT_COMPLETIONS_PATH,
    V1_CHAT_COMPLETIONS_PATH,
    dated_chat_completions,
    v1_chat_completions,
)
from chatgate.dev.azure_emulator_embeddings import EMBEDDINGS_PATH, create_embeddings
from chatgate.dev.azure_emulator_http import error_response, record
from chatgate.dev.azure_emulator_reply import count_prompt_tokens, preload_encodings
from chatgate.dev.azure_emulator_responses import (
    INPUT_ITEMS_PATH,
    RESPONSE_PATH,
    RESPONSES_PATH,
    create_response,
    list_input_items,
    retrieve_response,
)
from chatgate.dev.azure_emulator_state import (
    KNOWN_MODEL_VERSIONS,
    EmulatorState,
    RecordedRequest,
    StoredResponse,
    StreamEnd,
)
from chatgate.dev.azure_emulator_stream import EmulatedConnectionReset

__all__ = [
    "KNOWN_MODEL_VERSIONS",
    "EmulatorState",
    "RecordedRequest",
    "RunningEmulator",
    "StoredResponse",
    "StreamEnd",
    "count_prompt_tokens",
    "create_emulator_app",
    "start_emulator",
]

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def not_found(request: Request) -> Response:
    """Every other path: Azure's 404."""
    await record(request)
    return error_response(wire.resource_not_found())


class AzureHeadersMiddleware:
    """Adds the headers every Azure OpenAI response carries (request ids, region, remaining limits)."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap `send` so the response start gets the Azure headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                remaining_requests, remaining_tokens = self.state.remaining()
                request_id = str(uuid.uuid4())
                headers.setdefault("apim-request-id", request_id)
                headers.setdefault("x-request-id", request_id)
                headers.setdefault("x-ms-region", self.state.region)
                headers.setdefault("x-ratelimit-remaining-requests", str(remaining_requests))
                headers.setdefault("x-ratelimit-remaining-tokens", str(remaining_tokens))
                headers.setdefault("x-content-type-options", "nosniff")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _DropEmulatedResets(logging.Filter):
    """Keep uvicorn from logging a traceback for every deliberate [[stream_reset_after:N]]."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, EmulatedConnectionReset)


_RESET_FILTER = _DropEmulatedResets()


def create_emulator_app(state: EmulatorState | None = None) -> Starlette:
    """The emulator as an ASGI app; its state is `app.state.emulator`."""
    state = state if state is not None else EmulatorState()
    uvicorn_log = logging.getLogger("uvicorn.error")
    if _RESET_FILTER not in uvicorn_log.filters:
        uvicorn_log.addFilter(_RESET_FILTER)
    app = Starlette(
        routes=[
            Route(DATED_CHAT_COMPLETIONS_PATH, dated_chat_completions, methods=_ALL_METHODS),
            Route(V1_CHAT_COMPLETIONS_PATH, v1_chat_completions, methods=_ALL_METHODS),
            Route(RESPONSES_PATH, create_response, methods=_ALL_METHODS),
            Route(RESPONSE_PATH, retrieve_response, methods=_ALL_METHODS),
            Route(INPUT_ITEMS_PATH, list_input_items, methods=_ALL_METHODS),
            Route(EMBEDDINGS_PATH, create_embeddings, methods=_ALL_METHODS),
            Route("/{path:path}", not_found, methods=_ALL_METHODS),
        ]
    )
    app.state.emulator = state
    app.add_middleware(AzureHeadersMiddleware, state=state)
    return app


class RunningEmulator:
    """An emulator served by uvicorn in a daemon thread."""

    def __init__(
        self, state: EmulatorState, server: uvicorn.Server, thread: threading.Thread, url: str
    ) -> None:
        self.state = state
        self.url = url
        self._server = server
        self._thread = thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the server thread to finish."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_emulator(
    state: EmulatorState | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningEmulator:
    """Serve an emulator on `host:port` (0: a free port) and return once it accepts connections."""
    state = state if state is not None else EmulatorState()
    threading.Thread(target=preload_encodings, name="emulator-tokenizers", daemon=True).start()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP; without it
    # small writes wait for delayed ACKs (~40 ms per response on a kept-alive connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_emulator_app(state),
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"azure-emulator-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the Azure OpenAI emulator did not start on {host}:{bound_port}")
        time.sleep(0.005)
    url_host = f"[{host}]" if family == socket.AF_INET6 else host
    return RunningEmulator(state, server, thread, f"http://{url_host}:{bound_port}")


def main(argv: list[str] | None = None) -> None:
    """`python -m chatgate.dev.azure_emulator`: serve an emulator until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Azure OpenAI emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--api-key", default="emulator-key")
    parser.add_argument("--name", default="emulator")
    args = parser.parse_args(argv)
    emulator = start_emulator(EmulatorState(api_key=args.api_key, name=args.name), args.host, args.port)
    print(f"Azure OpenAI emulator on {emulator.url} (api-key: {args.api_key})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
