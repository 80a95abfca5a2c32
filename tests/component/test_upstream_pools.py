"""Upstream pools end to end: the EU region's upstream is two emulated Azure resources ("sweden", priority 1,
then "france", priority 2); the US region keeps its own single resource. Each test makes one resource
throttle, fail or vanish and checks what the client sees, which resources were called, and what the access
log and the metrics line say."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.cli import create_key
from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from chatgate.gateway.settlement import utc_day
from chatgate.settings import Settings
from chatgate.stores.usage_dynamodb import DynamoDBUsageStore
from chatgate.upstream.pool import PoolHealth
from tests.conftest import Stack
from tests.support import dynalite as dl
from tests.support.emf import emf_records
from tests.support.servers import serve

POOL_KEYS = {"sweden": "azure-key-sweden", "france": "azure-key-france"}


@pytest.fixture(scope="module")
def eu_pool() -> Iterator[dict[str, RunningEmulator]]:
    running = {
        name: start_emulator(EmulatorState(api_key=key, name=f"azure-eu-{name}"))
        for name, key in POOL_KEYS.items()
    }
    yield running
    for emulator in running.values():
        emulator.stop()


def resource(name: str, url: str, priority: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "endpoint": url, "api_key": POOL_KEYS.get(name, "k"), "priority": priority, **extra}


@pytest.fixture
def pool(stack: Stack, eu_pool: dict[str, RunningEmulator]) -> dict[str, EmulatorState]:
    """The EU pool (sweden first, then france), every emulator reset."""
    for emulator in eu_pool.values():
        emulator.state.reset()
    stack.put_upstream(
        "eu",
        {
            "resources": [
                resource("sweden", eu_pool["sweden"].url, 1),
                resource("france", eu_pool["france"].url, 2),
            ]
        },
    )
    return {name: emulator.state for name, emulator in eu_pool.items()}


class Gateway:
    def __init__(self, url: str, app: Any, key: str) -> None:
        self.url, self.app, self.key = url, app, key

    @property
    def pools(self) -> PoolHealth:
        pools: PoolHealth = self.app.state.services.pools
        return pools

    def chat(self, content: str = "hi", region: str = "eu", **body: Any) -> httpx.Response:
        payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **body}
        return httpx.post(
            f"{self.url}/openai/{region}/v1/chat/completions",
            json=payload,
            headers={"authorization": f"Bearer {self.key}"},
            timeout=30,
        )


@pytest.fixture
def gateway(stack: Stack, pool: dict[str, EmulatorState]) -> Iterator[Gateway]:
    app = create_app(stack.settings)
    with serve(app) as url:
        yield Gateway(url, app, stack.key)


def answered_by(response: httpx.Response) -> str:
    """Which emulator wrote the answer (each names itself in its reply)."""
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"]).split("(azure-eu-")[1].split(")")[0]


def access_attempts(caplog: pytest.LogCaptureFixture) -> list[list[tuple[str, object]]]:
    """The `attempts` of each access log line: (resource, status) in order."""
    lines = [r for r in caplog.records if r.name == "chatgate.access"]
    return [
        [(a["resource"], a["status"]) for a in getattr(r, "fields", {}).get("attempts", [])] for r in lines
    ]


def no_resource_in(response: httpx.Response) -> None:
    """Resource names and endpoints are internal: never in a header the client gets."""
    for name, value in response.headers.items():
        assert "sweden" not in value and "france" not in value and "127.0.0.1" not in value, (name, value)


def test_a_429_fails_over_and_the_throttled_resource_is_skipped_until_its_retry_after(
    gateway: Gateway,
    pool: dict[str, EmulatorState],
    stack: Stack,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="chatgate.access")
    pool["sweden"].fail_status, pool["sweden"].retry_after_s = 429, 7

    first = gateway.chat()
    assert answered_by(first) == "france"
    no_resource_in(first)
    assert first.headers["x-ratelimit-remaining-requests"] == "499"  # one reservation for two attempts
    assert access_attempts(caplog)[-1] == [("sweden", 429), ("france", 200)]
    [line] = emf_records(capfd.readouterr().out)
    assert (line["Resource"], line["UpstreamAttempts"], line["Failovers"], line["CoolingResources"]) == (
        "france",
        2,
        1,
        1,
    )
    # Azure's time spans both attempts (the 429 is not counted as the gateway's own time).
    [access] = [r for r in caplog.records if r.name == "chatgate.access"]
    attempted = sum(a["ms"] for a in access.fields["attempts"])  # type: ignore[attr-defined]
    assert line["UpstreamLatency"] >= attempted - 0.2

    # Sweden said 7 s: until then it is not called again, even though it comes first by priority.
    pool["sweden"].fail_status = None
    assert answered_by(gateway.chat()) == "france"
    assert len(pool["sweden"].requests) == 1
    assert access_attempts(caplog)[-1] == [("france", 200)]

    # Once its time has come (the instance's clock moved on 7 s), it serves again.
    real = gateway.pools.clock
    gateway.pools.clock = lambda: real() + 7.5
    assert answered_by(gateway.chat()) == "sweden"
    assert len(pool["sweden"].requests) == 2
    assert stack.upstream("us").requests == []  # the EU pool never reaches the US resource


def test_a_resource_that_refuses_connections_is_skipped_for_the_next(
    stack: Stack,
    pool: dict[str, EmulatorState],
    eu_pool: dict[str, RunningEmulator],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatgate.access")
    with socket.socket() as closed:  # a loopback port nobody listens on once closed
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    stack.put_upstream(
        "eu", {"resources": [resource("gone", dead, 1), resource("france", eu_pool["france"].url, 2)]}
    )
    app = create_app(stack.settings)
    with serve(app) as url:
        gateway = Gateway(url, app, stack.key)
        assert answered_by(gateway.chat()) == "france"
        assert access_attempts(caplog)[-1] == [("gone", "unreachable"), ("france", 200)]
        # Three failures in a row open its circuit: the fourth request goes straight to France.
        gateway.chat(), gateway.chat()
        assert answered_by(gateway.chat()) == "france"
        assert access_attempts(caplog)[-1] == [("france", 200)]
    assert len(pool["france"].requests) == 4


def test_a_stream_that_fails_after_its_first_event_ends_with_the_error_frame_and_no_failover(
    gateway: Gateway, pool: dict[str, EmulatorState]
) -> None:
    with httpx.stream(
        "POST",
        f"{gateway.url}/openai/eu/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "[[stream_error_after:1]]"}],
            "stream": True,
        },
        headers={"authorization": f"Bearer {gateway.key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
    events = [line[6:] for line in body.split("\n\n") if line.startswith("data: ")]
    chunks = [json.loads(event) for event in events]
    assert any(
        c.get("choices") and c["choices"][0]["delta"].get("content") for c in chunks[:-1]
    )  # relayed ...
    assert chunks[-1]["error"]["code"] == "upstream_error"  # ... so the failure ends the stream there
    assert len(pool["sweden"].requests) == 1
    assert pool["france"].requests == []


def test_a_stream_fails_over_before_its_first_event(gateway: Gateway, pool: dict[str, EmulatorState]) -> None:
    pool["sweden"].fail_status = 500
    with httpx.stream(
        "POST",
        f"{gateway.url}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"authorization": f"Bearer {gateway.key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
    assert "azure-eu-france" in body and body.endswith("data: [DONE]\n\n")
    assert len(pool["sweden"].requests) == 1


def test_a_400_is_never_tried_elsewhere(gateway: Gateway, pool: dict[str, EmulatorState]) -> None:
    refused = gateway.chat("[[content_filter]]")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "content_filter"
    assert pool["france"].requests == []


def test_a_pool_whose_every_resource_is_throttled_answers_429_without_calling_azure(
    gateway: Gateway, pool: dict[str, EmulatorState], stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    pool["sweden"].fail_status, pool["sweden"].retry_after_s = 429, 7
    pool["france"].fail_status, pool["france"].retry_after_s = 429, 3
    assert gateway.chat().status_code == 429  # both tried: France's 429 is passed on
    calls = len(pool["sweden"].requests) + len(pool["france"].requests)
    assert calls == 2

    refused = gateway.chat()
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "sweden" not in error["message"]
    assert refused.headers["retry-after"] == "3"  # France is back first
    assert 2000 < int(refused.headers["retry-after-ms"]) <= 3000
    assert len(pool["sweden"].requests) + len(pool["france"].requests) == calls  # nothing sent to Azure
    assert stack.upstream("us").requests == []
    # Nothing was reserved for the refused request: the next admitted one sees 498 left of 500.
    pool["france"].fail_status = None
    real = gateway.pools.clock
    gateway.pools.clock = lambda: real() + 3.5
    served = gateway.chat()
    assert answered_by(served) == "france"
    assert served.headers["x-ratelimit-remaining-requests"] == "498"
    lines = emf_records(capfd.readouterr().out)
    exhausted = [line for line in lines if line.get("PoolExhausted") == 1]
    assert [line["status"] for line in exhausted] == [429, 429]
    assert all(line["Pool"] == "stack" and line["CoolingResources"] == 2 for line in exhausted)


def test_a_pool_whose_every_resource_is_failing_answers_503_once_their_circuits_open(
    gateway: Gateway, pool: dict[str, EmulatorState]
) -> None:
    pool["sweden"].fail_status = pool["france"].fail_status = 500
    for _ in range(3):  # three failures in a row each
        assert gateway.chat().status_code == 502
    calls = len(pool["sweden"].requests) + len(pool["france"].requests)
    assert calls == 6

    refused = gateway.chat()
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "upstream_unavailable"
    assert refused.headers["retry-after"] == "5"
    assert len(pool["sweden"].requests) + len(pool["france"].requests) == calls

    # After the open interval one request probes; Sweden has recovered and closes its circuit.
    pool["sweden"].fail_status = None
    real = gateway.pools.clock
    gateway.pools.clock = lambda: real() + 5.5
    assert answered_by(gateway.chat()) == "sweden"
    assert answered_by(gateway.chat()) == "sweden"


def test_responses_stay_on_the_resource_that_stored_them(
    gateway: Gateway, pool: dict[str, EmulatorState]
) -> None:
    headers = {"authorization": f"Bearer {gateway.key}"}
    base = f"{gateway.url}/openai/eu/v1/responses"
    pool["sweden"].fail_status = 429
    created = httpx.post(base, json={"model": "gpt-4o-mini", "input": "hello"}, headers=headers, timeout=30)
    assert created.status_code == 200, created.text
    response_id = created.json()["id"]
    assert pool["france"].stored_response_ids() == [response_id]

    # Sweden is healthy again and first by priority, but the conversation is France's.
    pool["sweden"].fail_status = None
    gateway.pools.clock = lambda: time.time() + 60
    sweden_calls = len(pool["sweden"].requests)
    follow = {"model": "gpt-4o-mini", "input": "and then?", "previous_response_id": response_id}
    assert httpx.post(base, json=follow, headers=headers, timeout=30).status_code == 200
    assert httpx.get(f"{base}/{response_id}", headers=headers, timeout=30).status_code == 200
    assert httpx.get(f"{base}/{response_id}/input_items", headers=headers, timeout=30).status_code == 200
    assert httpx.delete(f"{base}/{response_id}", headers=headers, timeout=30).status_code == 200
    assert len(pool["sweden"].requests) == sweden_calls


def test_a_byok_pool_fails_over_within_itself_and_never_to_the_stack(
    stack: Stack, pool: dict[str, EmulatorState], eu_pool: dict[str, RunningEmulator]
) -> None:
    import boto3

    from chatgate.dev import aws

    # acme's own pool is the same two emulators, which is all this test needs: the stack's EU pool is
    # replaced by a single resource that must never be called.
    acme_pool = {
        "resources": [
            resource("sweden", eu_pool["sweden"].url, 1),
            resource("france", eu_pool["france"].url, 1, weight=1),
        ]
    }
    aws.put_secret(boto3.client("secretsmanager"), stack.settings.byok_secret_name("acme", "eu"), acme_pool)
    stack.put_upstream("eu", {"endpoint": stack.emulators["us"].url, "api_key": "azure-key-us"})
    app = create_app(stack.settings)
    with serve(app) as url:
        acme = Gateway(url, app, stack.create_key("acme"))
        pool["sweden"].fail_status = pool["france"].fail_status = 429
        assert acme.chat().status_code == 429
        assert acme.chat().status_code == 429  # cooling: answered at once
        assert len(pool["sweden"].requests) == len(pool["france"].requests) == 1
        assert stack.upstream("us").requests == []  # never the stack's resource

        # A key refused by one of its own resources is the workspace's misconfiguration: no failover.
        pool["sweden"].fail_status = pool["france"].fail_status = None
        stack_key = dict(acme_pool["resources"][0], api_key="wrong", priority=1)
        aws.put_secret(
            boto3.client("secretsmanager"),
            stack.settings.byok_secret_name("acme", "eu"),
            {"resources": [stack_key, resource("france", eu_pool["france"].url, 2)]},
        )
        acme.pools.clock = lambda: time.time() + 60
        refused = acme.chat()
        assert refused.status_code == 502 and "acme" in refused.json()["error"]["message"]
        assert len(pool["france"].requests) == 1


def test_a_request_that_failed_over_is_charged_once_with_the_answer_s_usage(
    stack: Stack, pool: dict[str, EmulatorState], endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On dynalite (DynamoDB's atomic updates): one reservation, one usage record entry, France's usage."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    client = dl.client(endpoint)
    suffix = uuid.uuid4().hex[:8]
    table = dl.create_data_table(client, f"data-{suffix}")
    monkeypatch.setenv("CHATGATE_TABLE_NAME", table)
    monkeypatch.setenv("CHATGATE_CONTROL_TABLE_NAME", dl.create_control_table(client, f"control-{suffix}"))
    monkeypatch.setenv("CHATGATE_RATE_LIMIT_TABLE_NAME", dl.create_rate_limit_table(client, f"rl-{suffix}"))
    settings = Settings()
    key = create_key(settings, "acme", "pools")
    pool["sweden"].fail_status = 429
    app = create_app(settings)
    with serve(app) as url:
        gateway = Gateway(url, app, key)
        answer = gateway.chat(max_tokens=50)
        assert answered_by(answer) == "france"
        assert answer.headers["x-ratelimit-remaining-requests"] == "499"
        reserved = 60_000 - int(answer.headers["x-ratelimit-remaining-tokens"])
        streamed = httpx.post(
            f"{url}/openai/eu/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": 50,
            },
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert streamed.headers["x-ratelimit-remaining-requests"] == "498"
        [usage_chunk] = [
            json.loads(line[6:])["usage"]
            for line in streamed.text.split("\n\n")
            if line.startswith("data: {") and json.loads(line[6:]).get("usage")
        ]
    usage = answer.json()["usage"]
    # The first was charged France's usage once (its reservation corrected), the second reserved once.
    assert int(streamed.headers["x-ratelimit-remaining-tokens"]) == 60_000 - usage["total_tokens"] - reserved
    assert len(pool["sweden"].requests) == 1  # the stream skipped Sweden, cooling after its 429
    [record] = asyncio.run(DynamoDBUsageStore(client, table).records("acme", utc_day(), utc_day()))
    assert record.requests == 2
    assert record.prompt_tokens == usage["prompt_tokens"] + usage_chunk["prompt_tokens"]
    assert record.completion_tokens == usage["completion_tokens"] + usage_chunk["completion_tokens"]
    assert record.counted_requests == 0
    assert dict(record.resources) == {"france": (2, usage["total_tokens"] + usage_chunk["total_tokens"])}


def test_chatgate_dev_s_eu_pool_shows_a_failover(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What docs/upstreams.md tells a newcomer to try: `[[rate_limit:sweden]]` against chatgate dev."""
    from chatgate.dev.server import prepare

    monkeypatch.setenv("CHATGATE_SECRET_PREFIX", f"devpool-{uuid.uuid4().hex[:8]}")
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_ENDPOINT_EU", "AZURE_OPENAI_ENDPOINT_US"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO, logger="chatgate.access")
    dev = prepare({}, settings=Settings())
    try:
        sweden, france = dev.emulators["eu"].state, dev.emulators["eu-france"].state
        assert (sweden.name, france.name) == ("azure-eu-sweden", "azure-eu-france")
        app = create_app(dev.settings)
        with serve(app) as url:
            gateway = Gateway(url, app, dev.demo_key)
            assert answered_by(gateway.chat("Hello")) == "sweden"
            assert answered_by(gateway.chat("Hello [[rate_limit:sweden]]")) == "france"
            assert access_attempts(caplog)[-1] == [("sweden", 429), ("france", 200)]
            assert answered_by(gateway.chat("Hello")) == "france"  # Sweden cools down for its 7 s
            us = gateway.chat("Hello", region="us")
            assert us.status_code == 200 and "azure-us" in us.json()["choices"][0]["message"]["content"]
        assert len(sweden.requests) == 2 and len(france.requests) == 2
    finally:
        dev.close()
