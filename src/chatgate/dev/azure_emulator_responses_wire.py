"""The Responses API as Azure OpenAI's v1 surface answers it: response objects, input items, and the typed
event stream (`event: <type>` + `data: <json>`, every event with its `sequence_number`)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from chatgate.dev.azure_emulator_http import is_reasoning_model
from chatgate.dev.azure_emulator_reply import Triggers, compose_reply, encoding_for, parse_triggers, random_id
from chatgate.dev.azure_emulator_state import StoredResponse, StreamEnd
from chatgate.dev.azure_emulator_stream import EmulatedConnectionReset

_PIECE = re.compile(r"\s*\S+|\s+")
# Hidden reasoning tokens a reasoning model "spends" on every answer.
REASONING_TOKENS = 64
SERVER_ERROR = {"code": "server_error", "message": "The server had an error while processing your request."}


@dataclass(frozen=True)
class ResponsePlan:
    """One response, decided before anything is sent."""

    response_id: str
    model: str
    created_at: int
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    conversation: list[dict[str, Any]]
    message_id: str
    reasoning_id: str | None
    reasoning_tokens: int
    text: str
    pieces: list[str]
    input_tokens: int
    output_tokens: int  # visible text tokens
    incomplete: bool
    triggers: Triggers

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def store(self) -> bool:
        return self.body.get("store") is not False


def _content_parts(role: str, content: Any) -> Any:
    if isinstance(content, str):
        if role == "assistant":
            return [{"type": "output_text", "text": content, "annotations": []}]
        return [{"type": "input_text", "text": content}]
    return content


def normalize_input(value: Any) -> list[dict[str, Any]]:
    """`input` (a string or a list of items) as the stored input items, each with an id."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items: list[dict[str, Any]] = []
    for raw in value if isinstance(value, list) else []:
        if not isinstance(raw, dict):
            continue
        item = dict(raw)
        if "role" in item and item.get("type", "message") == "message":
            role = str(item["role"])
            item = {
                "id": item.get("id") or random_id("msg_", 32),
                "type": "message",
                "role": role,
                "status": "completed",
                "content": _content_parts(role, item.get("content")),
            }
        else:
            item.setdefault("id", random_id("item_", 32))
        items.append(item)
    return items


def _text_of(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return json.dumps(item, separators=(",", ":"))


def _last_user_text(items: list[dict[str, Any]]) -> str:
    for item in reversed(items):
        if item.get("type") == "message" and item.get("role") == "user":
            return _text_of(item)
    return ""


def _json_mode(body: dict[str, Any]) -> bool:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def plan_response(
    body: dict[str, Any], *, model: str, name: str, previous: StoredResponse | None, created_at: int
) -> ResponsePlan:
    """Decide the answer to a Responses API request body."""
    encoding = encoding_for(model)
    input_items = normalize_input(body.get("input"))
    conversation = [*(previous.conversation if previous else []), *input_items]
    user_text = _last_user_text(conversation)
    triggers = parse_triggers(user_text)
    text = compose_reply(user_text, name=name, json_mode=_json_mode(body), words=triggers.words)
    tokens = encoding.encode_ordinary(text)
    reasoning_tokens = REASONING_TOKENS if is_reasoning_model(model) else 0
    limit = body.get("max_output_tokens")
    incomplete = False
    if isinstance(limit, int) and not isinstance(limit, bool) and reasoning_tokens + len(tokens) > limit:
        tokens = tokens[: max(0, limit - reasoning_tokens)]
        text = encoding.decode(tokens)
        incomplete = True
    instructions = body.get("instructions")
    input_tokens = len(encoding.encode_ordinary(instructions)) + 4 if isinstance(instructions, str) else 0
    input_tokens += sum(len(encoding.encode_ordinary(_text_of(item))) + 4 for item in conversation) + 3
    return ResponsePlan(
        response_id=random_id("resp_", 48),
        model=model,
        created_at=created_at,
        body=body,
        input_items=input_items,
        conversation=conversation,
        message_id=random_id("msg_", 48),
        reasoning_id=random_id("rs_", 48) if reasoning_tokens else None,
        reasoning_tokens=reasoning_tokens,
        text=text,
        pieces=_PIECE.findall(text),
        input_tokens=input_tokens,
        output_tokens=len(tokens),
        incomplete=incomplete,
        triggers=triggers,
    )


def usage(plan: ResponsePlan, output_tokens: int | None = None) -> dict[str, Any]:
    visible = plan.output_tokens if output_tokens is None else output_tokens
    output = plan.reasoning_tokens + visible
    return {
        "input_tokens": plan.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        "total_tokens": plan.input_tokens + output,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(plan: ResponsePlan, *, status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [_text_part(text)]
    return {
        "id": plan.message_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def reasoning_item(plan: ResponsePlan) -> dict[str, Any]:
    return {"id": plan.reasoning_id, "type": "reasoning", "summary": []}


def response_object(
    plan: ResponsePlan,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `response` object; the request's settings echoed with OpenAI's defaults."""
    body = plan.body
    requested = body.get("reasoning")
    reasoning: dict[str, Any] = requested if isinstance(requested, dict) else {}
    effort = reasoning.get("effort") or ("medium" if plan.reasoning_id else None)
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": plan.response_id,
        "object": "response",
        "created_at": plan.created_at,
        "status": status,
        "background": False,
        "completed_at": plan.created_at if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": plan.model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": effort, "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": plan.store,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _sent_tokens(plan: ResponsePlan, pieces: int) -> int:
    return len(encoding_for(plan.model).encode_ordinary("".join(plan.pieces[:pieces])))


def final_response(plan: ResponsePlan) -> dict[str, Any]:
    """The response as it ends (what GET returns later, and the last event of a stream)."""
    failed_after = plan.triggers.stream_error_after
    reasoning = [reasoning_item(plan)] if plan.reasoning_id else []
    if plan.stream and failed_after is not None and failed_after <= len(plan.pieces):
        text = "".join(plan.pieces[:failed_after])
        output = [*reasoning, message_item(plan, status="incomplete", text=text)]
        sent = usage(plan, _sent_tokens(plan, failed_after))
        return response_object(plan, status="failed", output=output, usage=sent, error=SERVER_ERROR)
    status = "incomplete" if plan.incomplete else "completed"
    output = [*reasoning, message_item(plan, status=status, text=plan.text)]
    return response_object(plan, status=status, output=output, usage=usage(plan))


def stored(plan: ResponsePlan, response: dict[str, Any]) -> StoredResponse:
    replies = [item for item in response["output"] if item.get("type") == "message"]
    return StoredResponse(response, plan.input_items, [*plan.conversation, *replies])


def sse(event_type: str, sequence_number: int, payload: dict[str, Any]) -> bytes:
    """One typed event: `event: <type>` and `data: <json>` (type and sequence_number first)."""
    data = {"type": event_type, "sequence_number": sequence_number, **payload}
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event_type}\ndata: {text}\n\n".encode()


async def _pause(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


async def response_stream(
    plan: ResponsePlan, final: dict[str, Any], *, first_event_delay_s: float, event_delay_s: float
) -> AsyncIterator[bytes | StreamEnd]:
    """The events of a streamed response in OpenAI's order, ending with `final`'s status event."""
    seq = iter(range(1_000_000))
    await _pause(first_event_delay_s)
    started = response_object(plan, status="in_progress", output=[], usage=None)
    yield sse("response.created", next(seq), {"response": started})
    yield sse("response.in_progress", next(seq), {"response": started})
    index = 0
    if plan.reasoning_id:
        await _pause(event_delay_s)
        yield sse("response.output_item.added", next(seq), {"output_index": 0, "item": reasoning_item(plan)})
        yield sse("response.output_item.done", next(seq), {"output_index": 0, "item": reasoning_item(plan)})
        index = 1
    where = {"item_id": plan.message_id, "output_index": index, "content_index": 0}
    item = message_item(plan, status="in_progress", text=None)
    yield sse("response.output_item.added", next(seq), {"output_index": index, "item": item})
    yield sse("response.content_part.added", next(seq), {**where, "part": _text_part("")})
    for sent, piece in enumerate(plan.pieces):
        if plan.triggers.stream_reset_after == sent:
            await _pause(event_delay_s)
            raise EmulatedConnectionReset
        if final["status"] == "failed" and plan.triggers.stream_error_after == sent:
            break
        await _pause(event_delay_s)
        yield sse("response.output_text.delta", next(seq), {**where, "delta": piece, "logprobs": []})
    else:
        if plan.triggers.stream_reset_after == len(plan.pieces):
            raise EmulatedConnectionReset
    await _pause(event_delay_s)
    if final["status"] == "failed":
        yield sse("response.failed", next(seq), {"response": final})
        yield StreamEnd.ERRORED
        return
    done = final["output"][index]
    yield sse("response.output_text.done", next(seq), {**where, "text": plan.text, "logprobs": []})
    yield sse("response.content_part.done", next(seq), {**where, "part": done["content"][0]})
    yield sse("response.output_item.done", next(seq), {"output_index": index, "item": done})
    end = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    yield sse(end, next(seq), {"response": final})


def input_items_page(items: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any] | str:
    """GET .../input_items: a page of the stored input items (`order` desc by default, `limit` 20,
    `after` an item id); a string is the name of an invalid parameter."""
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        return "order"
    try:
        limit = int(params.get("limit", "20"))
    except ValueError:
        return "limit"
    if not 1 <= limit <= 100:
        return "limit"
    ordered = list(reversed(items)) if order == "desc" else list(items)
    after = params.get("after")
    if after:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }
