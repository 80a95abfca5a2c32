"""GET /openai/{region}/v1/models[/{model}] at the HTTP edge (in-memory adapters): OpenAI's shape, the
caller's own list, and errors in the contract's shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from tests.fakes import fake_services

OWN = {
    "endpoint": "https://acme.openai.azure.com",
    "api_key": "k",
    "deployments": {"gpt-4o": "d", "acme-ft": "f"},
}


@pytest.fixture
def edge() -> Any:
    services, keys, sent = fake_services(secrets={"chatgate/byok/acme/eu": OWN})
    transport = httpx.ASGITransport(app=create_app(services=services))

    def client(workspace: str) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {keys.add(workspace)}"}
        return httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers)

    return client, services.settings, sent


@pytest.mark.parametrize("prefix", ["", "/api/public"])
async def test_the_list_is_openai_shaped_and_the_stacks_by_default(edge: Any, prefix: str) -> None:
    client, settings, sent = edge
    response = await client("globex").get(f"{prefix}/openai/eu/v1/models")
    assert response.status_code == 200 and response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == list(settings.allowed_models)
    gpt4o = next(m for m in body["data"] if m["id"] == "gpt-4o")
    assert gpt4o == {"id": "gpt-4o", "object": "model", "created": 1715558400, "owned_by": "chatgate"}
    assert sent == []  # nothing reaches Azure


async def test_a_byok_workspace_sees_its_own_list_in_that_region_only(edge: Any) -> None:
    client, settings, _ = edge
    acme = client("acme")
    eu = (await acme.get("/openai/eu/v1/models")).json()["data"]
    assert eu == [
        {"id": "gpt-4o", "object": "model", "created": 1715558400, "owned_by": "acme"},
        {"id": "acme-ft", "object": "model", "created": 0, "owned_by": "acme"},
    ]
    us = (await acme.get("/openai/us/v1/models")).json()["data"]
    assert [m["id"] for m in us] == list(settings.allowed_models)


async def test_retrieve_and_unknown_models(edge: Any) -> None:
    client, _, _ = edge
    acme = client("acme")
    response = await acme.get("/openai/eu/v1/models/acme-ft")
    assert response.json() == {"id": "acme-ft", "object": "model", "created": 0, "owned_by": "acme"}
    response = await acme.get("/openai/eu/v1/models/gpt-4.1")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "The model `gpt-4.1` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


async def test_models_need_a_key_and_a_served_region(edge: Any) -> None:
    client, _, _ = edge
    anonymous = httpx.AsyncClient(transport=client("x")._transport, base_url="http://gateway")
    response = await anonymous.get("/openai/eu/v1/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    response = await client("acme").get("/openai/apac/v1/models")
    assert response.status_code == 404 and response.json()["error"]["code"] == "region_not_found"
    response = await client("acme").post("/openai/eu/v1/models", json={})
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
