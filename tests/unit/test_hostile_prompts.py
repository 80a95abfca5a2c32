"""Pathological prompts through the whole app (in-memory adapters): a 4 MiB body is refused as larger
than the token limit once counting passes that limit, not after counting all of it; and a small request
beside it is served while it is counted."""

from __future__ import annotations

import asyncio
import base64
import json
import random

import httpx
import pytest

from chatgate.app import create_app
from chatgate.limits import tokenizer
from tests.fakes import fake_services

CAP = 4 * 1024 * 1024


def hostile_body(kind: str) -> bytes:
    rng = random.Random(3)
    text = {
        "base64": base64.b64encode(rng.randbytes(3 * CAP // 4 - 300)).decode(),
        "letters": "a" * (CAP - 300),
        "cjk": "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range((CAP - 300) // 3)),
        "spaces": " " * (CAP - 300),
    }[kind]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    return json.dumps(body, ensure_ascii=False).encode()


@pytest.fixture
def app_and_key():
    services, keys, sent = fake_services()
    return create_app(services=services), keys.add("acme"), sent


@pytest.mark.parametrize("kind", ["base64", "letters", "cjk"])
async def test_a_prompt_over_the_token_limit_is_refused_without_counting_all_of_it(
    app_and_key, kind, monkeypatch
):
    app, key, sent = app_and_key
    counted: list[int] = []
    original = tokenizer._encode_count
    monkeypatch.setattr(tokenizer, "_encode_count", lambda e, t: counted.append(len(t)) or original(e, t))
    raw = hostile_body(kind)
    assert len(raw) <= CAP
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        response = await client.post(
            "/openai/eu/v1/chat/completions",
            content=raw,
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "tokens"
    assert "retry-after" not in response.headers  # it can never fit
    assert sum(counted) < len(raw) // 4  # stopped soon after the 60,000-token limit
    assert sent == []


async def test_a_small_request_is_served_while_a_large_prompt_is_counted(app_and_key):
    app, key, _ = app_and_key
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    small = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        await client.post(
            "/openai/eu/v1/chat/completions", content=small, headers=headers
        )  # tokenizer loaded
        large = asyncio.create_task(
            client.post("/openai/eu/v1/chat/completions", content=hostile_body("spaces"), headers=headers)
        )
        served = await asyncio.wait_for(
            client.post("/openai/eu/v1/chat/completions", content=small, headers=headers), timeout=60
        )
        assert served.status_code == 200
        assert (await large).status_code in (200, 429)
