"""A cold instance's request waits for one round trip for its upstream and its limits, not two."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

from chatgate.app import create_app
from chatgate.limits.ratelimit import Limits
from tests.fakes import fake_services

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def test_the_upstream_and_the_limits_are_looked_up_at_once() -> None:
    services, keys, sent = fake_services()
    key = keys.add("acme")
    in_flight: list[str] = []
    both_in_flight = asyncio.Event()

    async def arrive(what: str) -> None:
        in_flight.append(what)
        if {"secret", "limits"} <= set(in_flight):
            both_in_flight.set()
        await asyncio.wait_for(both_in_flight.wait(), timeout=5)  # times out if looked up one by one

    secrets, limits_store = services.upstreams._secrets, services.workspaces._store
    read_secret, read_limits = secrets.get_json, limits_store.get_limits

    async def get_json(name: str) -> Mapping[str, Any] | None:
        await arrive("secret")
        return await read_secret(name)

    async def get_limits(workspace_id: str) -> dict[str, Limits]:
        await arrive("limits")
        return await read_limits(workspace_id)

    secrets.get_json, limits_store.get_limits = get_json, get_limits  # type: ignore[method-assign]
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/openai/eu/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200, response.text
    assert len(sent) == 1 and {"secret", "limits"} <= set(in_flight)
