"""The emulator's Responses API (Azure's v1 surface), over a real loopback socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator

KEY = "test-key"
RESPONSES = "/openai/v1/responses"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    running = start_emulator(EmulatorState(api_key=KEY, name="responses-emulator"))
    yield running
    running.stop()


@pytest.fixture
def state(emulator: RunningEmulator) -> Iterator[EmulatorState]:
    emulator.state.reset()
    yield emulator.state
    emulator.state.deployments = None


@pytest.fixture
def client(emulator: RunningEmulator, state: EmulatorState) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers={"api-key": KEY}, timeout=5.0) as http:
        yield http


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a typed SSE body."""
    assert body.endswith("\n\n")
    pairs = []
    for frame in body[:-2].split("\n\n"):
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), frame
        pairs.append((name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return pairs


def test_create_returns_a_stored_response_with_usage(client: httpx.Client) -> None:
    response = client.post(
        RESPONSES, json={"model": "gpt-4o-mini", "input": "Write a short poem about cats."}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "response" and body["id"].startswith("resp_")
    assert body["status"] == "completed" and body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["store"] is True and body["error"] is None and body["incomplete_details"] is None
    [message] = body["output"]
    assert (
        message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    )
    [part] = message["content"]
    assert part["type"] == "output_text" and "whiskers" in part["text"].lower()
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert response.headers["x-request-id"]

    again = client.get(f"{RESPONSES}/{body['id']}")
    assert again.status_code == 200 and again.json() == body


def test_input_items_delete_and_not_found(client: httpx.Client) -> None:
    created = client.post(
        RESPONSES,
        json={
            "model": "gpt-4o",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
            ],
        },
    ).json()
    rid = created["id"]
    items = client.get(f"{RESPONSES}/{rid}/input_items").json()
    assert items["object"] == "list" and items["has_more"] is False
    assert [i["role"] for i in items["data"]] == ["user", "assistant", "user"][::-1]  # newest first
    assert items["data"][0]["content"] == [{"type": "input_text", "text": "second"}]
    assert items["first_id"] == items["data"][0]["id"] and items["last_id"] == items["data"][-1]["id"]
    page = client.get(f"{RESPONSES}/{rid}/input_items", params={"order": "asc", "limit": 2}).json()
    assert [i["role"] for i in page["data"]] == ["user", "assistant"] and page["has_more"] is True
    rest = client.get(f"{RESPONSES}/{rid}/input_items", params={"order": "asc", "after": page["last_id"]})
    assert [i["role"] for i in rest.json()["data"]] == ["user"]

    deleted = client.delete(f"{RESPONSES}/{rid}")
    assert deleted.json() == {"id": rid, "object": "response", "deleted": True}
    for call in (client.get(f"{RESPONSES}/{rid}"), client.delete(f"{RESPONSES}/{rid}")):
        assert call.status_code == 404
        assert call.json()["error"]["message"] == f"Response with id '{rid}' not found."


def test_store_false_is_not_kept(client: httpx.Client) -> None:
    body = client.post(RESPONSES, json={"model": "gpt-4o", "input": "hi", "store": False}).json()
    assert body["store"] is False
    assert client.get(f"{RESPONSES}/{body['id']}").status_code == 404


def test_previous_response_id_continues_the_conversation(client: httpx.Client) -> None:
    first = client.post(RESPONSES, json={"model": "gpt-4o", "input": "My name is Ada."}).json()
    second = client.post(
        RESPONSES, json={"model": "gpt-4o", "input": "What is my name?", "previous_response_id": first["id"]}
    ).json()
    assert second["previous_response_id"] == first["id"]
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"] + first["usage"]["output_tokens"]
    missing = client.post(
        RESPONSES, json={"model": "gpt-4o", "input": "x", "previous_response_id": "resp_nope"}
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "previous_response_id"


def test_stream_has_the_typed_events_in_order(client: httpx.Client) -> None:
    response = client.post(RESPONSES, json={"model": "gpt-4o-mini", "input": "hello there", "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    pairs = events(response.text)
    assert all(name == data["type"] for name, data in pairs)
    assert [data["sequence_number"] for _, data in pairs] == list(range(len(pairs)))
    names = [name for name, _ in pairs]
    deltas = names.count("response.output_text.delta")
    assert deltas > 1
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    data = [d for _, d in pairs]
    assert data[0]["response"]["status"] == "in_progress" and data[0]["response"]["usage"] is None
    text = "".join(d["delta"] for d in data if d["type"] == "response.output_text.delta")
    assert text.startswith("Hello from the Azure OpenAI emulator") and data[-4]["text"] == text
    final = data[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == text
    assert final["usage"]["output_tokens"] > 0
    assert client.get(f"{RESPONSES}/{final['id']}").json() == final


def test_reasoning_model_reports_reasoning_tokens(client: httpx.Client) -> None:
    body = client.post(RESPONSES, json={"model": "o4-mini", "input": "think"}).json()
    assert [item["type"] for item in body["output"]] == ["reasoning", "message"]
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] > 0
    assert body["reasoning"]["effort"] == "medium"
    streamed = events(client.post(RESPONSES, json={"model": "o3-mini", "input": "x", "stream": True}).text)
    added = [d["item"]["type"] for n, d in streamed if n == "response.output_item.added"]
    assert added == ["reasoning", "message"]
    assert streamed[-1][1]["response"]["usage"]["output_tokens_details"]["reasoning_tokens"] > 0


def test_max_output_tokens_makes_it_incomplete(client: httpx.Client) -> None:
    request = {"model": "gpt-4o", "input": "[[words:50]]", "max_output_tokens": 16}
    body = client.post(RESPONSES, json=request).json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 16
    streamed = events(client.post(RESPONSES, json={**request, "stream": True}).text)
    assert streamed[-1][0] == "response.incomplete"
    assert streamed[-1][1]["response"]["usage"]["output_tokens"] == 16


def test_stream_error_ends_with_response_failed(client: httpx.Client, state: EmulatorState) -> None:
    text = client.post(
        RESPONSES, json={"model": "gpt-4o", "input": "[[words:20]] [[stream_error_after:3]]", "stream": True}
    ).text
    pairs = events(text)
    assert [n for n, _ in pairs].count("response.output_text.delta") == 3
    name, data = pairs[-1]
    assert name == "response.failed" and data["response"]["status"] == "failed"
    assert data["response"]["error"]["code"] == "server_error"
    assert data["response"]["usage"]["output_tokens"] > 0
    assert state.errored_streams == 1


@pytest.mark.parametrize(
    ("marker", "status", "code"),
    [
        ("[[content_filter]]", 400, "content_filter"),
        ("[[rate_limit]]", 429, "429"),
        ("[[server_error]]", 500, "InternalServerError"),
    ],
)
def test_error_markers(client: httpx.Client, marker: str, status: int, code: str) -> None:
    response = client.post(RESPONSES, json={"model": "gpt-4o", "input": marker, "stream": True})
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_auth_api_version_and_model_errors(
    emulator: RunningEmulator, client: httpx.Client, state: EmulatorState
) -> None:
    url = emulator.url + RESPONSES
    body = {"model": "gpt-4o", "input": "hi"}
    assert httpx.post(url, json=body, headers={"authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.post(url, json=body, headers={"authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(url, json=body).status_code == 401
    dated = client.post(RESPONSES, params={"api-version": "2024-10-21"}, json=body)
    assert dated.status_code == 400
    assert client.post(RESPONSES, json={"input": "hi"}).json()["error"]["param"] == "model"
    state.deployments = {"chat": "gpt-4o-2024-08-06"}
    assert client.post(RESPONSES, json=body).json()["error"]["code"] == "DeploymentNotFound"
    assert client.get(f"{RESPONSES}/resp_unknown/input_items").status_code == 404


def test_the_openai_sdk_reads_every_shape(emulator: RunningEmulator, state: EmulatorState) -> None:
    sdk = openai.OpenAI(base_url=f"{emulator.url}/openai/v1", api_key=KEY, max_retries=0)
    created = sdk.responses.create(model="gpt-4o-mini", input="Write a short poem about cats.")
    assert "Whiskers" in created.output_text and created.usage is not None
    with sdk.responses.stream(model="gpt-4o-mini", input="hello", previous_response_id=created.id) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and final.previous_response_id == created.id
    assert sdk.responses.retrieve(created.id).output_text == created.output_text
    items = sdk.responses.input_items.list(final.id)
    assert [item.type for item in items] == ["message"]
    sdk.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(created.id)
