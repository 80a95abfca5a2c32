"""Check a chat completions request body for what chatgate relies on, and decide what is forwarded.

The contract's forwarding policy ("Request body"): chatgate checks the model, the messages it counts,
`stream` and `stream_options`, the token caps it reserves by, the four unsupported parameters and the ranges
the seeds state; every other top-level field, known or not, is forwarded as sent and Azure judges it (its
400 is relayed). Only the Azure extensions of the denylist (checks.AZURE_EXTENSIONS: `data_sources` and its
kin) are refused whatever their value. An integer may be written with a zero fraction (`1.0`, as JSON
Schema and so OpenAI's spec allow); it is forwarded as the integer. No bound is added that neither the
seeds nor the spec state.

A rejection is an InvalidRequest (400) whose `param` names the field and whose message says what was
expected and what was received, in OpenAI's wording. The four parameters the product does not support
follow the contract's table: values that change nothing are accepted and dropped, values asking for
behaviour chatgate cannot give are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatgate.errors import InvalidRequest
from chatgate.gateway.body import parse_body
from chatgate.gateway.checks import (
    Check,
    array,
    as_int,
    boolean,
    denied,
    integer,
    json_object,
    kind_of,
    missing,
    number,
    one_of,
    string,
    string_array,
    type_error,
    value_error,
)

__all__ = ["ChatRequest", "parse_body", "validate_chat_request"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Message roles chatgate knows today; roles are checked by type only (OpenAI adds new ones).
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Parameters accepted but never sent upstream (contract: "accepted (not forwarded)").
NOT_FORWARDED = frozenset({"n", "service_tier", "parallel_tool_calls", "stream_options"})
# Checked parameters whose value is an integer: one written `16.0` is forwarded as `16`.
INTEGERS = ("max_completion_tokens", "max_tokens", "seed", "top_logprobs")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated request: what the gateway needs to know, and the body to forward upstream."""

    model: str
    stream: bool
    include_usage: bool
    max_completion_tokens: int | None
    forward: dict[str, Any] = field(repr=False)
    body_size: int = 0  # bytes of the request body, for the tokenizer's threading policy

    @property
    def max_output_tokens(self) -> int | None:
        return self.max_completion_tokens

    def upstream_body(self) -> dict[str, Any]:
        """The body sent to Azure. Streams always ask for the usage chunk: chatgate accounts with it,
        and forwards it only if the client asked too."""
        if self.stream:
            return {**self.forward, "stream_options": {"include_usage": True}}
        return self.forward


def validate_chat_request(body: Any) -> ChatRequest:
    """Check every parameter of a chat completions body; return what to forward."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"Invalid body: expected a JSON object, but got {kind_of(body)} instead.",
            code="invalid_type",
        )
    denied(body)
    for name in ("messages", "model"):
        if body.get(name) is None:
            raise missing(name)
    for name, check in _CHECKS.items():
        if body.get(name) is not None:
            check(name, body[name], body)

    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = bool(stream and isinstance(options, dict) and options.get("include_usage") is True)
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    forward = {k: v for k, v in body.items() if v is not None and k not in NOT_FORWARDED}
    for name in INTEGERS:
        if name in forward:
            forward[name] = as_int(forward[name])
    if isinstance(forward.get("logit_bias"), dict):
        forward["logit_bias"] = {token: as_int(bias) for token, bias in forward["logit_bias"].items()}
    return ChatRequest(
        model=body["model"],
        stream=stream,
        include_usage=include_usage,
        max_completion_tokens=as_int(max_tokens),
        forward=forward,
    )


# --- parameter checks ---------------------------------------------------------------------------------


def _messages(param: str, value: Any, body: Mapping[str, Any]) -> None:
    for i, message in enumerate(array(param, value, 1)):
        where = f"{param}[{i}]"
        if not isinstance(message, dict):
            raise type_error(where, "an object", message)
        role = message.get("role")
        if role is None:
            raise missing(f"{where}.role")
        string(f"{where}.role", role, body)  # a growing set (developer is recent): Azure judges the value
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise type_error(f"{where}.content", "a string or an array", content)
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict):
                    raise type_error(f"{where}.content[{j}]", "an object", part)
        if "name" in message and message["name"] is not None:
            string(f"{where}.name", message["name"], body)


def _model(param: str, value: Any, body: Mapping[str, Any]) -> None:
    string(param, value, body)
    if not value:
        raise value_error(param, "expected a model name, but got an empty string instead.")


def _logit_bias(param: str, value: Any, body: Mapping[str, Any]) -> None:
    json_object(param, value, body)
    for token, bias in value.items():
        if not (token.isascii() and token.isdigit()):
            raise value_error(
                param,
                f"keys must be token ids (non-negative integers as strings), but got '{token}' instead.",
            )
        integer(-100, 100)(f"{param}.{token}", bias, body)


def _top_logprobs(param: str, value: Any, body: Mapping[str, Any]) -> None:
    integer(0, 20)(param, value, body)
    if body.get("logprobs") is not True:
        raise value_error(param, "'top_logprobs' requires 'logprobs' to be true.")


def _response_format(param: str, value: Any, body: Mapping[str, Any]) -> None:
    json_object(param, value, body)
    if "type" not in value:
        raise missing(f"{param}.type")
    one_of("text", "json_object", "json_schema")(f"{param}.type", value["type"], body)
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if schema is None:
            raise missing(f"{param}.json_schema")
        json_object(f"{param}.json_schema", schema, body)
        if not isinstance(schema.get("name"), str):
            raise missing(f"{param}.json_schema.name")


def _stop(param: str, value: Any, body: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise type_error(param, "a string or an array of strings", value)
    string_array(0, 4)(param, value, body)


def _function_name(param: str, value: Any, body: Mapping[str, Any]) -> str:
    json_object(param, value, body)
    name = value.get("name")
    if name is None:
        raise missing(f"{param}.name")
    string(f"{param}.name", name, body)
    return str(name)


# Tool kinds whose definition carries a named object under the kind's own key ({"type": "function",
# "function": {"name": ...}}). Other kinds are checked for shape only and left to Azure (the list grows).
NAMED_TOOL_KINDS = ("function", "custom")


def _tools(param: str, value: Any, body: Mapping[str, Any]) -> None:
    for i, tool in enumerate(array(param, value, 1, 128)):
        where = f"{param}[{i}]"
        json_object(where, tool, body)
        kind = tool.get("type", "function")
        string(f"{where}.type", kind, body)
        if kind in NAMED_TOOL_KINDS:
            _function_name(f"{where}.{kind}", tool.get(kind), body)


def _tool_names(body: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or ():
        kind = tool.get("type", "function")
        if kind in NAMED_TOOL_KINDS:
            names.add(tool[kind]["name"])
    return names


def _tool_choice(param: str, value: Any, body: Mapping[str, Any]) -> None:
    """`none` / `auto` / `required` (the contract's list), a named tool that is in `tools`, or any other
    documented kind: `allowed_tools` is checked for shape, kinds added later for type only."""
    if isinstance(value, str):
        one_of("none", "auto", "required")(param, value, body)
        if value == "required" and not body.get("tools"):
            raise value_error(param, "'required' is only allowed when 'tools' are specified.")
        return
    json_object(param, value, body)
    kind = value.get("type")
    if kind is None:
        raise missing(f"{param}.type")
    string(f"{param}.type", kind, body)
    if kind == "allowed_tools":
        _allowed_tools(f"{param}.allowed_tools", value.get("allowed_tools"), body)
    elif kind in NAMED_TOOL_KINDS:
        name = _function_name(f"{param}.{kind}", value.get(kind), body)
        if name not in _tool_names(body):
            raise value_error(param, f"the named tool '{name}' is not one of the functions in 'tools'.")


def _allowed_tools(param: str, value: Any, body: Mapping[str, Any]) -> None:
    if value is None:
        raise missing(param)
    json_object(param, value, body)
    for name in ("mode", "tools"):
        if value.get(name) is None:
            raise missing(f"{param}.{name}")
    string(f"{param}.mode", value["mode"], body)
    for i, tool in enumerate(array(f"{param}.tools", value["tools"], 0, 128)):
        json_object(f"{param}.tools[{i}]", tool, body)


def _functions(param: str, value: Any, body: Mapping[str, Any]) -> None:
    for i, function in enumerate(array(param, value, 1, 128)):
        _function_name(f"{param}[{i}]", function, body)


def _function_call(param: str, value: Any, body: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        one_of("none", "auto")(param, value, body)
        return
    name = _function_name(param, value, body)
    known = {f["name"] for f in body.get("functions") or ()}
    if name not in known:
        raise value_error(param, f"the named function '{name}' is not one of the 'functions'.")


# --- the four parameters of the contract's table --------------------------------------------------------


def _n(param: str, value: Any, body: Mapping[str, Any]) -> None:
    integer(1, 128)(param, value, body)
    if value != 1:
        raise value_error(
            param,
            f"chatgate returns exactly one choice; 'n' must be 1 (or omitted), but got {value} instead.",
            "unsupported_value",
        )


def _service_tier(param: str, value: Any, body: Mapping[str, Any]) -> None:
    string(param, value, body)
    if value not in ("auto", "default"):
        raise value_error(
            param,
            f"chatgate does not support service tiers; use 'auto' or 'default' (or omit it), "
            f"but got '{value}' instead.",
            "unsupported_value",
        )


def _parallel_tool_calls(param: str, value: Any, body: Mapping[str, Any]) -> None:
    boolean(param, value, body)
    if value is False:
        raise value_error(
            param,
            "chatgate cannot disable parallel tool calls; 'parallel_tool_calls' may only be true "
            "(or omitted).",
            "unsupported_value",
        )


def _stream_options(param: str, value: Any, body: Mapping[str, Any]) -> None:
    json_object(param, value, body)
    if body.get("stream") is not True:
        raise value_error(
            param, "'stream_options' is only allowed when 'stream' is true.", "unsupported_value"
        )
    for key, option in value.items():
        if key != "include_usage":
            raise InvalidRequest(
                f"Invalid '{param}': chatgate supports only 'include_usage' in 'stream_options', "
                f"but got '{key}'.",
                param=f"{param}.{key}",
                code="unsupported_value",
            )
        boolean(f"{param}.include_usage", option, body)


# What chatgate checks: what it relies on (the messages and tools it counts, the caps it reserves by, the
# stream) and the ranges the contract states. Every other field (audio, metadata, modalities, prediction,
# prompt_cache_*, reasoning_effort, store, verbosity, web_search_options, moderation, fields added later)
# is forwarded as sent: Azure answers for it.
_CHECKS: dict[str, Check] = {
    "messages": _messages,
    "model": _model,
    "frequency_penalty": number(-2, 2),
    "functions": _functions,
    "logit_bias": _logit_bias,
    "logprobs": boolean,
    "max_completion_tokens": integer(1),
    "max_tokens": integer(1),
    "n": _n,
    "parallel_tool_calls": _parallel_tool_calls,
    "presence_penalty": number(-2, 2),
    "response_format": _response_format,
    "seed": integer(INT64_MIN, INT64_MAX),
    "service_tier": _service_tier,
    "stop": _stop,
    "stream": boolean,
    "temperature": number(0, 2),
    "tools": _tools,
    "top_p": number(0, 1),
    "user": string,
    # Checked last: these refer to parameters above.
    "function_call": _function_call,
    "tool_choice": _tool_choice,
    "top_logprobs": _top_logprobs,
    "stream_options": _stream_options,
}
