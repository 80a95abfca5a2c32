"""The emulator's two chat completions surfaces (dated and v1), and Azure's refusal of reasoning models on
dated API versions older than 2024-12-01-preview."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator

KEY = "test-key"
V1_CHAT = "/openai/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    running = start_emulator(EmulatorState(api_key=KEY, name="surfaces-emulator"))
    yield running
    running.stop()


@pytest.fixture
def client(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    emulator.state.reset()
    with httpx.Client(base_url=emulator.url, headers={"api-key": KEY}, timeout=5.0) as http:
        yield http
    emulator.state.deployments = None


def dated(deployment: str, api_version: str) -> str:
    return f"/openai/deployments/{deployment}/chat/completions?api-version={api_version}"


def test_v1_chat_completions_names_the_deployment_in_the_body(client: httpx.Client) -> None:
    response = client.post(V1_CHAT, json={"model": "gpt-4.1", "messages": MESSAGES})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4.1-2025-04-14"
    streamed = client.post(V1_CHAT, json={"model": "gpt-4.1", "messages": MESSAGES, "stream": True}).text
    assert streamed.endswith("data: [DONE]\n\n")


def test_v1_chat_completions_errors(emulator: RunningEmulator, client: httpx.Client) -> None:
    assert client.post(V1_CHAT, json={"messages": MESSAGES}).status_code == 400
    assert (
        client.post(
            V1_CHAT, params={"api-version": "2024-10-21"}, json={"model": "gpt-4o", "messages": MESSAGES}
        ).status_code
        == 400
    )
    bearer = httpx.post(
        emulator.url + V1_CHAT,
        json={"model": "gpt-4o", "messages": MESSAGES},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert bearer.status_code == 200
    emulator.state.deployments = {"chat": "gpt-4o-2024-08-06"}
    missing = client.post(V1_CHAT, json={"model": "gpt-4o", "messages": MESSAGES})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "DeploymentNotFound"


@pytest.mark.parametrize("deployment", ["o1-preview", "o3-mini", "o4-mini", "gpt-5-mini"])
@pytest.mark.parametrize("api_version", ["2024-10-21", "2024-06-01", "2024-09-01-preview"])
def test_reasoning_models_are_refused_on_older_dated_versions(
    client: httpx.Client, deployment: str, api_version: str
) -> None:
    response = client.post(dated(deployment, api_version), json={"messages": MESSAGES})
    assert response.status_code == 400
    name = deployment if deployment != "gpt-5-mini" else "gpt-5-mini"
    assert response.json() == {
        "error": {
            "code": "BadRequest",
            "message": f"Model {name} is enabled only for api versions 2024-12-01-preview and later",
        }
    }


@pytest.mark.parametrize("api_version", ["2024-12-01-preview", "2025-01-01-preview", "2025-04-01-preview"])
def test_reasoning_models_answer_on_newer_dated_versions_and_v1(
    client: httpx.Client, api_version: str
) -> None:
    assert client.post(dated("o3-mini", api_version), json={"messages": MESSAGES}).status_code == 200
    assert client.post(V1_CHAT, json={"model": "o3-mini", "messages": MESSAGES}).status_code == 200


def test_older_models_still_answer_on_older_dated_versions(client: httpx.Client) -> None:
    assert client.post(dated("gpt-4o", "2024-06-01"), json={"messages": MESSAGES}).status_code == 200


def test_the_openai_sdk_talks_to_the_v1_surface(emulator: RunningEmulator) -> None:
    sdk = openai.OpenAI(base_url=f"{emulator.url}/openai/v1", api_key=KEY, max_retries=0)
    completion = sdk.chat.completions.create(model="o4-mini", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content
