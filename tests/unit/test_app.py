"""The HTTP edge with in-memory adapters: routing, error shapes, request ids, and no 500 for any body."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatgate.app import create_app
from tests.fakes import fake_services

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and isinstance(error["type"], str)
    return error


@pytest.fixture
def edge() -> Any:
    services, keys, sent = fake_services()
    key = keys.add("acme")
    transport = httpx.ASGITransport(app=create_app(services=services))
    client = httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"authorization": f"Bearer {key}"}
    )
    return client, sent


async def test_success_passes_azure_body_through_byte_for_byte(edge: Any) -> None:
    client, sent = edge
    response = await client.post("/openai/eu/v1/chat/completions", json=BODY)
    assert response.status_code == 200
    assert response.json()["model"] == "gpt-4o-2024-05-13"
    # An upstream secret without api_version: Azure's v1 surface, the deployment named in the body.
    assert str(sent[0].url) == "https://eu.azure.test/openai/v1/chat/completions"
    assert json.loads(sent[0].content)["model"] == "gpt-4o"


@pytest.mark.parametrize(
    "path", ["/openai/eu/v1/chat/completions", "/api/public/openai/us/v1/chat/completions"]
)
async def test_both_prefixes_serve(edge: Any, path: str) -> None:
    client, _ = edge
    assert (await client.post(path, json=BODY)).status_code == 200


async def test_unknown_region_names_the_valid_ones(edge: Any) -> None:
    client, sent = edge
    error = assert_error_shape(await client.post("/openai/apac/v1/chat/completions", json=BODY), 404)
    assert error["message"] == "Unknown region 'apac'. This endpoint serves: 'eu', 'us'."
    assert error["param"] == "region"
    assert sent == []


async def test_region_is_checked_before_the_key(edge: Any) -> None:
    client, _ = edge
    response = await client.post("/openai/apac/v1/chat/completions", json=BODY, headers={"authorization": ""})
    assert response.status_code == 404


async def test_unknown_path_and_method_are_openai_shaped(edge: Any) -> None:
    client, _ = edge
    assert_error_shape(await client.post("/v1/chat/completions", json=BODY), 404)
    assert_error_shape(await client.get("/openai/eu/v1/chat/completions"), 405)


async def test_oversized_body_is_400(edge: Any) -> None:
    client, sent = edge
    big = {**BODY, "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    error = assert_error_shape(await client.post("/openai/eu/v1/chat/completions", json=big), 400)
    assert error["code"] == "request_too_large"
    assert sent == []


async def test_unexpected_exception_is_a_generic_500_with_the_request_id() -> None:
    def explode(_request: httpx.Request) -> httpx.Response:
        raise RuntimeError("secret internal detail")

    services, keys, _ = fake_services(explode)
    key = keys.add("acme")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=services), raise_app_exceptions=False),
        base_url="http://gateway",
    ) as client:
        response = await client.post(
            "/openai/eu/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
        )
    error = assert_error_shape(response, 500)
    assert "secret internal detail" not in response.text
    assert response.headers["x-request-id"] in error["message"]


async def test_regions_come_from_settings() -> None:
    services, keys, _ = fake_services(CHATGATE_REGIONS="us")  # type: ignore[arg-type]
    key = keys.add("acme")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=services)), base_url="http://gateway"
    ) as client:
        response = await client.post(
            "/openai/eu/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
        )
    assert response.json()["error"]["message"] == "Unknown region 'eu'. This endpoint serves: 'us'."


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
            max_leaves=15,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"model": st.sampled_from(["gpt-4o", "nope", ""]), "messages": st.just(BODY["messages"])},
            optional={
                "temperature": st.floats() | st.text(max_size=3),
                "tools": st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=8)), max_size=2),
                "tool_choice": st.text(max_size=8) | st.dictionaries(st.text(max_size=8), st.none()),
                "stream_options": st.dictionaries(st.text(max_size=8), st.booleans()),
                "stream": st.booleans(),
            },
        ).map(lambda v: json.dumps(v).encode()),
    )
)
async def test_no_body_however_malformed_is_a_500(edge: Any, raw: bytes) -> None:
    client, _ = edge
    response = await client.post(
        "/openai/eu/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code < 500
    if response.status_code != 200:
        assert_error_shape(response, response.status_code)
