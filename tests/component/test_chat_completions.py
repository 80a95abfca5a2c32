"""The gateway through the official OpenAI SDK (sync and async), served by uvicorn on loopback,
with AWS on moto and one Azure OpenAI emulator per region."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import Stack

CATS = [{"role": "user", "content": "Write a short poem about cats."}]


def client(gateway: str, key: str, region: str = "eu", prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}{prefix}/openai/{region}/v1", api_key=key, max_retries=0)


def test_seed_example_returns_azure_completion(gateway: str, stack: Stack) -> None:
    raw = client(gateway, stack.key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=CATS
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.object == "chat.completion"
    assert completion.model.startswith("gpt-4o-mini-")  # Azure's versioned model name
    assert completion.id.startswith("chatcmpl-")
    assert completion.system_fingerprint
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    extra = completion.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False


async def test_async_client_and_public_prefix(gateway: str, stack: Stack) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway}/api/public/openai/us/v1", api_key=stack.key, max_retries=0
    ) as async_client:
        completion = await async_client.chat.completions.create(model="gpt-4.1", messages=CATS)
    assert completion.choices[0].message.content
    assert len(stack.upstream("us").requests) == 1
    assert stack.upstream("eu").requests == []


def test_upstream_request_is_azure_shaped_and_stripped(gateway: str, stack: Stack) -> None:
    client(gateway, stack.key).chat.completions.create(
        model="gpt-4o",
        messages=CATS,
        n=1,
        service_tier="auto",
        parallel_tool_calls=True,
        temperature=0.5,
        user="someone",
    )
    eu, us = stack.upstream("eu"), stack.upstream("us")
    assert us.requests == []  # data residency: nothing reaches the other region
    [sent] = eu.requests
    assert sent.method == "POST"
    assert sent.path == "/openai/deployments/gpt-4o/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "azure-key-eu"
    assert "authorization" not in sent.headers  # the caller's chatgate key never leaves the gateway
    assert sent.body["temperature"] == 0.5 and sent.body["user"] == "someone"
    for stripped in ("n", "service_tier", "parallel_tool_calls", "stream_options"):
        assert stripped not in sent.body


def test_deployment_map_and_api_version_come_from_the_region_secret(gateway: str, stack: Stack) -> None:
    emulator = stack.emulators["us"]
    stack.put_upstream(
        "us",
        {
            "endpoint": emulator.url,
            "api_key": "azure-key-us",
            "api_version": "2025-01-01-preview",
            "deployments": {"gpt-4o": "prod-gpt4o"},
        },
    )
    client(gateway, stack.key, "us").chat.completions.create(model="gpt-4o", messages=CATS)
    [sent] = stack.upstream("us").requests
    assert sent.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert sent.query["api-version"] == "2025-01-01-preview"


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer", "Bearer not-a-chatgate-key", "Bearer cg_0123456789abcdef_wrong-secret"],
)
def test_bad_keys_are_401(gateway: str, stack: Stack, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": CATS},
        headers=headers,
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert response.headers["x-request-id"]
    assert stack.upstream("eu").requests == []


def test_sdk_authentication_error_and_revocation(gateway: str, stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(gateway, "cg_ffffffffffffffff_unknown").chat.completions.create(model="gpt-4o", messages=CATS)
    assert caught.value.code == "invalid_api_key"
    assert caught.value.request_id

    key = stack.create_key("acme", "ci")
    assert client(gateway, key).chat.completions.create(model="gpt-4o", messages=CATS).choices
    from chatgate.cli import main

    key_id = key.split("_")[1]
    assert main(["keys", "revoke", key_id]) == 0
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client(gateway, key).chat.completions.create(model="gpt-4o", messages=CATS)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"n": 2}, "n"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"extra_body": {"data_sources": [{"type": "azure_search", "parameters": {}}]}}, "data_sources"),
        ({"logit_bias": {"50256": 101}}, "logit_bias.50256"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_sdk_bad_request_names_the_param(gateway: str, stack: Stack, kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway, stack.key).chat.completions.create(model="gpt-4o", messages=CATS, **kwargs)
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"
    assert stack.upstream("eu").requests == []


def test_fields_chatgate_need_not_judge_reach_azure_as_sent(gateway: str, stack: Stack) -> None:
    """Issue 20's table: fields newer than chatgate, and integers written with a zero fraction."""
    extra = {
        "moderation": {"mode": "block"},
        "prompt_cache_retention": "24h",
        "prompt_cache_options": {"breakpoints": []},
        "modalities": ["text"] * 9,
        "a_field_openai_adds_next_year": {"nested": [1, "two"]},
    }
    answer = client(gateway, stack.key).chat.completions.create(
        model="gpt-4o",
        messages=CATS,
        seed=0.0,
        n=1.0,
        max_tokens=16.0,
        extra_body=extra,  # type: ignore[arg-type]
    )
    assert answer.choices
    sent = stack.upstream("eu").requests[-1].body
    assert {name: sent[name] for name in extra} == extra
    assert sent["seed"] == 0 and sent["max_tokens"] == 16 and "n" not in sent
    assert type(sent["seed"]) is int and type(sent["max_tokens"]) is int


def test_unknown_model_and_region_are_404(gateway: str, stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(gateway, stack.key).chat.completions.create(model="gpt-5-ultra", messages=CATS)
    assert caught.value.code == "model_not_found"
    assert "gpt-5-ultra" in caught.value.message

    with pytest.raises(openai.NotFoundError) as caught:
        client(gateway, stack.key, region="ap").chat.completions.create(model="gpt-4o", messages=CATS)
    assert "'eu'" in caught.value.message and "'us'" in caught.value.message


def test_content_filter_is_400_with_azure_details(gateway: str, stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway, stack.key).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[content_filter]] bad"}]
        )
    assert caught.value.code == "content_filter"
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["innererror"]["content_filter_result"]["hate"]["filtered"] is True


def test_upstream_429_passes_through_with_retry_headers(gateway: str, stack: Stack) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        client(gateway, stack.key).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[rate_limit]]"}]
        )
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["retry-after-ms"] == "7000"


def test_upstream_5xx_is_502(gateway: str, stack: Stack) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client(gateway, stack.key).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[server_error]]"}]
        )
    assert caught.value.status_code == 502
    assert "InternalServerError" not in caught.value.message  # no upstream internals leak


def test_unreachable_upstream_is_502(gateway: str, stack: Stack) -> None:
    stack.put_upstream("eu", {"endpoint": "http://127.0.0.1:9", "api_key": "x"})
    with pytest.raises(openai.InternalServerError) as caught:
        client(gateway, stack.key).chat.completions.create(model="gpt-4o", messages=CATS)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_error"


def test_upstream_timeout_is_504(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatgate.app import create_app
    from chatgate.settings import Settings
    from tests.support.servers import serve

    monkeypatch.setenv("CHATGATE_UPSTREAM_TIMEOUT_SECONDS", "0.3")
    with serve(create_app(Settings())) as url, pytest.raises(openai.APIStatusError) as caught:
        client(url, stack.key).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[slow:2000]] hi"}]
        )
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"


def test_wrong_upstream_credentials_are_not_the_callers_fault(gateway: str, stack: Stack) -> None:
    stack.put_upstream("eu", {"endpoint": stack.emulators["eu"].url, "api_key": "stale"})
    with pytest.raises(openai.InternalServerError) as caught:
        client(gateway, stack.key).chat.completions.create(model="gpt-4o", messages=CATS)
    assert caught.value.status_code == 502
