"""The Responses API's request body as the gateway needs it: the fields it relies on, checked by type (as
OpenAI does; values whose lists keep growing are Azure's to judge), and its input tokens counted offline.

Checked (the contract's forwarding policy, as for chat completions): `model` (required), the text chatgate
counts (`input`, `instructions`, `tools`), `tool_choice`, `max_output_tokens` (reserved by; an integer,
`16.0` included, with no upper bound of chatgate's own), `temperature` and `top_p` (the spec's ranges),
`stream`, `store` and `previous_response_id`. Every other field, known or not, is forwarded as sent and
Azure judges it; the Azure extensions of the denylist (checks.AZURE_EXTENSIONS) are refused. Refused too,
because chatgate could not keep its promises with them:
- `background: true`: the answer (and its usage) would arrive after the request has been settled;
- `conversation`: state kept in a Conversations API object that chatgate does not track per workspace;
- input items of type `item_reference`: they pull stored items by id, whose owner chatgate cannot check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatgate.errors import InvalidRequest
from chatgate.gateway.checks import (
    as_int,
    boolean,
    denied,
    integer,
    is_int,
    kind_of,
    missing,
    number,
    refused,
    string,
    type_error,
)
from chatgate.limits import tokens
from chatgate.limits.tokenizer import Encoding


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A checked `POST /v1/responses` body."""

    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    max_output_tokens: int | None
    forward: dict[str, Any] = field(repr=False)
    body_size: int = 0  # bytes of the raw body: large prompts are counted off the event loop


def _model(param: str, value: Any) -> None:
    string(param, value, {})
    if not value:
        raise InvalidRequest(
            f"Invalid '{param}': expected a model name, but got an empty string instead.",
            param=param,
            code="invalid_value",
        )


def _string_or_array(param: str, value: Any) -> None:
    if not isinstance(value, str | list):
        raise type_error(param, "a string or an array", value)


def _input(param: str, value: Any) -> None:
    _string_or_array(param, value)
    if isinstance(value, str):
        return
    for i, item in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise type_error(where, "an object", item)
        kind = item.get("type")
        if kind is not None and not isinstance(kind, str):
            raise type_error(f"{where}.type", "a string", kind)
        # The spec's ItemReferenceParam: `type` "item_reference", or null / absent on an item that has an
        # `id` and no `role` (every other item kind names its type; a message names its role).
        if kind == "item_reference" or (kind is None and "role" not in item and "id" in item):
            raise refused(
                where,
                f"Invalid '{where}': items of type 'item_reference' are not supported by this gateway; "
                "send the item itself, or continue a stored response with 'previous_response_id'.",
            )


def _tools(param: str, value: Any) -> None:
    if not isinstance(value, list):
        raise type_error(param, "an array", value)
    for i, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise type_error(f"{param}[{i}]", "an object", tool)
        if not isinstance(tool.get("type"), str):
            raise type_error(f"{param}[{i}].type", "a string", tool.get("type"))


def _tool_choice(param: str, value: Any) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, dict):
        raise type_error(param, "a string or an object", value)
    if not isinstance(value.get("type"), str):
        raise type_error(f"{param}.type", "a string", value.get("type"))


_CHECKS: dict[str, Any] = {
    "model": _model,
    "input": _input,
    "instructions": _string_or_array,
    "max_output_tokens": lambda p, v: integer(1)(p, v, {}),
    "temperature": lambda p, v: number(0, 2)(p, v, {}),
    "top_p": lambda p, v: number(0, 1)(p, v, {}),
    "stream": lambda p, v: boolean(p, v, {}),
    "store": lambda p, v: boolean(p, v, {}),
    "previous_response_id": lambda p, v: string(p, v, {}),
    "tools": _tools,
    "tool_choice": _tool_choice,
}


def validate_responses_request(body: Any) -> ResponsesRequest:
    """Check the fields the gateway relies on; return what to forward (nulls dropped)."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"Invalid body: expected a JSON object, but got {kind_of(body)} instead.", code="invalid_type"
        )
    if body.get("model") is None:
        raise missing("model")
    denied(body)
    for name, check in _CHECKS.items():
        if body.get(name) is not None:
            check(name, body[name])
    if body.get("background") is True:
        raise refused(
            "background", "Background responses are not supported by this gateway: send 'background': false."
        )
    if body.get("conversation") is not None:
        raise refused(
            "conversation",
            "Conversations are not supported by this gateway: "
            "continue a response with 'previous_response_id'.",
        )
    limit = as_int(body.get("max_output_tokens"))
    previous = body.get("previous_response_id")
    forward = {k: v for k, v in body.items() if v is not None}
    if limit is not None:
        forward["max_output_tokens"] = limit
    return ResponsesRequest(
        model=body["model"],
        stream=body.get("stream") is True,
        store=body.get("store") is not False,
        previous_response_id=previous,
        max_output_tokens=limit if is_int(limit) else None,
        forward=forward,
    )


# --- input tokens ----------------------------------------------------------------------------------------


def count_input_tokens(
    model: str,
    body: Mapping[str, Any],
    *,
    stop_above: int | None = None,
    encoding: Encoding | None = None,
) -> int:
    """Input tokens of a Responses request: instructions, input items and tool definitions, with the chat
    formula's per-message overheads (the stored conversation of `previous_response_id` is not counted
    here: it is not known before Azure answers; settlement corrects the reservation to Azure's usage).
    With `stop_above` (the caller's token limit), counting may stop once the count passes it, as for chat
    prompts: a hostile 4 MiB input costs what counting past the limit costs, not its whole size."""
    encoding = encoding or tokens.encoding_for(model)

    def left(total: int) -> int | None:
        return None if stop_above is None else stop_above - total

    total = tokens.REPLY_PRIMING
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        total += tokens.TOKENS_PER_MESSAGE
        total += tokens.count_text(encoding, instructions, stop_above=left(total))
    value = body.get("input")
    items = [{"role": "user", "content": value}] if isinstance(value, str) else value
    if isinstance(instructions, list):
        items = [*instructions, *(items if isinstance(items, list) else [])]
    for item in items if isinstance(items, list) else ():
        if stop_above is not None and total > stop_above:
            return total
        if isinstance(item, dict):
            total += _count_item(encoding, item, left(total))
    if stop_above is not None and total > stop_above:
        return total
    return total + _count_tools(encoding, body.get("tools"))


def _count_item(encoding: Encoding, item: dict[str, Any], stop_above: int | None = None) -> int:
    kind = item.get("type", "message")
    if kind == "message" or "role" in item:
        return tokens.TOKENS_PER_MESSAGE + _count_content(encoding, item.get("content"), stop_above)
    if kind in ("function_call", "custom_tool_call"):
        text = "".join(str(item.get(k) or "") for k in ("name", "arguments", "input"))
        return tokens.TOKENS_PER_TOOL_CALL + tokens.count_text(encoding, text, stop_above=stop_above)
    if kind.endswith("_output"):
        output = item.get("output")
        if isinstance(output, str):
            return tokens.TOKENS_PER_MESSAGE + tokens.count_text(encoding, output, stop_above=stop_above)
        return tokens.TOKENS_PER_MESSAGE + _count_content(encoding, output, stop_above)
    if kind == "reasoning":  # summaries only; encrypted content is the model's own state
        summary = item.get("summary")
        return _count_content(encoding, summary, stop_above)
    rest = {k: v for k, v in item.items() if k not in ("id", "status")}
    text = json.dumps(rest, separators=(",", ":"), ensure_ascii=False)
    return tokens.count_text(encoding, text, stop_above=stop_above)


def _count_content(encoding: Encoding, content: Any, stop_above: int | None = None) -> int:
    if isinstance(content, str):
        return tokens.count_text(encoding, content, stop_above=stop_above)
    total = 0
    for part in content if isinstance(content, list) else ():
        if stop_above is not None and total > stop_above:
            return total
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("input_image", "image_url"):
            total += tokens.IMAGE_LOW_DETAIL if part.get("detail") == "low" else tokens.IMAGE_DEFAULT
        elif kind == "input_file":
            total += tokens.IMAGE_DEFAULT  # a document's size is unknown without parsing it
        else:
            for key in ("text", "refusal"):
                if isinstance(part.get(key), str):
                    left = None if stop_above is None else stop_above - total
                    total += tokens.count_text(encoding, part[key], stop_above=left)
    return total


def _count_tools(encoding: Encoding, tools: Any) -> int:
    """Function tools (flat in this API: {type, name, description, parameters}) with the chat formula;
    other tools (web search, file search, MCP ...) as their compact JSON."""
    if not isinstance(tools, list):
        return 0
    functions = [t for t in tools if isinstance(t, dict) and t.get("type") == "function"]
    others = [t for t in tools if isinstance(t, dict) and t.get("type") != "function"]
    total = tokens.count_function_definitions(encoding, functions)
    for tool in others:
        total += tokens.count_text(encoding, json.dumps(tool, separators=(",", ":"), ensure_ascii=False))
    return total


def chat_usage(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A Responses `usage` ({input_tokens, output_tokens, total_tokens}) in the chat completions names
    (prompt_tokens, completion_tokens, total_tokens) the accounting reads; None when absent."""
    if not isinstance(usage, Mapping):
        return None
    return {
        "prompt_tokens": usage.get("input_tokens"),
        "completion_tokens": usage.get("output_tokens"),
        "total_tokens": usage.get("total_tokens"),
    }
