"""Every rule of the contract's "Request body" section, and no body at all produces anything but a 400."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.errors import InvalidRequest
from chatgate.gateway.validation import parse_body, validate_chat_request

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": MESSAGES, **extra}


def rejected(value: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        validate_chat_request(value)
    error = caught.value
    assert error.status_code == 400
    assert error.error_type == "invalid_request_error"
    assert error.message
    return error


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"frequency_penalty": -2.01}, "frequency_penalty"),
        ({"presence_penalty": "1"}, "presence_penalty"),
        ({"presence_penalty": True}, "presence_penalty"),
        ({"logit_bias": {"50256": -101}}, "logit_bias.50256"),
        ({"logit_bias": {"50256": 1.5}}, "logit_bias.50256"),
        ({"logit_bias": {"hello": 1}}, "logit_bias"),
        ({"logit_bias": [1]}, "logit_bias"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": 5}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 2.5}, "top_logprobs"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_completion_tokens": -1}, "max_completion_tokens"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": "json"}, "response_format"),
        ({"response_format": {}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"seed": 2**63}, "seed"),
        ({"seed": "1"}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 3}, "stop"),
        ({"stop": ["a", 1]}, "stop[1]"),
        ({"temperature": 2.1}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 1.01}, "top_p"),
        ({"tools": []}, "tools"),
        ({"tools": TOOLS * 129}, "tools"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tools": [{"type": 7}]}, "tools[0].type"),
        ({"tool_choice": "sometimes", "tools": TOOLS}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "other"}}, "tools": TOOLS}, "tool_choice"),
        ({"functions": []}, "functions"),
        ({"functions": [{"name": "f"}] * 129}, "functions"),
        ({"function_call": "required", "functions": [{"name": "f"}]}, "function_call"),
        ({"function_call": {"name": "g"}, "functions": [{"name": "f"}]}, "function_call"),
        ({"user": 42}, "user"),
        ({"stream": "true"}, "stream"),
        # The contract's table of the four unsupported parameters.
        ({"n": 2}, "n"),
        ({"n": 0}, "n"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
        (
            {"stream": True, "stream_options": {"include_obfuscation": False}},
            "stream_options.include_obfuscation",
        ),
        ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        # The denylist of Azure extensions.
        ({"data_sources": [{"type": "azure_search", "parameters": {}}]}, "data_sources"),
        ({"dataSources": []}, "dataSources"),
        ({"enhancements": {"ocr": {"enabled": True}}}, "enhancements"),
    ],
)
def test_each_rule_rejects_with_the_param_named(extra: dict[str, Any], param: str) -> None:
    assert rejected(body(**extra)).param == param


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"model": "gpt-4o"}, "messages"),
        ({"messages": MESSAGES}, "model"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "gpt-4o", "messages": [{"role": 1, "content": "hi"}]}, "messages[0].role"),
        ({"model": "gpt-4o", "messages": ["hi"]}, "messages[0]"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": 4, "messages": MESSAGES}, "model"),
        ({"model": "", "messages": MESSAGES}, "model"),
    ],
)
def test_required_fields(value: dict[str, Any], param: str) -> None:
    assert rejected(value).param == param


def test_messages_say_what_was_expected_and_received() -> None:
    error = rejected(body(temperature=3))
    assert error.message == (
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead."
    )
    assert rejected(body(data_sources=[])).message.startswith(
        "'data_sources' is an Azure OpenAI extension this gateway does not forward"
    )
    assert rejected(body(data_sources=None)).code == "unsupported_parameter"  # whatever its value
    assert "expected a decimal, but got a string" in rejected(body(top_p="1")).message


@pytest.mark.parametrize(
    "extra",
    [
        {"n": 1},
        {"n": None},
        {"service_tier": "auto"},
        {"service_tier": "default"},
        {"parallel_tool_calls": True, "tools": TOOLS},
        {"stream": True, "stream_options": {"include_usage": False}},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"stream": True, "stream_options": None},
    ],
)
def test_values_that_change_nothing_are_accepted_and_not_forwarded(extra: dict[str, Any]) -> None:
    request = validate_chat_request(body(**extra))
    for name in ("n", "service_tier", "parallel_tool_calls", "stream_options"):
        assert name not in request.forward


def test_every_supported_parameter_is_forwarded() -> None:
    full = body(
        frequency_penalty=-2,
        presence_penalty=2,
        logit_bias={"50256": -100, "11": 100},
        logprobs=True,
        top_logprobs=20,
        max_tokens=10,
        max_completion_tokens=10,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        seed=-(2**63),
        stop=["a", "b", "c", "d"],
        temperature=0,
        top_p=1,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "lookup"}},
        user="u",
        metadata={"a": "b"},
        store=False,
        reasoning_effort="low",
    )
    request = validate_chat_request(full)
    assert request.forward == full
    assert request.max_completion_tokens == 10
    assert request.stream is False


def test_stream_usage_is_always_requested_upstream() -> None:
    plain = validate_chat_request(body(stream=True))
    assert plain.include_usage is False
    assert plain.upstream_body()["stream_options"] == {"include_usage": True}
    asked = validate_chat_request(body(stream=True, stream_options={"include_usage": True}))
    assert asked.include_usage is True
    assert "stream_options" not in validate_chat_request(body()).upstream_body()


def test_nulls_are_accepted_and_dropped() -> None:
    request = validate_chat_request(body(temperature=None, tools=None, tool_choice=None, stop=None))
    assert request.forward == body()


def test_deprecated_functions_are_validated() -> None:
    request = validate_chat_request(body(functions=[{"name": "f"}], function_call={"name": "f"}))
    assert request.forward["function_call"] == {"name": "f"}


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"nul", b"\xff\xfe", b'{"temperature": NaN}', b"[" * 100_000 + b"]" * 100_000]
)
def test_malformed_json_is_400(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(raw)
    assert caught.value.code == "invalid_json"


@pytest.mark.parametrize("value", [[], "text", 1, None, True])
def test_body_must_be_an_object(value: Any) -> None:
    rejected(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
param_names = st.sampled_from(
    [
        "messages",
        "model",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "stop",
        "n",
        "stream",
        "stream_options",
        "response_format",
        "seed",
        "max_tokens",
        "service_tier",
        "parallel_tool_calls",
        "user",
        "unknown",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(param_names, json_values, max_size=8))
def test_any_body_is_accepted_or_a_400(value: dict[str, Any]) -> None:
    try:
        request = validate_chat_request(value)
    except InvalidRequest as error:
        assert error.status_code == 400
        json.dumps(error.to_dict())
    else:
        json.dumps(request.forward)
        assert request.model == value["model"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_parse_or_are_a_400(raw: bytes) -> None:
    try:
        parse_body(raw)
    except InvalidRequest as error:
        assert error.status_code == 400


# --- text that cannot be encoded --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\\udc80"}]}', "messages[0].content"),
        (b'{"model": "gpt-4o", "user": "a\\uD800b"}', "user"),
        (b'{"model": "gpt-4o", "metadata": {"\\udfff": "x"}}', "metadata"),
        (b'["\\ud83d"]', "[0]"),  # the high half of a pair, alone
    ],
)
def test_a_lone_surrogate_is_a_400_naming_where(raw: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(raw)
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_encoding"
    assert caught.value.param == param
    json.dumps(caught.value.to_dict()).encode("utf-8")  # the error itself is encodable


@pytest.mark.parametrize(
    "raw",
    [
        b'{"content": "\xff"}',
        b'{"content": "\xed\xb2\x80"}',  # a surrogate encoded as UTF-8 (CESU): not UTF-8
        b'{"content": "\xc3"}',  # truncated sequence
        b'{"content": "\xc0\xaf"}',  # overlong encoding
        "{}".encode("utf-16"),
    ],
)
def test_invalid_utf8_anywhere_is_a_400(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_body(raw)
    assert caught.value.code == "invalid_json"


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    assert parse_body(b'{"content": "\\ud83d\\ude00"}') == {"content": "\U0001f600"}
    assert parse_body(b'{"content": "\\\\ud800"}') == {"content": "\\ud800"}


# --- values from growing sets are checked for type only -------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"reasoning_effort": "none"},
        {"reasoning_effort": "xhigh"},
        {"reasoning_effort": "minimal"},
        {"verbosity": "low"},
        {"verbosity": "max"},
        {"modalities": ["text", "audio"]},
        {"modalities": ["video"]},
        {"messages": [{"role": "developer", "content": "be brief"}, *MESSAGES]},
        {"messages": [{"role": "critic", "content": "hi"}]},
        {"tools": [*TOOLS, {"type": "custom", "custom": {"name": "grammar"}}]},
        {"tools": [*TOOLS, {"type": "web_search"}]},
        {"tools": TOOLS, "tool_choice": {"type": "custom", "custom": {"name": "grammar"}}}
        | {"tools": [*TOOLS, {"type": "custom", "custom": {"name": "grammar"}}]},
        {
            "tools": TOOLS,
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "lookup"}}],
                },
            },
        },
        {
            "tools": TOOLS,
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        },
        {"tools": TOOLS, "tool_choice": {"type": "a_kind_added_later", "detail": 1}},
    ],
)
def test_values_openai_accepts_are_accepted(extra: dict[str, Any]) -> None:
    validate_chat_request(body(**extra))


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice.allowed_tools"),
        (
            {"tool_choice": {"type": "allowed_tools", "allowed_tools": {"tools": []}}},
            "tool_choice.allowed_tools.mode",
        ),
        (
            {"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": 1, "tools": []}}},
            "tool_choice.allowed_tools.mode",
        ),
        (
            {"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": ["x"]}}},
            "tool_choice.allowed_tools.tools[0]",
        ),
        ({"tool_choice": {"function": {"name": "lookup"}}}, "tool_choice.type"),
        ({"tool_choice": {"type": 5}}, "tool_choice.type"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_growing_sets_still_check_types_and_shapes(extra: dict[str, Any], param: str) -> None:
    assert rejected(body(**extra)).param == param


# --- the forwarding policy: issue 20's table -----------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"moderation": {"mode": "block"}},
        {"prompt_cache_retention": None},
        {"prompt_cache_retention": "24h"},
        {"prompt_cache_options": {"breakpoints": []}},
        {"a_field_openai_adds_next_year": {"any": ["shape"]}},
        {"modalities": ["text"] * 9},
        # Fields chatgate does not rely on are Azure's to judge, a wrong type included.
        {"reasoning_effort": 3},
        {"verbosity": ["low"]},
        {"modalities": "text"},
        {"metadata": "not an object"},
        {"store": "yes"},
    ],
)
def test_fields_chatgate_need_not_judge_are_forwarded_as_sent(extra: dict[str, Any]) -> None:
    request = validate_chat_request(body(**extra))
    for name, value in extra.items():
        if value is not None:
            assert request.forward[name] == value


@pytest.mark.parametrize(
    ("extra", "forwarded"),
    [
        ({"seed": 0.0}, {"seed": 0}),
        ({"n": 1.0}, {}),
        ({"max_tokens": 16.0}, {"max_tokens": 16}),
        ({"max_completion_tokens": 1e3}, {"max_completion_tokens": 1000}),
        ({"logprobs": True, "top_logprobs": 2.0}, {"logprobs": True, "top_logprobs": 2}),
        ({"logit_bias": {"50256": -100.0}}, {"logit_bias": {"50256": -100}}),
    ],
)
def test_an_integer_with_a_zero_fraction_is_an_integer(
    extra: dict[str, Any], forwarded: dict[str, Any]
) -> None:
    request = validate_chat_request(body(**extra))
    assert request.forward == body(**forwarded)
    for value in request.forward.values():
        assert not isinstance(value, float)  # sent to Azure as the integer the client meant
    if "max_tokens" in extra or "max_completion_tokens" in extra:
        assert isinstance(request.max_completion_tokens, int)


def test_no_bound_of_chatgates_own() -> None:
    huge = 6_227_020_800
    assert validate_chat_request(body(max_completion_tokens=huge)).max_completion_tokens == huge
    assert validate_chat_request(body(max_tokens=2**70)).max_completion_tokens == 2**70
    many = [{"role": "user", "content": "hi"}] * 100_001
    assert len(validate_chat_request(body(messages=many)).forward["messages"]) == 100_001
