"""A built-in Azure OpenAI emulator: the upstream of `chatgate dev` and of the test suite.

It speaks the Azure OpenAI data-plane wire format (API version 2024-10-21): the same paths, auth header,
error bodies, content-filter annotations, rate-limit headers and stream event order. Markers in the last
user message provoke upstream behaviours:

    [[content_filter]]         400 content_filter, as Azure rejects a prompt
    [[rate_limit]]             429 with retry-after: 7 / retry-after-ms: 7000
    [[server_error]]           500 InternalServerError
    [[slow:N]]                 wait N ms before answering (streams: before the status line)
    [[stream_error_after:N]]   after N content chunks send an SSE error frame and end the stream
    [[stream_reset_after:N]]   after N content chunks drop the connection mid-body (no [DONE])
    [[words:N]]                reply with exactly N words

Start it with `start_emulator()` (tests, `chatgate dev`) or `python -m chatgate.dev.azure_emulator`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.dev import azure_emulator_wire as wire
from chatgate.dev.azure_emulator_reply import (
    count_prompt_tokens,
    encoding_for,
    plan_reply,
    preload_encodings,
)
from chatgate.dev.azure_emulator_state import (
    KNOWN_MODEL_VERSIONS,
    EmulatorState,
    RecordedRequest,
    StreamEnd,
)
from chatgate.dev.azure_emulator_stream import EmulatedConnectionReset, EventStreamResponse, azure_stream

__all__ = [
    "KNOWN_MODEL_VERSIONS",
    "EmulatorState",
    "RecordedRequest",
    "RunningEmulator",
    "StreamEnd",
    "count_prompt_tokens",
    "create_emulator_app",
    "start_emulator",
]

CHAT_COMPLETIONS_PATH = "/openai/deployments/{deployment}/chat/completions"
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_DEFAULT_COMPLETION_ALLOWANCE = 4096
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _error_response(error: wire.AzureError) -> JSONResponse:
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


async def _record(request: Request) -> Any:
    """Record the request in the emulator's state; returns the parsed JSON body (None if absent/bad)."""
    state: EmulatorState = request.app.state.emulator
    raw = await request.body()
    body: Any = None
    if raw:
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
    headers = {key.lower(): value for key, value in request.headers.items()}
    state.record(RecordedRequest(request.method, request.url.path, dict(request.query_params), headers, body))
    return body


def _validate(body: Any) -> wire.AzureError | None:
    """The few checks Azure makes before the model sees the request."""
    if not isinstance(body, dict):
        return wire.invalid_json()
    messages = body.get("messages")
    if messages is None:
        return wire.invalid_request("'messages' is a required property", None)
    if not isinstance(messages, list) or not messages:
        return wire.invalid_request(
            f"Invalid 'messages': expected a non-empty array, got {json.dumps(messages)}.", "messages"
        )
    return None


async def chat_completions(request: Request) -> Response:
    """POST /openai/deployments/{deployment}/chat/completions?api-version=..."""
    state: EmulatorState = request.app.state.emulator
    body = await _record(request)
    api_version = request.query_params.get("api-version", "")
    if request.method != "POST" or not _API_VERSION.match(api_version):
        return _error_response(wire.resource_not_found())
    if request.headers.get("api-key") != state.api_key:
        return _error_response(wire.access_denied())
    model = state.model_for(request.path_params["deployment"])
    if model is None:
        return _error_response(wire.deployment_not_found())
    invalid = _validate(body)
    if invalid is not None:
        return _error_response(invalid)
    plan = plan_reply(body, model=model, name=state.name, created=int(time.time()))
    triggers = plan.triggers
    error = None
    if triggers.content_filter:
        error = wire.content_filtered()
    elif triggers.rate_limit:
        error = wire.rate_limited(api_version)
    elif triggers.server_error:
        error = wire.server_error()
    if error is None:
        allowance = body.get("max_completion_tokens") or body.get("max_tokens")
        state.consume(
            plan.prompt_tokens + (allowance if isinstance(allowance, int) else plan.completion_tokens)
        )
    if plan.stream and error is None:
        frames = azure_stream(
            plan,
            encoding_for(model),
            first_chunk_delay_s=state.first_chunk_delay_s,
            chunk_delay_s=state.chunk_delay_s,
        )
        return EventStreamResponse(
            frames, start_delay_s=triggers.slow_ms / 1000, on_end=state.record_stream_end
        )
    if triggers.slow_ms:
        await asyncio.sleep(triggers.slow_ms / 1000)
    if error is not None:
        return _error_response(error)
    return JSONResponse(wire.completion(plan, encoding_for(model)))


async def not_found(request: Request) -> Response:
    """Every other path: Azure's 404."""
    await _record(request)
    return _error_response(wire.resource_not_found())


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
            Route(CHAT_COMPLETIONS_PATH, chat_completions, methods=_ALL_METHODS),
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
