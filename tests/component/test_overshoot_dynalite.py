"""Charging what is really used, on DynamoDB semantics (dynalite), through the gateway:

- tokens beyond a reservation are charged to the window in which the request ends, so the next request
  feels them even when the request was admitted in a window that has closed;
- an abandoned stream of a model with hidden reasoning tokens is charged at least its reservation.

The limiter's clock is the test's (tests/support/clock.py): it moves only when the test moves it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.cli import create_key
from chatgate.limits import tokens
from chatgate.settings import Settings
from tests.conftest import Stack
from tests.support import dynalite as dl
from tests.support.clock import LimiterClock
from tests.support.outcomes import record_outcomes
from tests.support.servers import serve

TPM = 3000
WINDOW = 60
SMALL = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(
    stack: Stack, endpoint: str, clock: LimiterClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The gateway with its DynamoDB on dynalite (secrets on moto), a 3,000-token budget and a completion
    allowance of 10 tokens for requests that set no maximum."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    client = dl.client(endpoint)
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("CHATGATE_TABLE_NAME", dl.create_data_table(client, f"data-{suffix}"))
    monkeypatch.setenv("CHATGATE_CONTROL_TABLE_NAME", dl.create_control_table(client, f"control-{suffix}"))
    monkeypatch.setenv("CHATGATE_RATE_LIMIT_TABLE_NAME", dl.create_rate_limit_table(client, f"rl-{suffix}"))
    monkeypatch.setenv("CHATGATE_TPM_LIMIT", str(TPM))
    monkeypatch.setenv("CHATGATE_RATE_WINDOW_SECONDS", str(WINDOW))
    monkeypatch.setenv("CHATGATE_DEFAULT_COMPLETION_RESERVE", "10")
    with serve(create_app(Settings())) as url:
        yield url


def small_request(gateway: str, key: str, model: str = "gpt-4o") -> httpx.Response:
    body = {"model": model, "messages": SMALL, "max_completion_tokens": 5}
    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    return response


def reserve_of(model: str, messages: list[dict[str, str]], allowance: int) -> int:
    return tokens.count_prompt_tokens(model, {"messages": messages}) + allowance


def stream_into_the_next_window(
    gateway: str, key: str, body: dict[str, Any], clock: LimiterClock
) -> list[str]:
    """Stream `body`; once its first chunk has arrived, the limiter's clock moves one window on (the answer
    runs on into the next window). The `data:` payloads, `[DONE]` included."""
    with httpx.stream(
        "POST",
        f"{gateway}/openai/eu/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
    ) as stream:
        lines = stream.iter_lines()
        first = next(line for line in lines if line.startswith("data: {"))
        clock.start += WINDOW
        return [first[6:]] + [line[6:] for line in lines if line.startswith("data: ")]


def test_an_answer_that_runs_past_its_window_is_felt_by_the_next_request(
    gateway: str, stack: Stack, clock: LimiterClock
) -> None:
    key = create_key(Settings(), "acme", "test")
    messages = [{"role": "user", "content": "[[words:600]] tell me everything"}]
    body = {"model": "gpt-4o", "messages": messages, "stream": True}
    body["stream_options"] = {"include_usage": True}
    events = stream_into_the_next_window(gateway, key, body, clock)
    used = json.loads(events[-2])["usage"]["total_tokens"]
    reserved = reserve_of("gpt-4o", messages, 10)
    assert used > reserved + 500  # it overshot its reservation by far

    # The next request, in the window where the stream ended, sees the overshoot.
    after = small_request(gateway, key)
    next_reserved = reserve_of("gpt-4o", SMALL, 5)
    assert int(after.headers["x-ratelimit-remaining-tokens"]) == TPM - (used - reserved) - next_reserved


def test_an_overshoot_that_fills_the_window_refuses_the_next_request(
    gateway: str, stack: Stack, clock: LimiterClock
) -> None:
    key = create_key(Settings(), "acme", "test")
    messages = [{"role": "user", "content": "[[words:3500]] tell me everything"}]
    body = {"model": "gpt-4o", "messages": messages, "stream": True}
    assert stream_into_the_next_window(gateway, key, body, clock)[-1] == "[DONE]"
    refused = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": SMALL, "max_completion_tokens": 5},
        headers={"authorization": f"Bearer {key}"},
    )
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_an_abandoned_reasoning_stream_is_charged_its_reservation(
    gateway: str, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = record_outcomes(monkeypatch)
    # o3-mini needs Azure's v1 surface (or a dated version from 2024-12-01-preview on).
    v1 = {"endpoint": stack.emulators["eu"].url, "api_key": "azure-key-eu", "api_version": "v1"}
    stack.put_upstream("eu", v1)
    key = create_key(Settings(), "acme", "test")
    monkeypatch.setattr(stack.upstream("eu"), "chunk_delay_s", 0.02)
    messages = [{"role": "user", "content": "[[words:300]] think hard"}]
    body = {"model": "o3-mini", "messages": messages, "stream": True, "max_completion_tokens": 2000}
    with httpx.stream(
        "POST",
        f"{gateway}/openai/eu/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
    ) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():  # one visible token, then gone
            chunk = json.loads(line[6:]) if line.startswith("data: {") else {}
            if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                break
    assert outcomes.next(timeout=10).status == "disconnected"  # settled (the helper reports after it)
    monkeypatch.setattr(stack.upstream("eu"), "chunk_delay_s", 0.0)

    after = small_request(gateway, key, "o3-mini")
    reserved = reserve_of("o3-mini", messages, 2000)
    # The whole reservation stays charged: the hidden reasoning tokens Azure may have billed.
    expected = TPM - reserved - reserve_of("o3-mini", SMALL, 5)
    assert int(after.headers["x-ratelimit-remaining-tokens"]) == expected
