"""Streaming through a real socket: the gateway served by uvicorn on loopback, the Azure OpenAI emulator
behind it, clients reading with time-stamped arrivals (ASGI test transports buffer whole responses, so
they could not show that chunks are relayed as they come).

What the reconciliation step is told (the StreamOutcome) is captured by tests/support/outcomes.py.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from chatgate.app import create_app
from chatgate.cli import invoke_event
from chatgate.lambda_handler import make_handler
from chatgate.settings import Settings
from tests.conftest import EMULATOR_KEYS, Stack
from tests.support.outcomes import Outcomes, record_outcomes
from tests.support.servers import serve

EVENTS = Path(__file__).resolve().parents[2] / "events"
CATS = [{"role": "user", "content": "Write a short poem about cats."}]


def say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- helpers ----------------------------------------------------------------------------------------------


@dataclass
class Event:
    """One server-sent event as the client parsed it, stamped with its arrival time."""

    at: float
    data: Any  # parsed JSON, or "[DONE]"

    @property
    def content(self) -> str | None:
        if not isinstance(self.data, dict):
            return None
        for choice in self.data.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                return str(delta["content"])
        return None


@dataclass
class Received:
    started: float
    response: httpx.Response
    events: list[Event]
    raw: bytes

    @property
    def contents(self) -> list[Event]:
        return [event for event in self.events if event.content]

    @property
    def text(self) -> str:
        return "".join(event.content or "" for event in self.events)


def read_sse(response: httpx.Response, started: float, stop_after_contents: int | None = None) -> Received:
    """Read the body event by event as bytes arrive, noting when each complete event arrived."""
    received = Received(started, response, [], b"")
    for piece in response.iter_bytes():
        now = time.perf_counter()
        received.raw += piece
        frames = received.raw.split(b"\n\n")[:-1]  # the last piece is an incomplete event (or b"")
        for frame in frames[len(received.events) :]:
            assert frame.startswith(b"data: "), frame
            data = frame[len(b"data: ") :]
            received.events.append(Event(now, "[DONE]" if data == b"[DONE]" else json.loads(data)))
        if stop_after_contents is not None and len(received.contents) >= stop_after_contents:
            break
    return received


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def stream_request(
    http: httpx.Client,
    url: str,
    key: str,
    messages: list[dict[str, str]],
    *,
    stop_after_contents: int | None = None,
    **extra: Any,
) -> Received:
    """POST a streaming chat completion and read it; leaves the response open if stopped early."""
    body = {"model": "gpt-4o-mini", "messages": messages, "stream": True, **extra}
    started = time.perf_counter()
    request = http.build_request(
        "POST", f"{url}/openai/eu/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )
    response = http.send(request, stream=True)
    assert response.status_code == 200, response.read()
    received = read_sse(response, started, stop_after_contents)
    if stop_after_contents is None:
        response.close()
    return received


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=key, max_retries=0)


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> Outcomes:
    return record_outcomes(monkeypatch)


# --- no buffering -----------------------------------------------------------------------------------------


def test_client_gets_each_chunk_while_the_upstream_is_still_generating(
    gateway: str, stack: Stack, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = stack.upstream("eu")
    monkeypatch.setattr(upstream, "chunk_delay_s", 0.05)  # 8 words: the upstream takes >= 0.5 s to finish
    completed_at_first_word: list[int] = []
    body = {"model": "gpt-4o-mini", "messages": say("[[words:8]] go"), "stream": True}
    with http.stream(
        "POST",
        f"{gateway}/openai/eu/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {stack.key}", "accept-encoding": "gzip, deflate, br"},
    ) as response:
        events: list[Event] = []
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = Event(time.perf_counter(), line[6:] if line == "data: [DONE]" else json.loads(line[6:]))
            if event.content and not completed_at_first_word:
                completed_at_first_word.append(upstream.completed_streams)
            events.append(event)
        headers = response.headers

    contents = [event for event in events if event.content]
    assert len(contents) == 8
    assert completed_at_first_word == [0]  # the first word was here before Azure had finished
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(contents)]
    assert min(gaps) > 0.02, gaps  # each word arrived on its own, paced like the upstream
    assert contents[-1].at - contents[0].at > 0.3
    assert events[-1].data == "[DONE]"
    assert upstream.completed_streams == 1
    # headers that keep proxies from buffering, and no compression of the stream
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in headers
    assert "content-length" not in headers
    assert headers["x-request-id"].startswith("req_")


def test_azure_events_are_relayed_byte_for_byte(gateway: str, stack: Stack, http: httpx.Client) -> None:
    """Through the gateway or straight from Azure, the client reads the same bytes (ids and times aside),
    including Azure's first event (empty choices, prompt_filter_results) and its content-filter fields."""
    body = {
        "model": "gpt-4o-mini",
        "messages": CATS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    direct = http.post(
        f"{stack.emulators['eu'].url}/openai/deployments/gpt-4o-mini/chat/completions",
        params={"api-version": "2024-10-21"},
        headers={"api-key": EMULATOR_KEYS["eu"]},
        json=body,
    )
    through = stream_request(http, gateway, stack.key, CATS, stream_options={"include_usage": True})

    def normalised(raw: bytes) -> bytes:
        raw = re.sub(rb'"id":"chatcmpl-[A-Za-z0-9]+"', b'"id":"ID"', raw)
        return re.sub(rb'"created":[1-9][0-9]*', b'"created":T', raw)

    assert normalised(through.raw) == normalised(direct.content)
    assert through.raw.endswith(b"data: [DONE]\n\n")
    first = through.events[0].data
    assert first["choices"] == [] and first["id"] == ""
    assert first["prompt_filter_results"][0]["content_filter_results"]["jailbreak"]["detected"] is False
    assert through.contents[0].data["choices"][0]["content_filter_results"]["violence"]["filtered"] is False


# --- usage: always asked of Azure, forwarded only when the client asked ------------------------------------


def test_openai_sdk_stream_without_stream_options(gateway: str, stack: Stack, outcomes: Outcomes) -> None:
    client = sdk(gateway, stack.key)
    expected = client.chat.completions.create(model="gpt-4o-mini", messages=CATS)
    with client.chat.completions.create(model="gpt-4o-mini", messages=CATS, stream=True) as stream:
        chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(chunk.usage is None for chunk in chunks)  # the client did not ask for the usage chunk
    assert (chunks[0].model_extra or {})["prompt_filter_results"]
    # ...but chatgate asked Azure for it, and accounted with it
    assert stack.upstream("eu").requests[-1].body["stream_options"] == {"include_usage": True}
    outcome = outcomes.next()
    assert outcome.status == "completed"
    assert expected.usage is not None and outcome.usage is not None
    assert outcome.usage.total_tokens == expected.usage.total_tokens


def test_openai_sdk_stream_with_include_usage(gateway: str, stack: Stack) -> None:
    client = sdk(gateway, stack.key)
    expected = client.chat.completions.create(model="gpt-4o-mini", messages=CATS)
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=CATS, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and expected.usage is not None
    assert last.usage.prompt_tokens == expected.usage.prompt_tokens
    assert last.usage.completion_tokens == expected.usage.completion_tokens
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert sum(1 for chunk in chunks if chunk.usage is not None) == 1


async def test_async_openai_sdk_stream_with_include_usage_false(gateway: str, stack: Stack) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway}/openai/eu/v1", api_key=stack.key, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=say("[[words:5]] hi"),
            stream=True,
            stream_options={"include_usage": False},
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).split() == [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
    ]
    assert all(chunk.usage is None for chunk in chunks)


# --- errors before the first byte are plain HTTP errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "error_class", "status", "code"),
    [
        ("[[server_error]]", openai.InternalServerError, 502, "upstream_error"),
        ("[[rate_limit]]", openai.RateLimitError, 429, "rate_limit_exceeded"),
        ("[[content_filter]]", openai.BadRequestError, 400, "content_filter"),
    ],
)
def test_upstream_refusal_before_streaming_is_an_http_error(
    gateway: str, stack: Stack, trigger: str, error_class: type[openai.APIStatusError], status: int, code: str
) -> None:
    with pytest.raises(error_class) as caught:
        sdk(gateway, stack.key).chat.completions.create(
            model="gpt-4o-mini", messages=say(f"{trigger} hi"), stream=True
        )
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert caught.value.response.headers["content-type"].startswith("application/json")


# --- failures after the first byte: one error event, then a clean end ---------------------------------------


def error_of(received: Received) -> dict[str, Any]:
    last = received.events[-1].data
    assert isinstance(last, dict) and set(last) == {"error"}, last
    error: dict[str, Any] = last["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert b"[DONE]" not in received.raw
    return error


def test_upstream_error_mid_stream(
    gateway: str, stack: Stack, http: httpx.Client, outcomes: Outcomes
) -> None:
    received = stream_request(http, gateway, stack.key, say("[[words:6]] [[stream_error_after:3]] go"))

    assert received.text == "the quick brown"
    error = error_of(received)
    assert error["type"] == "server_error" and error["code"] == "upstream_error"
    assert "InternalServerError" not in error["message"]
    outcome = outcomes.next()
    assert outcome.status == "failed"
    assert "".join(outcome.relayed_text) == "the quick brown"
    assert stack.upstream("eu").errored_streams == 1


def test_openai_sdk_raises_the_mid_stream_error_after_the_text_so_far(gateway: str, stack: Stack) -> None:
    seen: list[str] = []
    stream = sdk(gateway, stack.key).chat.completions.create(
        model="gpt-4o-mini", messages=say("[[words:6]] [[stream_error_after:2]] go"), stream=True
    )
    with stream, pytest.raises(openai.APIError, match="upstream failed while streaming"):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen.append(chunk.choices[0].delta.content)
    assert "".join(seen) == "the quick"


def test_upstream_connection_reset_mid_stream(
    gateway: str, stack: Stack, http: httpx.Client, outcomes: Outcomes
) -> None:
    received = stream_request(http, gateway, stack.key, say("[[words:6]] [[stream_reset_after:2]] go"))

    assert received.text == "the quick"
    error = error_of(received)  # the client's read ended normally: no protocol error, no hang
    assert error["code"] == "upstream_error"
    assert "streaming" in error["message"]
    outcome = outcomes.next()
    assert outcome.status == "failed"
    assert "".join(outcome.relayed_text) == "the quick"


def test_upstream_timeout_mid_stream_cancels_the_upstream(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, http: httpx.Client, outcomes: Outcomes
) -> None:
    monkeypatch.setenv("CHATGATE_UPSTREAM_TIMEOUT_SECONDS", "0.3")
    upstream = stack.upstream("eu")
    monkeypatch.setattr(upstream, "chunk_delay_s", 5.0)  # Azure goes silent after its first event
    with serve(create_app(Settings())) as gateway:
        started = time.perf_counter()
        received = stream_request(http, gateway, stack.key, CATS)
        elapsed = time.perf_counter() - started

    assert "prompt_filter_results" in received.events[0].data  # the first byte had been sent
    error = error_of(received)
    assert error["type"] == "server_error" and error["code"] == "upstream_timeout"
    assert elapsed < 4.5  # the 0.3 s read timeout ended it, not Azure's next event 5 s later
    assert upstream.wait_for(lambda state: state.cancelled_streams == 1, timeout=2.0)
    assert outcomes.next().status == "failed"


# --- the client goes away ---------------------------------------------------------------------------------


def test_client_disconnect_cancels_the_upstream_promptly(
    gateway: str, stack: Stack, http: httpx.Client, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = stack.upstream("eu")
    monkeypatch.setattr(upstream, "chunk_delay_s", 0.02)  # 300 words: ~6 s unless stopped
    received = stream_request(http, gateway, stack.key, say("[[words:300]] go"), stop_after_contents=3)
    received.response.close()

    # Cancelled within 2 s of the client leaving, of a stream that had ~6 s to go: no tokens for nobody
    # (the milliseconds are measured in bench/streaming_bench.py, not asserted on a shared machine).
    assert upstream.wait_for(lambda state: state.cancelled_streams == 1, timeout=2.0)
    assert upstream.completed_streams == 0
    outcome = outcomes.next()
    assert outcome.status == "disconnected"
    assert outcome.usage is None  # Azure never sent it: reconciliation counts the partial text
    streamed = "".join(outcome.relayed_text)
    assert streamed.startswith(received.text)  # at least what the client saw, at most a few words more
    assert len(streamed.split()) < 10


def test_openai_sdk_closing_the_stream_early_cancels_the_upstream(
    gateway: str, stack: Stack, outcomes: Outcomes, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = stack.upstream("eu")
    monkeypatch.setattr(upstream, "chunk_delay_s", 0.02)
    with sdk(gateway, stack.key).chat.completions.create(
        model="gpt-4o-mini", messages=say("[[words:300]] go"), stream=True
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break  # the user stops reading; leaving the block closes the response

    assert upstream.wait_for(lambda state: state.cancelled_streams == 1, timeout=2.0)
    assert outcomes.next().status == "disconnected"


# --- the Lambda handler (buffered mode) ---------------------------------------------------------------------


def test_stream_event_through_the_lambda_handler_returns_the_buffered_sse_body(stack: Stack) -> None:
    event = json.loads((EVENTS / "chat_completions_stream.json").read_text())
    result = invoke_event(event, make_handler(create_app(stack.settings)))

    assert result["statusCode"] == 200, result["body"]
    headers = {k.lower(): v for k, v in result["headers"].items()}
    assert headers["content-type"].startswith("text/event-stream")
    assert result["isBase64Encoded"] is False
    body: str = result["body"]
    assert body.endswith("data: [DONE]\n\n")
    frames = body.split("\n\n")[:-1]
    assert all(frame.startswith("data: ") for frame in frames)
    chunks = [json.loads(frame[6:]) for frame in frames[:-1]]
    assert chunks[0]["prompt_filter_results"]
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    assert text.startswith("Soft paws")
    assert not any(chunk.get("usage") for chunk in chunks)  # the event did not ask for it


def test_streams_read_to_their_end_reuse_one_upstream_connection(stack: Stack) -> None:
    # Against real Azure a new connection per stream is a TLS handshake before every first token.
    app = create_app(stack.settings)
    with serve(app) as gateway:
        client = sdk(gateway, stack.key)
        for _ in range(3):
            with client.chat.completions.create(model="gpt-4o-mini", messages=CATS, stream=True) as stream:
                assert list(stream)
        transport = (
            app.state.services.http._transport
        )  # chatgate.upstream.transport, under the upstream client
        assert transport.connections_opened == 1
