"""Stream back: forward Azure's events to the client as they arrive, and report how the stream ended.

EventStreamResponse is a plain ASGI response (no StreamingResponse, no middleware that buffers): every
upstream `data:` payload is written to the socket as soon as it is read. It watches for the client going
away and then closes the upstream request at once, so Azure stops generating tokens for nobody. However the
stream ends (completed, failed, disconnected) `on_finish` receives what is known about its usage, for
reconciliation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chatgate.errors import ChatgateError, UpstreamError
from chatgate.upstream.azure import UpstreamStream

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
STREAM_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # tell proxies (nginx, some CDNs) not to buffer
}


def sse(payload: bytes) -> bytes:
    """One server-sent event carrying a JSON payload."""
    return b"data: " + payload + b"\n\n"


def error_frame(error: ChatgateError) -> bytes:
    """An error after the stream started: the contract's error shape as an SSE event."""
    return sse(error.to_json())


@dataclass
class StreamOutcome:
    """How a stream ended and what it used: Azure's usage chunk if it came, else the text streamed so far
    (the completion tokens are then counted from it)."""

    status: Literal["completed", "failed", "disconnected"] = "completed"
    usage: dict[str, Any] | None = None
    completion_text: list[str] = field(default_factory=list)
    chunks: int = 0


def _collect_text(outcome: StreamOutcome, chunk: Mapping[str, Any]) -> None:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        if isinstance(delta.get("content"), str):
            outcome.completion_text.append(delta["content"])
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
            if isinstance(arguments, str):
                outcome.completion_text.append(arguments)


class EventStreamResponse(Response):
    """An ASGI response relaying one upstream stream to one client (a Response subclass only so that
    FastAPI passes it through; it writes to the socket itself)."""

    def __init__(
        self,
        upstream: UpstreamStream,
        *,
        include_usage: bool,
        headers: Mapping[str, str],
        on_finish: Callable[[StreamOutcome], Awaitable[None]],
    ) -> None:
        self.status_code = 200
        self.background = None
        self.upstream = upstream
        self.include_usage = include_usage
        self.stream_headers = {**headers, **STREAM_HEADERS}
        self.on_finish = on_finish
        self.outcome = StreamOutcome()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = self.outcome
        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    outcome.status = "disconnected"
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(k.encode(), v.encode()) for k, v in self.stream_headers.items()],
                    }
                )
                await self._relay(send)
                group.cancel_scope.cancel()
        except OSError:
            outcome.status = "disconnected"  # the socket went away while we were writing
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()
                try:
                    await self.on_finish(outcome)
                except Exception:
                    logger.exception("reconciling a stream failed")

    async def _relay(self, send: Send) -> None:
        outcome = self.outcome
        try:
            async for payload in self.upstream.data():
                chunk = json.loads(payload)
                if isinstance(chunk, dict) and "error" in chunk:
                    logger.warning("upstream sent an error event mid-stream")
                    raise UpstreamError("The upstream failed while streaming the response.")
                outcome.chunks += 1
                if isinstance(chunk, dict):
                    if chunk.get("usage") and not chunk.get("choices"):
                        outcome.usage = chunk["usage"]
                        if not self.include_usage:
                            continue  # chatgate asked for it; the client did not
                    _collect_text(outcome, chunk)
                await send({"type": "http.response.body", "body": sse(payload), "more_body": True})
        except ChatgateError as error:
            outcome.status = "failed"
            await send({"type": "http.response.body", "body": error_frame(error), "more_body": False})
            return
        except ValueError:
            outcome.status = "failed"
            unreadable = UpstreamError("The upstream sent an event chatgate could not read.")
            await send({"type": "http.response.body", "body": error_frame(unreadable), "more_body": False})
            return
        await send({"type": "http.response.body", "body": DONE, "more_body": False})
