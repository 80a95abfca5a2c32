"""Rate limits as a client sees them through the gateway: headers, 429s, honest retry hints, SDK retries,
per-workspace overrides, and token reservations corrected to real usage (streams included).

The windows are shortened (CHATGATE_RATE_WINDOW_SECONDS) and the limiter's clock is the test's: it stands
still at the beginning of a window (so a busy machine can never push a test's requests into the next
window) and moves only when a test says so. Exactness under concurrency is proven against dynalite in
test_ratelimit_dynalite.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from chatgate.cli import main
from chatgate.limits import tokens
from tests.conftest import Stack
from tests.support.clock import LimiterClock

WINDOW = 2
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch, clock: LimiterClock) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("CHATGATE_RATE_WINDOW_SECONDS", str(WINDOW))
    monkeypatch.setenv("CHATGATE_RPM_LIMIT", "3")
    monkeypatch.setenv("CHATGATE_TPM_LIMIT", "2000")
    yield monkeypatch


def sdk(gateway: str, key: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=key, max_retries=retries)


def post(gateway: str, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HI, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def reserve_of(body: dict[str, object]) -> int:
    allowance = body.get("max_completion_tokens") or body.get("max_tokens") or 1024
    assert isinstance(allowance, int)
    return tokens.count_prompt_tokens("gpt-4o", body) + allowance


def test_headers_count_down_then_an_honest_429(
    limits: object, gateway: str, stack: Stack, clock: LimiterClock
) -> None:
    client = sdk(gateway, stack.key)
    seen = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI, max_tokens=20)
        seen.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-limit-tokens"] == "2000"
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert seen == ["2", "1", "0"]

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=20)
    error = caught.value
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    assert "Limit 3" in error.message and "try again in" in error.message
    headers = error.response.headers
    wait_ms = int(headers["retry-after-ms"])
    assert 0 < wait_ms <= WINDOW * 1000 + 20
    assert int(headers["retry-after"]) == -(-wait_ms // 1000)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert stack.upstream("eu").requests.__len__() == 3  # the refused request never reached Azure

    clock.start += wait_ms / 1000  # the hint is honest: retrying then succeeds
    assert client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=20).choices


def test_sdk_builtin_retries_succeed_once_the_window_allows(
    limits: pytest.MonkeyPatch, gateway: str, stack: Stack, clock: LimiterClock
) -> None:
    clock.run()  # real time from the start of a window: the SDK's retry waits for the next one
    client = sdk(gateway, stack.key, retries=3)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=5)
    started = time.monotonic()
    completion = client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=5)
    assert completion.choices
    assert time.monotonic() - started > 0.5  # it waited for the next window, then got in


def test_tokens_are_reserved_then_corrected_to_actual_usage(
    limits: object, gateway: str, stack: Stack
) -> None:
    body = {"model": "gpt-4o", "messages": HI, "max_tokens": 300}
    first = post(gateway, stack.key, max_tokens=300)
    assert first.status_code == 200
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 2000 - reserve_of(body)
    used = first.json()["usage"]["total_tokens"]
    assert used < reserve_of(body)
    # no wait: the request was settled before its response ended
    second = post(gateway, stack.key, max_tokens=300)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 2000 - used - reserve_of(body)


def test_the_tokens_limit_refuses_with_type_tokens(
    limits: pytest.MonkeyPatch, gateway: str, stack: Stack
) -> None:
    stack.upstream("eu").chunk_delay_s = 0.05
    with httpx.stream(
        "POST",
        f"{gateway}/openai/eu/v1/chat/completions",
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "[[words:50]]"}],
            "stream": True,
            "max_tokens": 1500,
        },
        headers={"authorization": f"Bearer {stack.key}"},
    ) as running:
        lines = running.iter_lines()  # keep a reference: a dropped iterator closes the connection
        next(lines)
        # While that stream runs, its 1,500-token allowance is held: a second one does not fit.
        refused = post(gateway, stack.key, max_tokens=1500)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert "Limit 2000" in error["message"]
    assert "retry-after" in refused.headers and "retry-after-ms" in refused.headers


def test_a_request_larger_than_the_limit_says_so_without_a_retry_hint(
    limits: object, gateway: str, stack: Stack
) -> None:
    refused = post(gateway, stack.key, max_tokens=5000)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "tokens" and "Request too large" in error["message"]
    assert "retry-after" not in refused.headers and "retry-after-ms" not in refused.headers
    assert stack.upstream("eu").requests == []


def test_upstream_failure_gives_the_tokens_back(limits: object, gateway: str, stack: Stack) -> None:
    refused = post(gateway, stack.key, messages=[{"role": "user", "content": "[[content_filter]]"}])
    assert refused.status_code == 400
    assert "x-ratelimit-remaining-requests" in refused.headers
    body = {"model": "gpt-4o", "messages": HI, "max_tokens": 10}
    after = post(gateway, stack.key, max_tokens=10)
    assert int(after.headers["x-ratelimit-remaining-tokens"]) == 2000 - reserve_of(body)
    assert after.headers["x-ratelimit-remaining-requests"] == "1"  # the failed request still counted


def test_streams_carry_headers_before_the_first_byte_and_are_reconciled(
    limits: object, gateway: str, stack: Stack
) -> None:
    client = sdk(gateway, stack.key)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HI, stream=True, max_tokens=400
    ) as response:
        assert response.headers["x-ratelimit-remaining-requests"] == "2"
        chunks = list(response.parse())
    assert chunks and all(chunk.usage is None for chunk in chunks)  # not asked for: not forwarded
    # no wait: the body ended only after the stream was settled
    body = {"model": "gpt-4o", "messages": HI, "max_tokens": 10}
    after = post(gateway, stack.key, max_tokens=10)
    remaining = int(after.headers["x-ratelimit-remaining-tokens"])
    # The stream's 400-token allowance was given back: only its real usage stays counted.
    reserved_stream = reserve_of({**body, "max_tokens": 400})
    assert 2000 - reserved_stream - reserve_of(body) < remaining < 2000 - reserve_of(body)


def test_a_disconnected_stream_is_reconciled_to_what_was_streamed(
    limits: object, gateway: str, stack: Stack
) -> None:
    stack.upstream("eu").chunk_delay_s = 0.02
    prompt = [{"role": "user", "content": "[[words:300]] go"}]
    with httpx.stream(
        "POST",
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": prompt, "stream": True},
        headers={"authorization": f"Bearer {stack.key}"},
    ) as response:
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
    assert stack.upstream("eu").wait_for(lambda state: state.cancelled_streams == 1)
    stack.upstream("eu").chunk_delay_s = 0
    time.sleep(0.5)  # the gateway settles once it has closed the upstream (a bound, not a measurement)
    body = {"model": "gpt-4o", "messages": HI, "max_tokens": 10}
    after = post(gateway, stack.key, max_tokens=10)
    remaining = int(after.headers["x-ratelimit-remaining-tokens"])
    prompt_tokens = tokens.count_prompt_tokens("gpt-4o", {"messages": prompt})
    # Reserved prompt + 1024; reconciled to the prompt plus the few words streamed before the disconnect.
    assert remaining > 2000 - reserve_of(body) - prompt_tokens - 100
    assert remaining < 2000 - reserve_of(body) - prompt_tokens


def test_workspace_overrides_apply_per_model(limits: object, gateway: str, stack: Stack) -> None:
    assert (
        main(
            [
                "workspaces",
                "limits",
                "set",
                "--workspace",
                "events",
                "--model",
                "gpt-4o",
                "--rpm",
                "7",
                "--tpm",
                "9000",
            ]
        )
        == 0
    )
    assert post(gateway, stack.key).headers["x-ratelimit-limit-requests"] == "7"
    assert post(gateway, stack.key).headers["x-ratelimit-limit-tokens"] == "9000"
    other = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HI},
        headers={"authorization": f"Bearer {stack.key}"},
    )
    assert other.headers["x-ratelimit-limit-requests"] == "3"
    assert main(["workspaces", "limits", "remove", "--workspace", "events", "--model", "gpt-4o"]) == 0
    assert post(gateway, stack.key).headers["x-ratelimit-limit-requests"] == "3"


def test_limits_are_per_workspace(limits: object, gateway: str, stack: Stack) -> None:
    other = stack.create_key("globex")
    for _ in range(3):
        assert post(gateway, stack.key).status_code == 200
    assert post(gateway, stack.key).status_code == 429
    assert post(gateway, other).status_code == 200  # another workspace has its own budget
    # ... and so has another model of the same workspace.
    assert post(gateway, stack.key, model="gpt-4o-mini").status_code == 200
