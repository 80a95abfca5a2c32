"""The Responses API as an adapter to the pipeline: `POST /v1/responses` (chatgate.gateway.pipeline does the
rest).

- body: responses_request.py checks the fields the gateway relies on by type and forwards the rest;
- prompt: instructions, input items and tool definitions with the model's tokenizer;
- upstream: Azure's Responses API on the v1 surface of the region's resource (deployment in `model`);
- usage: `usage.input_tokens` / `usage.output_tokens` of the answer, or of the stream's last event
  (`response.completed`, `response.incomplete` or `response.failed`);
- stream framing: Azure's typed events relayed as they came (`event: <type>` + `data: <json>`), no
  `[DONE]`; an error after the stream started is the spec's `error` event;
- ownership: a `previous_response_id` the workspace does not own is a 404 before anything is reserved or
  sent to Azure, and one it owns goes to the pool's resource that stores it, only (`pin`); a created
  response (`store` not false) is recorded for the workspace, with its resource, before its id reaches the
  client (ownership.py).

One adapter per request: it is bound to the caller's workspace and region for the ownership checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from chatgate.errors import ChatgateError, NotFound
from chatgate.gateway.apis.base import Answer
from chatgate.gateway.apis.chat_completions import upstream_error_event
from chatgate.gateway.body import parse_body
from chatgate.gateway.ownership import ResponseOwnership, previous_response_not_found
from chatgate.gateway.responses_request import (
    ResponsesRequest,
    count_input_tokens,
    validate_responses_request,
)
from chatgate.limits import tokens
from chatgate.limits.tokens import TokenUsage, usage_count

if TYPE_CHECKING:
    from httpx_sse import ServerSentEvent

    from chatgate.upstream.azure import AzureOpenAI, UpstreamStream
    from chatgate.upstream.config import UpstreamRoute, UpstreamTarget

logger = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


def usage_of(usage: Any) -> TokenUsage | None:
    """A Responses `usage` object ({input_tokens, output_tokens, total_tokens}) as a TokenUsage."""
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = usage_count(usage.get("input_tokens")), usage_count(usage.get("output_tokens"))
    if prompt is None or completion is None:
        return None
    return TokenUsage(prompt, completion, "azure")


def event_frame(event_type: str, payload: bytes) -> bytes:
    """One typed server-sent event."""
    return b"event: " + event_type.encode() + b"\ndata: " + payload + b"\n\n"


class ResponsesRelay:
    """Relays a Responses stream: every event as it came; usage from its terminal event."""

    def __init__(self) -> None:
        self.usage: TokenUsage | None = None
        self.relayed_text: list[str] = []
        self.finished = False
        self._sequence = -1

    def relay(self, event: ServerSentEvent) -> bytes | None:
        if not event.data:
            return None
        payload = json.loads(event.data)
        if not isinstance(payload, dict):
            return event_frame(event.event or "message", event.data.encode())
        kind = payload.get("type") if isinstance(payload.get("type"), str) else event.event
        sequence = payload.get("sequence_number")
        if isinstance(sequence, int) and not isinstance(sequence, bool):
            self._sequence = max(self._sequence, sequence)
        if kind == "error":
            raise upstream_error_event(payload.get("error") if "error" in payload else payload)
        if kind in _TEXT_DELTAS and isinstance(payload.get("delta"), str):
            self.relayed_text.append(payload["delta"])
        elif kind in TERMINAL_EVENTS:
            response = payload.get("response")
            if isinstance(response, Mapping):
                self.usage = usage_of(response.get("usage")) or self.usage
            self.finished = True
        return event_frame(kind or "message", event.data.encode())

    def end_frame(self) -> bytes:
        return b""  # the terminal event was the end; this API has no [DONE]

    def error_frame(self, error: ChatgateError) -> bytes:
        """The spec's `error` event (flat fields, as the OpenAI spec types it) with the `error` object too,
        which the OpenAI SDKs raise as an APIError and the Vercel AI SDK reports as an error part."""
        body = error.to_dict()["error"]
        self._sequence += 1
        data = {
            "type": "error",
            "sequence_number": self._sequence,
            "code": body.get("code") or body.get("type"),
            "message": body["message"],
            "param": body.get("param"),
            "error": body,
        }
        return event_frame("error", json.dumps(data, separators=(",", ":")).encode())


class OwnedStream:
    """An upstream Responses stream that records the response's owner when `response.created` arrives,
    before that event (and so the id) reaches the client."""

    def __init__(self, upstream: UpstreamStream, record: Any) -> None:
        self._upstream = upstream
        self._record = record
        self.upstream_request_id = getattr(upstream, "upstream_request_id", None)

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        recorded = False
        async for event in self._upstream.events():
            if not recorded and event.event == "response.created":
                recorded = True
                await self._record(_response_id(event.data))
            yield event

    async def aclose(self) -> None:
        await self._upstream.aclose()


def _response_id(data: str | bytes) -> str | None:
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    response = payload.get("response", payload) if isinstance(payload, dict) else None
    found = response.get("id") if isinstance(response, dict) else None
    return found if isinstance(found, str) else None


class ResponsesApi:
    """The adapter the pipeline is handed for one `POST /v1/responses` of one workspace in one region."""

    name = "responses"
    reserves_completion = True

    def __init__(self, ownership: ResponseOwnership, workspace_id: str, region: str) -> None:
        self._ownership = ownership
        self._workspace_id = workspace_id
        self._region = region

    def parse(self, raw: bytes) -> ResponsesRequest:
        return replace(validate_responses_request(parse_body(raw)), body_size=len(raw))

    async def prompt_tokens(self, request: ResponsesRequest, *, stop_above: int | None = None) -> int:
        count = partial(count_input_tokens, stop_above=stop_above)
        return await tokens.count_async(request.model, count, request.forward, request.body_size)

    async def pin(self, route: UpstreamRoute, request: object) -> UpstreamRoute:
        """A `previous_response_id` the workspace owns (else 404, nothing sent) continues on the resource
        that stores it, and only there (a resource no longer in the pool: 404 too)."""
        previous = getattr(request, "previous_response_id", None)
        if not isinstance(previous, str):
            return route
        try:
            owner = await self._ownership.check(self._workspace_id, self._region, previous)
        except NotFound:
            raise previous_response_not_found(previous) from None
        resource = route.pool.named(owner.resource)
        if resource is None or resource not in route.resources:
            logger.warning("a stored response's resource is no longer in its pool (or lacks the model)")
            raise previous_response_not_found(previous)
        return replace(route, resources=(resource,))

    async def complete(self, azure: AzureOpenAI, target: UpstreamTarget, request: ResponsesRequest) -> Answer:
        created = await azure.create_response(target, request.forward)
        if request.store:
            await self._record(_response_id(created.content), target.resource.name)
        return Answer(created.content, usage_of(created.usage), created.upstream_request_id)

    async def open_stream(
        self, azure: AzureOpenAI, target: UpstreamTarget, request: ResponsesRequest
    ) -> UpstreamStream:
        upstream = await azure.open_response_stream(target, request.forward)
        if not request.store:
            return upstream
        return OwnedStream(upstream, partial(self._record, resource=target.resource.name))  # type: ignore[return-value]

    def stream_relay(self, request: ResponsesRequest) -> ResponsesRelay:
        return ResponsesRelay()

    async def _record(self, response_id: str | None, resource: str) -> None:
        """Record the owner and the resource; a failure is logged, not raised: the answer is the client's
        all the same (only later calls on that id will be refused)."""
        if response_id is None:
            return
        try:
            await self._ownership.record(self._workspace_id, self._region, response_id, resource)
        except Exception:
            logger.exception("recording the owner of a stored response failed")
