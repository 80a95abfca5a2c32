"""The Responses API body: the fields the gateway relies on are checked by type, everything else goes to
Azure as sent; input tokens are counted offline."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatgate.errors import InvalidRequest
from chatgate.gateway.responses_request import chat_usage, count_input_tokens, validate_responses_request
from chatgate.limits import tokens


def test_a_minimal_body_and_its_defaults() -> None:
    request = validate_responses_request({"model": "gpt-4o", "input": "hi", "user": None})
    assert (request.model, request.stream, request.store) == ("gpt-4o", False, True)
    assert request.previous_response_id is None and request.max_output_tokens is None
    assert request.forward == {"model": "gpt-4o", "input": "hi"}


def test_what_openai_accepts_is_forwarded_as_sent() -> None:
    body: dict[str, Any] = {
        "model": "o4-mini",
        "input": [
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"type": "some_future_item", "payload": {}},
        ],
        "instructions": "You are helpful.",
        "max_output_tokens": 500,
        "temperature": 0.2,
        "top_p": 1,
        "stream": True,
        "store": False,
        "previous_response_id": "resp_1",
        "tools": [{"type": "function", "name": "f", "parameters": {}}, {"type": "web_search_preview"}],
        "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}, "verbosity": "low"},
        "reasoning": {"effort": "xhigh", "summary": "auto"},
        "metadata": {"k": "v"},
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "abc",
        "truncation": "auto",
        "background": False,
    }
    request = validate_responses_request(body)
    assert request.forward == body
    assert request.stream and not request.store and request.max_output_tokens == 500
    assert request.previous_response_id == "resp_1"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": ""}, "model"),
        ({"model": 4}, "model"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": ["x"]}, "input[0]"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"model": "m", "input": [{"role": "user", "content": "a"}, {"id": "msg_1"}]}, "input[1]"),
        ({"model": "m", "input": [{"type": None, "id": "msg_1"}]}, "input[0]"),
        ({"model": "m", "instructions": {}}, "instructions"),
        ({"model": "m", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "max_output_tokens": 1.5}, "max_output_tokens"),
        ({"model": "m", "temperature": 2.5}, "temperature"),
        ({"model": "m", "top_p": -0.1}, "top_p"),
        ({"model": "m", "stream": "yes"}, "stream"),
        ({"model": "m", "store": 1}, "store"),
        ({"model": "m", "previous_response_id": 7}, "previous_response_id"),
        ({"model": "m", "tools": {}}, "tools"),
        ({"model": "m", "tools": [{"name": "f"}]}, "tools[0].type"),
        ({"model": "m", "tool_choice": 1}, "tool_choice"),
        ({"model": "m", "background": True}, "background"),
        ({"model": "m", "conversation": "conv_1"}, "conversation"),
        ({"model": "m", "conversation": {"id": "conv_1"}}, "conversation"),
        ({"model": "m", "data_sources": []}, "data_sources"),
    ],
)
def test_refusals_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_responses_request(body)
    assert caught.value.status_code == 400 and caught.value.to_dict()["error"]["param"] == param


@pytest.mark.parametrize(
    "extra",
    [
        {"text": "json"},
        {"reasoning": "high"},
        {"metadata": {"k": 1}},
        {"prompt_cache_retention": "24h"},
        {"prompt_cache_options": {"breakpoints": []}},
        {"moderation": {"mode": "block"}},
        {"truncation": "auto"},
        {"include": ["reasoning.encrypted_content"]},
        {"background": False},
        {"a_field_openai_adds_next_year": 1},
    ],
)
def test_fields_chatgate_need_not_judge_are_forwarded_as_sent(extra: dict[str, Any]) -> None:
    request = validate_responses_request({"model": "m", "input": "hi", **extra})
    assert request.forward == {"model": "m", "input": "hi", **extra}


def test_max_output_tokens_is_an_integer_without_a_bound_of_chatgates_own() -> None:
    request = validate_responses_request({"model": "m", "max_output_tokens": 16.0})
    assert request.max_output_tokens == 16 and request.forward["max_output_tokens"] == 16
    assert isinstance(request.forward["max_output_tokens"], int)
    huge = validate_responses_request({"model": "m", "max_output_tokens": 6_227_020_800})
    assert huge.max_output_tokens == 6_227_020_800


def test_not_an_object() -> None:
    with pytest.raises(InvalidRequest):
        validate_responses_request(["model"])


def test_input_tokens_follow_the_chat_formula() -> None:
    encoding = tokens.encoding_for("gpt-4o")
    text = "Write a short poem about cats."
    as_string = count_input_tokens("gpt-4o", {"input": text})
    assert as_string == tokens.REPLY_PRIMING + tokens.TOKENS_PER_MESSAGE + len(encoding.encode(text))
    as_item = count_input_tokens(
        "gpt-4o", {"input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}]}
    )
    assert as_item == as_string
    with_instructions = count_input_tokens("gpt-4o", {"input": text, "instructions": "Be brief."})
    assert with_instructions == as_string + tokens.TOKENS_PER_MESSAGE + len(encoding.encode("Be brief."))
    tool = {"type": "function", "name": "get_weather", "description": "Weather", "parameters": {}}
    assert count_input_tokens("gpt-4o", {"input": text, "tools": [tool]}) > as_string
    image = {"role": "user", "content": [{"type": "input_image", "image_url": "data:...", "detail": "low"}]}
    assert count_input_tokens("gpt-4o", {"input": [image]}) == 3 + 3 + tokens.IMAGE_LOW_DETAIL


def test_chat_usage_names() -> None:
    usage = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12, "output_tokens_details": {}}
    assert chat_usage(usage) == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert chat_usage(None) is None


@pytest.mark.parametrize(
    "body",
    [
        {"input": "word " * 40_000},
        {
            "input": [
                {"role": "user", "content": "word " * 20_000},
                {"role": "user", "content": "word " * 20_000},
            ]
        },
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": "word " * 5_000}] * 8}]},
        {"instructions": "word " * 40_000, "input": "hi"},
        {"input": [{"type": "function_call_output", "call_id": "c", "output": "word " * 40_000}]},
    ],
    ids=["string", "items", "parts", "instructions", "tool-output"],
)
def test_an_input_count_can_stop_once_past_the_callers_limit(body):
    """As for chat prompts: a hostile input is counted only until it passes the caller's token limit."""
    body = {"model": "gpt-4o", **body}
    full = count_input_tokens("gpt-4o", body)
    early = count_input_tokens("gpt-4o", body, stop_above=1000)
    assert 1000 < early < full
    assert count_input_tokens("gpt-4o", body, stop_above=full) == full


async def test_the_responses_adapter_counts_up_to_the_callers_limit():
    from chatgate.gateway.apis.responses import ResponsesApi

    api = ResponsesApi(ownership=None, workspace_id="acme", region="eu")  # type: ignore[arg-type]
    request = api.parse(json.dumps({"model": "gpt-4o", "input": "word " * 40_000}).encode())
    assert 1000 < await api.prompt_tokens(request, stop_above=1000) < await api.prompt_tokens(request)
