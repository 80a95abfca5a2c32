"""Stream back: relay an upstream event stream to the client as it arrives, then settle, then end.

EventStreamResponse is a plain ASGI response (no StreamingResponse, no middleware that buffers): every
upstream event is written to the socket as soon as it is read, framed by the API's StreamRelay. It

- sends an SSE comment (`: ping`) whenever the upstream has been silent for `heartbeat_seconds`, so no
  proxy or API Gateway idle timeout cuts a stream while a reasoning model thinks;
- ends a stream that would outlive the function (`max_seconds`) with the API's error frame;
- watches for the client going away and then closes the upstream request at once, so Azure stops
  generating tokens for nobody;
- settles before the body ends: the client has every event (`[DONE]` included) with `more_body=True`,
  then the settlement runs (shielded), and only then the final empty body message ends the HTTP body — so
  Lambda, which freezes the sandbox when the body ends, never freezes a settlement half done, and the client
  sees no added latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chatgate.errors import ChatgateError, InternalError, ServiceUnavailable, UpstreamError, UpstreamTimeout
from chatgate.gateway import shutdown
from chatgate.gateway.settlement import StreamOutcome
from chatgate.observability import observation as observability

if TYPE_CHECKING:
    from httpx_sse import ServerSentEvent

    from chatgate.gateway.apis.base import StreamRelay
    from chatgate.upstream.azure import UpstreamStream

logger = logging.getLogger(__name__)

HEARTBEAT = b": ping\n\n"
# How long a completed stream may take to end its body upstream before its connection is dropped instead.
DRAIN_SECONDS = 1.0
STREAM_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # tell proxies (nginx, some CDNs) not to buffer
}


class EventStreamResponse(Response):
    """An ASGI response relaying one upstream stream to one client (a Response subclass only so that
    FastAPI passes it through; it writes to the socket itself)."""

    def __init__(
        self,
        upstream: UpstreamStream,
        relay: StreamRelay,
        *,
        headers: Mapping[str, str],
        settle: Callable[[StreamOutcome], Awaitable[None]],
        heartbeat_seconds: float = 15.0,
        max_seconds: float = 870.0,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.upstream = upstream
        self.relay = relay
        self.stream_headers = {**headers, **STREAM_HEADERS}
        self.settle = settle
        self.heartbeat_seconds = heartbeat_seconds
        self.max_seconds = max_seconds
        self.outcome = StreamOutcome()
        self._write_lock = asyncio.Lock()  # uncontended, acquired without a trip round the event loop
        self._events: AsyncIterator[ServerSentEvent] | None = None
        self._last_write = time.monotonic()
        self._relaying = anyio.CancelScope()  # cancelled when the server's shutdown grace is nearly over

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome = self.outcome
        request_id = str((scope.get("state") or {}).get("request_id", "-"))
        started = relayed = False
        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not relayed:
                        outcome.status = "disconnected"
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                try:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [(k.encode(), v.encode()) for k, v in self.stream_headers.items()],
                        }
                    )
                    started = True
                    group.start_soon(self._heartbeat, send)
                    group.start_soon(self._end_at_shutdown)
                    last = await self._forward(send, request_id)
                    await self._write(send, last)
                    relayed = True
                except OSError:
                    outcome.status = "disconnected"  # the socket went away while we were writing
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._settle()
                if started and outcome.status != "disconnected":
                    with contextlib.suppress(OSError):
                        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _settle(self) -> None:
        """Cancel the upstream request (a no-op once it completed) and settle the request, whatever
        happened before; nothing raised here may reach the server once the response has started.

        A stream that completed is read to its end first (Azure closes its body right after the last
        event), so the upstream connection goes back to the pool instead of being closed: the next stream
        skips a TLS handshake to Azure."""
        if self.outcome.status == "completed" and self._events is not None:
            with anyio.move_on_after(DRAIN_SECONDS), contextlib.suppress(Exception):
                async for _rest in self._events:
                    pass
        try:
            await self.upstream.aclose()
        except Exception:
            logger.exception("closing the upstream stream failed")
        self.outcome.usage = self.relay.usage
        self.outcome.relayed_text = self.relay.relayed_text
        try:
            await self.settle(self.outcome)
        except Exception:
            logger.exception("settling a stream failed")

    async def _write(self, send: Send, body: bytes) -> None:
        """Send body bytes, keeping the body open (the relay and the heartbeat take turns)."""
        async with self._write_lock:
            await send({"type": "http.response.body", "body": body, "more_body": True})
            self._last_write = time.monotonic()

    async def _heartbeat(self, send: Send) -> None:
        """While nothing has been written for `heartbeat_seconds`, write an SSE comment (clients skip it;
        proxies and API Gateway see a live stream). Runs beside the relay until the stream ends."""
        interval = self.heartbeat_seconds
        try:
            while True:
                await anyio.sleep(max(0.0, self._last_write + interval - time.monotonic()))
                if time.monotonic() - self._last_write >= interval:
                    await self._write(send, HEARTBEAT)
        except OSError:
            return  # the client went away: the relay or the disconnect watcher ends the stream

    async def _end_at_shutdown(self) -> None:
        """Stop relaying when streams must end for the shutdown (chatgate.gateway.shutdown)."""
        await shutdown.streams_must_end()
        self._relaying.cancel()

    async def _forward(self, send: Send, request_id: str) -> bytes:
        """Forward the upstream events as they arrive; return the stream's last frame (the API's end
        frame, or its error frame). Never raises but cancellation and the client's socket errors."""
        outcome, relay = self.outcome, self.relay
        observed = observability.current()
        with anyio.move_on_after(self.max_seconds):
            with self._relaying:
                try:
                    self._events = self.upstream.events()
                    async for event in self._events:
                        outcome.events += 1
                        frame = relay.relay(event)
                        if frame:
                            await self._write(send, frame)
                            if relay.relayed_text:
                                observed.first_token()  # time to first token (a no-op after the first)
                        if relay.finished:
                            return relay.end_frame()
                    raise UpstreamError("The upstream closed the stream before it was complete.")
                except OSError:
                    raise  # the client's socket, not the upstream (whose failures arrive as ChatgateErrors)
                except ChatgateError as error:
                    return self._failed(error)
                except ValueError:
                    return self._failed(UpstreamError("The upstream sent an event chatgate could not read."))
                except Exception:
                    logger.exception("relaying a stream failed request_id=%s", request_id)
                    return self._failed(InternalError(request_id))
            if self._relaying.cancel_called:
                logger.warning("stream ended by the shutdown after %d events", outcome.events)
                return self._failed(
                    ServiceUnavailable(
                        "The server is shutting down and ended this stream before it was complete. "
                        "Please retry the request."
                    )
                )
        logger.warning("stream reached its deadline of %.0f s", self.max_seconds)
        deadline = UpstreamTimeout(
            f"The stream reached chatgate's maximum duration of {self.max_seconds:.0f} seconds and was "
            "ended. Ask for a shorter answer, or use a lower reasoning effort."
        )
        frame = self._failed(deadline)
        outcome.status = "timed_out"
        return frame

    def _failed(self, error: ChatgateError) -> bytes:
        """The stream's end after a failure: the API's error frame (and the error class, for metrics)."""
        self.outcome.status = "failed"
        observability.current().failed(error.status_code, error.code, upstream=error.from_upstream)
        return self.relay.error_frame(error)
