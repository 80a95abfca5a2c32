"""Streaming like Azure OpenAI: the event sequence, pacing, injected failures and disconnect detection."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chatgate.dev import azure_emulator_wire as wire
from chatgate.dev.azure_emulator_reply import Encoding, ReplyPlan, logprobs_content
from chatgate.dev.azure_emulator_state import StreamEnd

_PIECE = re.compile(r"\s*\S+|\s+")


class EmulatedConnectionReset(Exception):
    """Raised mid-stream so the server drops the connection without finishing the response."""


def _content_deltas(plan: ReplyPlan) -> tuple[dict[str, Any], list[str | dict[str, Any]]]:
    """The role delta and the content deltas (text pieces, one per word, or function-call parts)."""
    if plan.tool_calls is not None:
        call = plan.tool_calls[0]
        opening: dict[str, Any] = {"function": {"arguments": "", "name": call["function"]["name"]}}
        opening |= {"id": call["id"], "index": 0, "type": "function"}
        role: dict[str, Any] = {
            "content": None,
            "refusal": None,
            "role": "assistant",
            "tool_calls": [opening],
        }
        arguments = {"function": {"arguments": call["function"]["arguments"]}, "index": 0}
        return role, [{"tool_calls": [arguments]}]
    if plan.function_call is not None:
        function = {"arguments": "", "name": plan.function_call["name"]}
        role = {"content": None, "function_call": function, "refusal": None, "role": "assistant"}
        return role, [{"function_call": {"arguments": plan.function_call["arguments"]}}]
    pieces: list[str | dict[str, Any]] = list(_PIECE.findall(plan.content or ""))
    return {"content": "", "refusal": None, "role": "assistant"}, pieces


async def azure_stream(
    plan: ReplyPlan, encoding: Encoding, *, first_chunk_delay_s: float, chunk_delay_s: float
) -> AsyncIterator[bytes | StreamEnd]:
    """The SSE frames of a streamed answer in Azure's order (StreamEnd.ERRORED after an error frame)."""
    if first_chunk_delay_s > 0:
        await asyncio.sleep(first_chunk_delay_s)
    yield wire.sse(wire.prompt_filter_event(plan))
    role, deltas = _content_deltas(plan)
    await _pause(chunk_delay_s)
    yield wire.sse(wire.chunk(plan, role))
    token_offset = 0
    for sent in range(len(deltas) + 1):
        if plan.triggers.stream_error_after == sent or plan.triggers.stream_reset_after == sent:
            await _pause(chunk_delay_s)
            if plan.triggers.stream_reset_after == sent:
                raise EmulatedConnectionReset
            yield wire.sse(wire.STREAM_ERROR)
            yield StreamEnd.ERRORED
            return
        if sent == len(deltas):
            break
        piece = deltas[sent]
        logprobs = None
        if isinstance(piece, str):
            delta: dict[str, Any] = {"content": piece}
            if plan.logprobs:
                tokens = encoding.encode_ordinary(piece)
                content = logprobs_content(encoding, tokens, plan.top_logprobs, offset=token_offset)
                token_offset += len(tokens)
                logprobs = {"content": content, "refusal": None}
        else:
            delta = piece
        await _pause(chunk_delay_s)
        yield wire.sse(
            wire.chunk(plan, delta, filter_results=wire.choice_filter_results(), logprobs=logprobs)
        )
    await _pause(chunk_delay_s)
    yield wire.sse(wire.chunk(plan, {}, finish_reason=plan.finish_reason))
    if plan.include_usage:
        await _pause(chunk_delay_s)
        yield wire.sse(wire.usage_chunk(plan))
    yield wire.sse("[DONE]")


async def _pause(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


class EventStreamResponse(Response):
    """ASGI response sending SSE frames as they are produced, watching for the client to go away.

    `start_delay_s` delays even the status line (a slow upstream); `on_end` learns how the stream ended.
    An EmulatedConnectionReset from the frames is re-raised after bookkeeping so that uvicorn drops the
    connection mid-body: the client sees an incomplete chunked response.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncIterator[bytes | StreamEnd],
        *,
        start_delay_s: float,
        on_end: Callable[[StreamEnd], None],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.frames = frames
        self.start_delay_s = start_delay_s
        self.on_end = on_end
        self._reported = False
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the frames; cancel them as soon as the client disconnects."""
        end = StreamEnd.CANCELLED
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
                end = await self._send_frames(send)
                group.cancel_scope.cancel()
        finally:
            await _close(self.frames)
            self._report(end)
        if end is StreamEnd.RESET:
            raise EmulatedConnectionReset("emulated connection reset")

    def _report(self, end: StreamEnd) -> None:
        """Tell `on_end` once; before the body's last byte, so a client that saw the end can rely on it."""
        if not self._reported:
            self._reported = True
            self.on_end(end)

    async def _send_frames(self, send: Send) -> StreamEnd:
        if self.start_delay_s > 0:
            await asyncio.sleep(self.start_delay_s)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        end = StreamEnd.COMPLETED
        try:
            async for frame in self.frames:
                if isinstance(frame, StreamEnd):
                    end = frame
                    continue
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        except EmulatedConnectionReset:
            return StreamEnd.RESET
        self._report(end)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return end


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _close(frames: AsyncIterator[bytes | StreamEnd]) -> None:
    aclose = getattr(frames, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()
