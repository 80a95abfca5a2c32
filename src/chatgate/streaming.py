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

from chatgate import observability
from chatgate.errors import ChatgateError, InternalError, UpstreamError
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
        self._wrapped_up = False
        self._delivered = False  # the client has the last frame; a disconnect now changes nothing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = self.outcome
        request_id = str((scope.get("state") or {}).get("request_id", "-"))
        relayed = False
        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not relayed and not self._delivered:
                        outcome.status = "disconnected"
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                await self._relay(send, request_id)
                relayed = True
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._wrap_up()

    async def _wrap_up(self) -> None:
        """Cancel the upstream request (a no-op once it completed) and report the outcome, whatever
        happened before; nothing raised here may reach the server once the response has started.
        Runs once: before the body's end when the stream ran to its end, else when it stopped."""
        if self._wrapped_up:
            return
        self._wrapped_up = True
        try:
            await self.upstream.aclose()
        except Exception:
            logger.exception("closing the upstream stream failed")
        try:
            await self.on_finish(self.outcome)
        except Exception:
            logger.exception("reconciling a stream failed")
        if self.background is not None:  # FastAPI attaches the route's BackgroundTasks here
            try:
                await self.background()
            except Exception:
                logger.exception("a background task of a stream failed")

    async def _relay(self, send: Send, request_id: str) -> None:
        """Send the status line, every upstream event as it arrives, then `[DONE]` or one error frame.
        Never raises (except cancellation): after the status line an error can only be an SSE frame."""
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(k.encode(), v.encode()) for k, v in self.stream_headers.items()],
                }
            )
            last = await self._forward(send, request_id)
            await send({"type": "http.response.body", "body": last, "more_body": True})
            self._delivered = True
            # The client has every event; settle (and let the metrics line be written, middleware.py)
            # before the body ends: Lambda may freeze the sandbox as soon as it does.
            with anyio.CancelScope(shield=True):
                await self._wrap_up()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            self.outcome.status = "disconnected"  # the socket went away while we were writing

    async def _forward(self, send: Send, request_id: str) -> bytes:
        """Forward the upstream events; return the stream's last frame (`[DONE]` or an error frame)."""
        outcome = self.outcome
        observed = observability.current()
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
                    if outcome.completion_text:
                        observed.first_token()  # observability: time to first token
                await send({"type": "http.response.body", "body": sse(payload), "more_body": True})
        except OSError:
            raise  # the client's socket, not the upstream (whose failures arrive as ChatgateErrors)
        except ChatgateError as error:
            return self._failed(error)
        except ValueError:
            return self._failed(UpstreamError("The upstream sent an event chatgate could not read."))
        except Exception:
            logger.exception("relaying a stream failed request_id=%s", request_id)
            return self._failed(InternalError(request_id))
        return DONE

    def _failed(self, error: ChatgateError) -> bytes:
        """The stream's end after a failure: its error frame (and the error class, for the metrics)."""
        self.outcome.status = "failed"
        upstream = not isinstance(error, InternalError)
        observability.current().failed(error.status_code, error.code, upstream=upstream)
        return error_frame(error)
