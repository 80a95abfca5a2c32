"""Validate a chat completions request body the way OpenAI does, and decide what is forwarded.

Each top-level parameter has one check. A rejection is an InvalidRequest (400) whose `param` names the
field and whose message says what was expected and what was received, in OpenAI's wording.
The four parameters the product does not support follow the contract's table: values that change nothing
are accepted and dropped, values asking for behaviour chatgate cannot give are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chatgate.errors import InvalidRequest

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Parameters accepted but never sent upstream (contract: "accepted (not forwarded)").
NOT_FORWARDED = frozenset({"n", "service_tier", "parallel_tool_calls", "stream_options"})


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


def parse_body(raw: bytes) -> Any:
    """Parse the raw body as JSON, or refuse it with OpenAI's wording."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON.)",
            code="invalid_json",
        ) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python accepts them, JSON does not


def validate_chat_request(body: Any) -> ChatRequest:
    """Check every parameter of a chat completions body; return what to forward."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"Invalid body: expected a JSON object, but got {_kind(body)} instead.",
            code="invalid_type",
        )
    for name in body:
        if name not in _CHECKS:
            raise InvalidRequest(
                f"Unrecognized request argument supplied: {name}",
                param=name,
                code="unknown_parameter",
            )
    for name in ("messages", "model"):
        if body.get(name) is None:
            raise InvalidRequest(
                f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
            )
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
    return ChatRequest(
        model=body["model"],
        stream=stream,
        include_usage=include_usage,
        max_completion_tokens=max_tokens,
        forward=forward,
    )


# --- generic checks -----------------------------------------------------------------------------------

Check = Callable[[str, Any, Mapping[str, Any]], None]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_error(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _value_error(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(f"Invalid '{param}': {message}", param=param, code=code)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return _is_int(value)


def _number(low: float, high: float) -> Check:
    def check(param: str, value: Any, _body: Mapping[str, Any]) -> None:
        if not _is_number(value):
            raise _type_error(param, "a decimal", value)
        if value < low:
            raise _value_error(
                param,
                f"decimal below minimum value. Expected a value >= {low:g}, but got {value} instead.",
                "decimal_below_min_value",
            )
        if value > high:
            raise _value_error(
                param,
                f"decimal above maximum value. Expected a value <= {high:g}, but got {value} instead.",
                "decimal_above_max_value",
            )

    return check


def _integer(low: int, high: int) -> Check:
    def check(param: str, value: Any, _body: Mapping[str, Any]) -> None:
        if not _is_int(value):
            raise _type_error(param, "an integer", value)
        if value < low:
            raise _value_error(
                param,
                f"integer below minimum value. Expected a value >= {low}, but got {value} instead.",
                "integer_below_min_value",
            )
        if value > high:
            raise _value_error(
                param,
                f"integer above maximum value. Expected a value <= {high}, but got {value} instead.",
                "integer_above_max_value",
            )

    return check


def _boolean(param: str, value: Any, _body: Mapping[str, Any]) -> None:
    if not isinstance(value, bool):
        raise _type_error(param, "a boolean", value)


def _string(param: str, value: Any, _body: Mapping[str, Any]) -> None:
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)


def _object(param: str, value: Any, _body: Mapping[str, Any]) -> None:
    if not isinstance(value, dict):
        raise _type_error(param, "an object", value)


def _one_of(*choices: str) -> Check:
    def check(param: str, value: Any, _body: Mapping[str, Any]) -> None:
        if not isinstance(value, str):
            raise _type_error(param, "a string", value)
        if value not in choices:
            supported = ", ".join(f"'{c}'" for c in choices)
            raise _value_error(
                param, f"value must be one of {supported}, but got '{value}' instead.", "invalid_value"
            )

    return check


def _array(param: str, value: Any, low: int, high: int) -> list[Any]:
    if not isinstance(value, list):
        raise _type_error(param, "an array", value)
    if len(value) < low:
        if not value:
            raise _value_error(
                param,
                f"empty array. Expected an array with minimum length {low}, but got an empty array instead.",
                "empty_array",
            )
        raise _value_error(
            param,
            f"array too short. Expected an array with minimum length {low}, "
            f"but got an array with length {len(value)} instead.",
            "array_below_min_length",
        )
    if len(value) > high:
        raise _value_error(
            param,
            f"array too long. Expected an array with maximum length {high}, "
            f"but got an array with length {len(value)} instead.",
            "array_above_max_length",
        )
    return value


def _string_array(low: int, high: int) -> Check:
    def check(param: str, value: Any, _body: Mapping[str, Any]) -> None:
        for i, item in enumerate(_array(param, value, low, high)):
            _string(f"{param}[{i}]", item, _body)

    return check


# --- parameter checks ---------------------------------------------------------------------------------


def _messages(param: str, value: Any, body: Mapping[str, Any]) -> None:
    for i, message in enumerate(_array(param, value, 1, 100_000)):
        where = f"{param}[{i}]"
        if not isinstance(message, dict):
            raise _type_error(where, "an object", message)
        role = message.get("role")
        if role is None:
            raise InvalidRequest(
                f"Missing required parameter: '{where}.role'.",
                param=f"{where}.role",
                code="missing_required_parameter",
            )
        _one_of(*sorted(MESSAGE_ROLES))(f"{where}.role", role, body)
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _type_error(f"{where}.content", "a string or an array", content)
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict):
                    raise _type_error(f"{where}.content[{j}]", "an object", part)
        if "name" in message and message["name"] is not None:
            _string(f"{where}.name", message["name"], body)


def _model(param: str, value: Any, body: Mapping[str, Any]) -> None:
    _string(param, value, body)
    if not value:
        raise _value_error(param, "expected a model name, but got an empty string instead.")


def _logit_bias(param: str, value: Any, body: Mapping[str, Any]) -> None:
    _object(param, value, body)
    for token, bias in value.items():
        if not (token.isascii() and token.isdigit()):
            raise _value_error(
                param,
                f"keys must be token ids (non-negative integers as strings), but got '{token}' instead.",
            )
        _integer(-100, 100)(f"{param}.{token}", bias, body)


def _top_logprobs(param: str, value: Any, body: Mapping[str, Any]) -> None:
    _integer(0, 20)(param, value, body)
    if body.get("logprobs") is not True:
        raise _value_error(param, "'top_logprobs' requires 'logprobs' to be true.")


def _response_format(param: str, value: Any, body: Mapping[str, Any]) -> None:
    _object(param, value, body)
    if "type" not in value:
        raise InvalidRequest(
            f"Missing required parameter: '{param}.type'.",
            param=f"{param}.type",
            code="missing_required_parameter",
        )
    _one_of("text", "json_object", "json_schema")(f"{param}.type", value["type"], body)
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if schema is None:
            raise InvalidRequest(
                f"Missing required parameter: '{param}.json_schema'.",
                param=f"{param}.json_schema",
                code="missing_required_parameter",
            )
        _object(f"{param}.json_schema", schema, body)
        if not isinstance(schema.get("name"), str):
            raise InvalidRequest(
                f"Missing required parameter: '{param}.json_schema.name'.",
                param=f"{param}.json_schema.name",
                code="missing_required_parameter",
            )


def _stop(param: str, value: Any, body: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _type_error(param, "a string or an array of strings", value)
    _string_array(0, 4)(param, value, body)


def _function_name(param: str, value: Any, body: Mapping[str, Any]) -> str:
    _object(param, value, body)
    name = value.get("name")
    if name is None:
        raise InvalidRequest(
            f"Missing required parameter: '{param}.name'.",
            param=f"{param}.name",
            code="missing_required_parameter",
        )
    _string(f"{param}.name", name, body)
    return str(name)


def _tools(param: str, value: Any, body: Mapping[str, Any]) -> None:
    for i, tool in enumerate(_array(param, value, 1, 128)):
        where = f"{param}[{i}]"
        _object(where, tool, body)
        kind = tool.get("type", "function")
        _one_of("function", "custom")(f"{where}.type", kind, body)
        _function_name(f"{where}.{kind}", tool.get(kind), body)


def _tool_names(body: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or ():
        kind = tool.get("type", "function")
        names.add(tool[kind]["name"])
    return names


def _tool_choice(param: str, value: Any, body: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        _one_of("none", "auto", "required")(param, value, body)
        if value == "required" and not body.get("tools"):
            raise _value_error(param, "'required' is only allowed when 'tools' are specified.")
        return
    _object(param, value, body)
    kind = value.get("type")
    _one_of("function", "custom")(f"{param}.type", kind, body)
    name = _function_name(f"{param}.{kind}", value.get(kind), body)
    if name not in _tool_names(body):
        raise _value_error(
            param,
            f"the named tool '{name}' is not one of the functions in 'tools'.",
        )


def _functions(param: str, value: Any, body: Mapping[str, Any]) -> None:
    for i, function in enumerate(_array(param, value, 1, 128)):
        _function_name(f"{param}[{i}]", function, body)


def _function_call(param: str, value: Any, body: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        _one_of("none", "auto")(param, value, body)
        return
    name = _function_name(param, value, body)
    known = {f["name"] for f in body.get("functions") or ()}
    if name not in known:
        raise _value_error(param, f"the named function '{name}' is not one of the 'functions'.")


# --- the four parameters of the contract's table --------------------------------------------------------


def _n(param: str, value: Any, body: Mapping[str, Any]) -> None:
    _integer(1, 128)(param, value, body)
    if value != 1:
        raise _value_error(
            param,
            f"chatgate returns exactly one choice; 'n' must be 1 (or omitted), but got {value} instead.",
            "unsupported_value",
        )


def _service_tier(param: str, value: Any, body: Mapping[str, Any]) -> None:
    _string(param, value, body)
    if value not in ("auto", "default"):
        raise _value_error(
            param,
            f"chatgate does not support service tiers; use 'auto' or 'default' (or omit it), "
            f"but got '{value}' instead.",
            "unsupported_value",
        )


def _parallel_tool_calls(param: str, value: Any, body: Mapping[str, Any]) -> None:
    _boolean(param, value, body)
    if value is False:
        raise _value_error(
            param,
            "chatgate cannot disable parallel tool calls; 'parallel_tool_calls' may only be true "
            "(or omitted).",
            "unsupported_value",
        )


def _stream_options(param: str, value: Any, body: Mapping[str, Any]) -> None:
    _object(param, value, body)
    if body.get("stream") is not True:
        raise _value_error(
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
        _boolean(f"{param}.include_usage", option, body)


_CHECKS: dict[str, Check] = {
    "messages": _messages,
    "model": _model,
    "audio": _object,
    "frequency_penalty": _number(-2, 2),
    "functions": _functions,
    "logit_bias": _logit_bias,
    "logprobs": _boolean,
    "max_completion_tokens": _integer(1, INT64_MAX),
    "max_tokens": _integer(1, INT64_MAX),
    "metadata": _object,
    "modalities": _string_array(0, 8),
    "n": _n,
    "parallel_tool_calls": _parallel_tool_calls,
    "prediction": _object,
    "presence_penalty": _number(-2, 2),
    "prompt_cache_key": _string,
    "reasoning_effort": _one_of("minimal", "low", "medium", "high"),
    "response_format": _response_format,
    "safety_identifier": _string,
    "seed": _integer(INT64_MIN, INT64_MAX),
    "service_tier": _service_tier,
    "stop": _stop,
    "store": _boolean,
    "stream": _boolean,
    "temperature": _number(0, 2),
    "tools": _tools,
    "top_p": _number(0, 1),
    "user": _string,
    "verbosity": _one_of("low", "medium", "high"),
    "web_search_options": _object,
    # Checked last: these refer to parameters above.
    "function_call": _function_call,
    "tool_choice": _tool_choice,
    "top_logprobs": _top_logprobs,
    "stream_options": _stream_options,
}
