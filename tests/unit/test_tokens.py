"""Prompt token counting: the model's real encoding, offline, with OpenAI's published chat formula."""

from __future__ import annotations

import socket

import pytest

from chatgate.limits import tokens

# The examples of OpenAI's cookbook "How to count tokens with tiktoken", with the prompt_tokens the API
# itself reported for them (129 for gpt-3.5-turbo / gpt-4, 124 for gpt-4o / gpt-4o-mini; with the weather
# tool: 105 and 101).
JARGON = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {
                    "type": "string",
                    "description": "The unit of temperature to return",
                    "enum": ["celsius", "fahrenheit"],
                },
            },
            "required": ["location"],
        },
    },
}
WEATHER_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Counting must work offline: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("token counting tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4", 129), ("gpt-35-turbo", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)]
)
def test_messages_match_the_prompt_tokens_the_api_reports(model, expected):
    assert tokens.count_prompt_tokens(model, {"model": model, "messages": JARGON}) == expected


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4", 105), ("gpt-35-turbo", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)]
)
def test_tool_definitions_match_the_prompt_tokens_the_api_reports(model, expected):
    body = {"messages": WEATHER_MESSAGES, "tools": [WEATHER_TOOL]}
    assert tokens.count_prompt_tokens(model, body) == expected


def test_deprecated_functions_count_like_tools():
    with_tools = tokens.count_prompt_tokens("gpt-4o", {"messages": WEATHER_MESSAGES, "tools": [WEATHER_TOOL]})
    body = {"messages": WEATHER_MESSAGES, "functions": [WEATHER_TOOL["function"]]}
    assert tokens.count_prompt_tokens("gpt-4o", body) == with_tools


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o1-preview", "o200k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("my-byok-deployment", "o200k_base"),
    ],
)
def test_each_model_uses_its_own_encoding(model, encoding):
    assert tokens.encoding_for(model).name == encoding


def test_the_two_encodings_really_differ():
    text = {"messages": [{"role": "user", "content": "お誕生日おめでとう, antidisestablishmentarianism"}]}
    assert tokens.count_prompt_tokens("gpt-4o", text) != tokens.count_prompt_tokens("gpt-4", text)


def test_text_parts_count_like_a_string():
    encoding = tokens.encoding_for("gpt-4o")
    text, more = "Summarise the quarterly report", " in three bullet points."
    as_string = {"messages": [{"role": "user", "content": text}]}
    one_part = {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    two_parts = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": text}, {"type": "text", "text": more}]}
        ]
    }
    base = tokens.count_prompt_tokens("gpt-4o", as_string)
    assert base == 3 + tokens.count_text(encoding, "user") + tokens.count_text(encoding, text) + 3
    assert tokens.count_prompt_tokens("gpt-4o", one_part) == base
    assert tokens.count_prompt_tokens("gpt-4o", two_parts) == base + tokens.count_text(encoding, more)


def test_names_tool_calls_and_tool_results_are_counted():
    encoding = tokens.encoding_for("gpt-4o")
    arguments = '{"location": "Paris, France", "unit": "celsius"}'
    body = {
        "messages": [
            {"role": "user", "name": "alice", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_current_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"},
        ]
    }

    def n(text: str) -> int:
        return tokens.count_text(encoding, text)

    expected = (
        (3 + n("user") + n("alice") + 1 + n("Weather?"))
        + (3 + n("assistant") + 3 + n("get_current_weather") + n(arguments))
        + (3 + n("tool") + n("call_1") + n("18 degrees"))
        + 3
    )
    assert tokens.count_prompt_tokens("gpt-4o", body) == expected


def test_longer_arguments_cost_more():
    def body(arguments: str) -> dict:
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
        return {"messages": [{"role": "assistant", "tool_calls": [call]}]}

    short = tokens.count_prompt_tokens("gpt-4o", body('{"q": "a"}'))
    long = tokens.count_prompt_tokens("gpt-4o", body('{"q": "' + "lorem ipsum " * 50 + '"}'))
    assert long > short + 90


def test_images_are_estimated_by_detail():
    def body(detail: str) -> dict:
        part = {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": detail}}
        return {"messages": [{"role": "user", "content": [part]}]}

    assert tokens.count_prompt_tokens("gpt-4o", body("low")) == 3 + 1 + 85 + 3
    assert tokens.count_prompt_tokens("gpt-4o", body("high")) == 3 + 1 + 765 + 3


def test_special_token_text_in_content_is_counted_as_text():
    body = {"messages": [{"role": "user", "content": "<|endoftext|>"}]}
    assert tokens.count_prompt_tokens("gpt-4o", body) > 3 + 1 + 1 + 3


def test_preload_loads_once_and_is_shared_by_models():
    tokens.preload(["gpt-4o", "gpt-4"])
    assert tokens.encoding_for("gpt-4o") is tokens.encoding_for("o4-mini")
    assert tokens.encoding_for("gpt-4") is tokens.encoding_for("gpt-35-turbo")
