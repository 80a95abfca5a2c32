"""The Chat Completions API as an adapter to the pipeline: `POST /v1/chat/completions`.

- body: validation.py checks every parameter as OpenAI does;
- prompt: the cookbook's message formula with the model's tokenizer (tokens.count_prompt_tokens);
- upstream: Azure's chat completions; streams always ask Azure for the usage chunk;
- usage: `usage.prompt_tokens` / `usage.completion_tokens` of the answer, or of the stream's usage chunk
  (forwarded only when the client asked for it with `stream_options`);
- stream framing: `data: <json>` events, then `data: [DONE]`; an error after the stream started is one
  `data: {"error": {...}}` event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatgate.errors import ChatgateError, UpstreamError
from chatgate.gateway.apis.base import Answer
from chatgate.gateway.validation import ChatRequest, parse_body, validate_chat_request
from chatgate.limits import tokens
from chatgate.limits.tokens import TokenUsage, usage_count

if TYPE_CHECKING:
    from httpx_sse import ServerSentEvent

    from chatgate.upstream.azure import AzureOpenAI, UpstreamStream
    from chatgate.upstream.config import UpstreamTarget

DONE = b"data: [DONE]\n\n"
# Azure error codes mid-stream whose message is about the request, not about chatgate or Azure's insides.
_PASSED_ON_CODES = frozenset(
    {"content_filter", "context_length_exceeded", "rate_limit_exceeded", "invalid_prompt", "server_error"}
)


def sse(payload: bytes) -> bytes:
    """One server-sent event carrying a JSON payload."""
    return b"data: " + payload + b"\n\n"


def usage_of(usage: Any) -> TokenUsage | None:
    """Azure's chat `usage` object as a TokenUsage (None when absent or unreadable). With only a
    `total_tokens`, the whole total is recorded as completion (it is what the limiter needs)."""
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = usage_count(usage.get("prompt_tokens")), usage_count(usage.get("completion_tokens"))
    if prompt is not None and completion is not None:
        return TokenUsage(prompt, completion, "azure")
    total = usage_count(usage.get("total_tokens"))
    return TokenUsage(0, total, "azure") if total is not None else None


def upstream_error_event(error: Any) -> ChatgateError:
    """An error event Azure sent mid-stream: its code and message where they are about the request (a
    content filter, the context length, ...), else a generic upstream error (Azure's internals stay out)."""
    error = error if isinstance(error, Mapping) else {}
    code, message = error.get("code"), error.get("message")
    if code in _PASSED_ON_CODES and isinstance(message, str) and message:
        return UpstreamError(message[:1000], code=code)
    return UpstreamError("The upstream failed while streaming the response.")


class ChatCompletionsRelay:
    """Frames a chat completions stream: each chunk as it came, the usage chunk only if asked for."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: TokenUsage | None = None
        self.relayed_text: list[str] = []
        self.finished = False

    def relay(self, event: ServerSentEvent) -> bytes | None:
        data = event.data
        if data == "[DONE]":
            self.finished = True
            return None
        if not data:
            return None
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            return sse(data.encode())
        if "error" in chunk:
            raise upstream_error_event(chunk["error"])
        if chunk.get("usage") and not chunk.get("choices"):
            self.usage = usage_of(chunk["usage"]) or self.usage
            if not self.include_usage:
                return None  # chatgate asked for it; the client did not
        self._collect_text(chunk)
        return sse(data.encode())

    def end_frame(self) -> bytes:
        return DONE

    def error_frame(self, error: ChatgateError) -> bytes:
        return sse(error.to_json())

    def _collect_text(self, chunk: Mapping[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                self.relayed_text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                arguments = function.get("arguments") if isinstance(function, dict) else None
                if isinstance(arguments, str):
                    self.relayed_text.append(arguments)


class ChatCompletionsApi:
    """The adapter the pipeline is handed for `POST /v1/chat/completions`."""

    name = "chat.completions"
    reserves_completion = True

    def parse(self, raw: bytes) -> ChatRequest:
        return replace(validate_chat_request(parse_body(raw)), body_size=len(raw))

    async def prompt_tokens(self, request: ChatRequest, *, stop_above: int | None = None) -> int:
        return await tokens.count_prompt_tokens_async(
            request.model, request.forward, request.body_size, stop_above=stop_above
        )

    async def complete(self, azure: AzureOpenAI, target: UpstreamTarget, request: ChatRequest) -> Answer:
        completion = await azure.complete(target, request.upstream_body())
        return Answer(completion.content, usage_of(completion.usage), completion.upstream_request_id)

    async def open_stream(
        self, azure: AzureOpenAI, target: UpstreamTarget, request: ChatRequest
    ) -> UpstreamStream:
        return await azure.open_stream(target, request.upstream_body())

    def stream_relay(self, request: ChatRequest) -> ChatCompletionsRelay:
        return ChatCompletionsRelay(request.include_usage)


CHAT_COMPLETIONS = ChatCompletionsApi()
