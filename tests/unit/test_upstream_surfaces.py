"""Azure's two surfaces: an upstream's `api_version` chooses v1 (the default) or a dated chat completions
URL; the Responses API is always called on v1."""

from __future__ import annotations

import json

import httpx
import pytest

from chatgate.errors import ChatgateError, UpstreamError
from chatgate.upstream.azure import AzureOpenAI, StoredResponseCall
from chatgate.upstream.config import AzureResource, UpstreamDirectory, UpstreamTarget
from tests.fakes import MemorySecrets


def target(api_version: str = "v1") -> UpstreamTarget:
    resource = AzureResource("https://r.azure.test", "k", api_version, {"gpt-4o": "dep-4o"})
    return UpstreamTarget("eu", "gpt-4o", resource, "dep-4o")


class Recorder:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response

    def client(self) -> AzureOpenAI:
        return AzureOpenAI(httpx.AsyncClient(transport=httpx.MockTransport(self)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "v1"),
        ("", "v1"),
        ("V1", "v1"),
        ("2024-10-21", "2024-10-21"),
        ("2025-04-01-preview", "2025-04-01-preview"),
    ],
)
def test_api_version_defaults_to_v1(value: str | None, expected: str) -> None:
    secret = {"endpoint": "https://r.azure.test/", "api_key": "k"}
    if value is not None:
        secret["api_version"] = value
    assert AzureResource.from_secret(secret).api_version == expected


async def test_an_unusable_api_version_is_a_misconfigured_upstream() -> None:
    secrets = MemorySecrets(
        {"up/eu": {"endpoint": "https://r.azure.test", "api_key": "k", "api_version": "latest?"}}
    )
    directory = UpstreamDirectory(secrets, models=("gpt-4o",), secret_name=lambda r: f"up/{r}")
    with pytest.raises(UpstreamError):
        await directory.resolve("eu", "acme", "gpt-4o")


async def test_v1_chat_completions_name_the_deployment_in_the_body() -> None:
    recorder = Recorder(httpx.Response(200, json={"usage": {"prompt_tokens": 1}}))
    await recorder.client().complete(target(), {"model": "gpt-4o", "messages": []})
    [sent] = recorder.requests
    assert str(sent.url) == "https://r.azure.test/openai/v1/chat/completions"
    assert json.loads(sent.content)["model"] == "dep-4o" and sent.headers["api-key"] == "k"


async def test_dated_chat_completions_keep_the_deployment_path() -> None:
    recorder = Recorder(httpx.Response(200, json={}))
    await recorder.client().complete(target("2025-01-01-preview"), {"model": "gpt-4o", "messages": []})
    [sent] = recorder.requests
    assert str(sent.url) == (
        "https://r.azure.test/openai/deployments/dep-4o/chat/completions?api-version=2025-01-01-preview"
    )
    assert json.loads(sent.content)["model"] == "gpt-4o"


@pytest.mark.parametrize("api_version", ["v1", "2024-10-21"])
async def test_responses_are_always_on_v1(api_version: str) -> None:
    usage = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
    recorder = Recorder(httpx.Response(200, json={"id": "resp_1", "usage": usage}))
    created = await recorder.client().create_response(target(api_version), {"model": "gpt-4o", "input": "hi"})
    assert created.usage == usage
    [sent] = recorder.requests
    assert str(sent.url) == "https://r.azure.test/openai/v1/responses"
    assert json.loads(sent.content) == {"model": "dep-4o", "input": "hi"}


async def test_response_stream_yields_typed_events() -> None:
    body = (
        'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n'
        ": keep-alive\n\n"
        'event: response.completed\ndata: {"type":"response.completed",\ndata: "sequence_number":1}\n\n'
    )
    recorder = Recorder(
        httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})
    )
    stream = await recorder.client().open_response_stream(target(), {"model": "gpt-4o", "stream": True})
    events = [event async for event in stream.events()]
    await stream.aclose()
    assert [e.event for e in events] == ["response.created", "response.completed"]
    assert json.loads(events[1].data) == {"type": "response.completed", "sequence_number": 1}


async def test_stored_response_calls_and_their_404() -> None:
    call = StoredResponseCall("eu", target().resource, "resp_1")
    recorder = Recorder(httpx.Response(200, json={"id": "resp_1"}))
    azure = recorder.client()
    await azure.stored_response(call, "GET")
    await azure.stored_response(call, "DELETE")
    await azure.stored_response(call, "GET", "/input_items", [("limit", "5")])
    assert [(r.method, str(r.url)) for r in recorder.requests] == [
        ("GET", "https://r.azure.test/openai/v1/responses/resp_1"),
        ("DELETE", "https://r.azure.test/openai/v1/responses/resp_1"),
        ("GET", "https://r.azure.test/openai/v1/responses/resp_1/input_items?limit=5"),
    ]
    missing = Recorder(
        httpx.Response(404, json={"error": {"message": "Response with id 'resp_1' not found."}})
    )
    with pytest.raises(ChatgateError) as caught:
        await missing.client().stored_response(call, "GET")
    assert caught.value.status_code == 404 and caught.value.to_dict()["error"]["code"] == "not_found"
