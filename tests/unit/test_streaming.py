"""EventStreamResponse driven directly: a fake upstream stream, a fake ASGI receive/send.

What is checked is what a client would see on the wire (the frames, in order, and how the body ends) and
what reconciliation is told (the StreamOutcome: status, usage, partial text), for every way a stream ends.
UpstreamStream (the Azure side) is checked on an httpx response with a scripted body.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import ServerSentEvent

from chatgate.errors import UpstreamTimeout
from chatgate.gateway import shutdown
from chatgate.gateway.apis.chat_completions import DONE, ChatCompletionsRelay
from chatgate.gateway.settlement import StreamOutcome
from chatgate.gateway.streaming import HEARTBEAT, EventStreamResponse
from chatgate.limits.tokens import TokenUsage
from chatgate.upstream.azure import UpstreamStream

# --- Azure-shaped payloads ------------------------------------------------------------------------------

SAFE = {"filtered": False, "severity": "safe"}
PROMPT_FILTER = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [
        {
            "prompt_index": 0,
            "content_filter_results": {
                "hate": SAFE,
                "jailbreak": {"filtered": False, "detected": False},
                "self_harm": SAFE,
                "sexual": SAFE,
                "violence": SAFE,
            },
        }
    ],
    "usage": None,
}
USAGE = {"completion_tokens": 3, "prompt_tokens": 11, "total_tokens": 14}
AZURE_USAGE = TokenUsage(prompt_tokens=11, completion_tokens=3, source="azure")


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "choices": [
            {
                "content_filter_results": {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE},
                "delta": delta,
                "finish_reason": finish_reason,
                "index": 0,
                "logprobs": None,
            }
        ],
        "created": 1730000000,
        "id": "chatcmpl-abc",
        "model": "gpt-4o-mini-2024-07-18",
        "object": "chat.completion.chunk",
        "system_fingerprint": "fp_0123456789",
        "usage": None,
    }


def usage_chunk() -> dict[str, Any]:
    return {**chunk({}), "choices": [], "usage": USAGE}


def raw(event: dict[str, Any]) -> bytes:
    """A payload as Azure frames it (compact JSON, its own key order)."""
    return json.dumps(event, separators=(",", ":")).encode()


ROLE = raw(chunk({"content": "", "refusal": None, "role": "assistant"}))
WORDS = [raw(chunk({"content": word})) for word in ("Soft", " paws", " tread")]
STOP = raw(chunk({}, "stop"))
FULL_STREAM = [raw(PROMPT_FILTER), ROLE, *WORDS, STOP, raw(usage_chunk())]


# --- fakes ----------------------------------------------------------------------------------------------

Step = bytes | BaseException | Callable[[], Any]


class FakeUpstream:
    """An UpstreamStream stand-in: yields events, raises exceptions, or runs a check between them; after
    the last step, Azure's `[DONE]` (unless `done=False`: the upstream closes the stream early)."""

    def __init__(self, steps: list[Step], *, done: bool = True) -> None:
        self.steps = steps
        self.done = done
        self.closed = 0

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        for step in self.steps:
            if isinstance(step, bytes):
                yield ServerSentEvent(data=step.decode())
            elif isinstance(step, BaseException):
                raise step
            else:
                result = step()
                if result is not None:
                    await result
        if self.done:
            yield ServerSentEvent(data="[DONE]")

    async def aclose(self) -> None:
        self.closed += 1


class FakeClient:
    """ASGI receive/send of a client: records what is sent; `disconnect()` makes receive report it."""

    def __init__(self, *, fail_writes_after: int | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.gone = anyio.Event()
        self.fail_writes_after = fail_writes_after
        self._request_sent = False

    async def receive(self) -> dict[str, Any]:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail_writes_after is not None and len(self.bodies) >= self.fail_writes_after:
            raise ConnectionResetError("client socket closed")
        self.messages.append(message)

    def disconnect(self) -> None:
        self.gone.set()

    @property
    def start(self) -> dict[str, Any]:
        assert self.messages[0]["type"] == "http.response.start"
        return self.messages[0]

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.start["headers"]}

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    @property
    def wire(self) -> bytes:
        return b"".join(m["body"] for m in self.bodies)

    def events(self) -> list[Any]:
        """The `data:` payloads as the client parses them (`[DONE]` kept as the string; comments
        skipped)."""
        frames = self.wire.split(b"\n\n")
        assert frames[-1] == b"", "the body must end with a complete event"
        payloads = []
        for frame in frames[:-1]:
            if frame.startswith(b":"):
                continue
            assert frame.startswith(b"data: ")
            data = frame[len(b"data: ") :]
            payloads.append("[DONE]" if data == b"[DONE]" else json.loads(data))
        return payloads

    @property
    def ended_cleanly(self) -> bool:
        """The last body message closed the response, and nothing came after it."""
        return bool(self.bodies) and self.bodies[-1].get("more_body") is False


async def run(
    upstream: FakeUpstream,
    client: FakeClient,
    *,
    include_usage: bool = False,
    headers: dict[str, str] | None = None,
    heartbeat_seconds: float = 15.0,
    max_seconds: float = 870.0,
) -> list[StreamOutcome]:
    outcomes: list[StreamOutcome] = []

    async def settle(outcome: StreamOutcome) -> None:
        outcomes.append(outcome)

    response = EventStreamResponse(
        upstream,  # type: ignore[arg-type]
        ChatCompletionsRelay(include_usage),
        headers=headers or {},
        settle=settle,
        heartbeat_seconds=heartbeat_seconds,
        max_seconds=max_seconds,
    )
    scope = {"type": "http", "state": {"request_id": "req_test"}}
    with anyio.fail_after(5):
        await response(scope, client.receive, client.send)
    return outcomes


# --- a stream that completes ----------------------------------------------------------------------------


async def test_every_event_is_forwarded_byte_for_byte_then_done() -> None:
    client = FakeClient()
    [outcome] = await run(FakeUpstream(list(FULL_STREAM)), client, include_usage=True)

    assert client.wire == b"".join(b"data: " + payload + b"\n\n" for payload in FULL_STREAM) + DONE
    assert client.ended_cleanly
    assert outcome.status == "completed"
    assert outcome.usage == AZURE_USAGE
    assert "".join(outcome.relayed_text) == "Soft paws tread"


async def test_azure_prompt_filter_chunk_and_content_filter_fields_reach_the_client() -> None:
    client = FakeClient()
    await run(FakeUpstream(list(FULL_STREAM)), client)

    first, role, *_ = client.events()
    assert first == PROMPT_FILTER  # empty choices, prompt_filter_results: not taken for a usage chunk
    assert role["choices"][0]["content_filter_results"]["hate"] == SAFE


async def test_stream_headers_stop_buffering_and_keep_the_apps_headers() -> None:
    client = FakeClient()
    await run(FakeUpstream(list(FULL_STREAM)), client, headers={"x-ratelimit-remaining-requests": "499"})

    assert client.start["status"] == 200
    headers = client.headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert headers["x-ratelimit-remaining-requests"] == "499"
    assert "content-length" not in headers


async def test_each_event_is_written_before_the_next_one_is_read() -> None:
    client = FakeClient()
    written_when_read: list[int] = []

    def note() -> None:
        written_when_read.append(len(client.bodies))

    steps: list[Step] = []
    for payload in FULL_STREAM:
        steps += [note, payload]
    await run(FakeUpstream(steps), client, include_usage=True)

    # Before reading event i, exactly the i events before it are already on the wire: nothing is held back.
    assert written_when_read == list(range(len(FULL_STREAM)))


async def test_usage_chunk_is_withheld_unless_the_client_asked_but_still_reported() -> None:
    client = FakeClient()
    [outcome] = await run(FakeUpstream(list(FULL_STREAM)), client, include_usage=False)

    events = client.events()
    assert events[-1] == "[DONE]"
    assert all(event == "[DONE]" or event["choices"] or "prompt_filter_results" in event for event in events)
    assert not any(isinstance(event, dict) and event.get("usage") for event in events)
    assert outcome.usage == AZURE_USAGE  # accounting uses Azure's figures all the same


async def test_tool_call_arguments_count_as_completion_text() -> None:
    call = {"index": 0, "function": {"arguments": '{"city":'}}
    more = {"index": 0, "function": {"arguments": '"Paris"}'}}
    steps: list[Step] = [ROLE, raw(chunk({"tool_calls": [call]})), raw(chunk({"tool_calls": [more]}))]
    [outcome] = await run(FakeUpstream(steps), FakeClient())

    assert "".join(outcome.relayed_text) == '{"city":"Paris"}'


# --- a stream that fails after the first byte -------------------------------------------------------------


def error_event(client: FakeClient) -> dict[str, Any]:
    *_, last = client.events()
    assert isinstance(last, dict) and set(last) == {"error"}, last
    error = last["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return error


async def test_upstream_error_event_becomes_one_error_frame_and_the_stream_ends() -> None:
    upstream_error = raw({"error": {"code": "InternalServerError", "message": "The server had an error."}})
    upstream = FakeUpstream([raw(PROMPT_FILTER), ROLE, WORDS[0], upstream_error, WORDS[1]])
    client = FakeClient()
    [outcome] = await run(upstream, client)

    error = error_event(client)
    assert error["type"] == "server_error" and error["code"] == "upstream_error"
    assert "InternalServerError" not in error["message"]  # Azure's internals stay out
    assert b"[DONE]" not in client.wire
    assert client.ended_cleanly
    assert outcome.status == "failed"
    assert outcome.usage is None
    assert "".join(outcome.relayed_text) == "Soft"  # what was streamed before the failure
    assert upstream.closed == 1


async def test_upstream_timeout_mid_stream_is_an_error_frame_with_the_timeout_code() -> None:
    upstream = FakeUpstream([raw(PROMPT_FILTER), ROLE, WORDS[0], UpstreamTimeout("The upstream stopped.")])
    client = FakeClient()
    [outcome] = await run(upstream, client)

    assert error_event(client)["code"] == "upstream_timeout"
    assert client.ended_cleanly
    assert outcome.status == "failed"
    assert upstream.closed == 1


async def test_an_unreadable_upstream_event_is_an_error_frame() -> None:
    client = FakeClient()
    [outcome] = await run(FakeUpstream([ROLE, b"{not json"]), client)

    assert error_event(client)["code"] == "upstream_error"
    assert client.ended_cleanly
    assert outcome.status == "failed"


async def test_an_unexpected_bug_mid_stream_is_a_generic_error_frame_not_an_escaping_exception() -> None:
    client = FakeClient()
    [outcome] = await run(FakeUpstream([ROLE, WORDS[0], KeyError("secret internal detail")]), client)

    error = error_event(client)
    assert error["code"] == "internal_error"
    assert "req_test" in error["message"]
    assert "secret internal detail" not in error["message"]
    assert client.ended_cleanly
    assert outcome.status == "failed"
    assert "".join(outcome.relayed_text) == "Soft"


# --- the client goes away -----------------------------------------------------------------------------


async def test_client_disconnect_cancels_the_upstream_and_reports_what_was_streamed() -> None:
    client = FakeClient()
    never = anyio.Event()
    upstream = FakeUpstream([raw(PROMPT_FILTER), ROLE, WORDS[0], WORDS[1], client.disconnect, never.wait])
    [outcome] = await run(upstream, client)

    assert outcome.status == "disconnected"
    assert outcome.usage is None  # Azure never sent it: reconciliation counts the text instead
    assert "".join(outcome.relayed_text) == "Soft paws"
    assert upstream.closed == 1
    assert b"[DONE]" not in client.wire
    assert all(m.get("more_body") for m in client.bodies)  # nothing more was written to nobody


async def test_a_write_to_a_closed_socket_ends_the_stream_as_a_disconnect() -> None:
    client = FakeClient(fail_writes_after=2)
    upstream = FakeUpstream(list(FULL_STREAM))
    [outcome] = await run(upstream, client)  # no exception escapes

    assert outcome.status == "disconnected"
    assert upstream.closed == 1
    assert len(client.bodies) == 2


async def test_a_failing_reconciliation_does_not_break_the_response() -> None:
    client = FakeClient()

    async def broken(_outcome: StreamOutcome) -> None:
        raise RuntimeError("usage store is down")

    response = EventStreamResponse(
        FakeUpstream(list(FULL_STREAM)),  # type: ignore[arg-type]
        ChatCompletionsRelay(include_usage=False),
        headers={},
        settle=broken,
    )
    await response({"type": "http", "state": {}}, client.receive, client.send)
    assert client.events()[-1] == "[DONE]"
    assert client.ended_cleanly


# --- UpstreamStream: Azure's bytes to payloads ------------------------------------------------------------


def upstream_stream(body: list[bytes] | Exception) -> UpstreamStream:
    async def parts() -> AsyncIterator[bytes]:
        if isinstance(body, Exception):
            yield b"data: " + ROLE + b"\n\n"
            raise body
        for part in body:
            yield part

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for part in parts():
                yield part

    headers = {"content-type": "text/event-stream; charset=utf-8"}
    return UpstreamStream(httpx.Response(200, headers=headers, stream=Body()))


async def collect(stream: UpstreamStream) -> list[tuple[str, str]]:
    return [(event.event, event.data) async for event in stream.events()]


async def test_upstream_stream_parses_sse_split_anywhere_with_comments_crlf_and_multiline_data() -> None:
    wire = (
        b": keep-alive\n\ndata: " + ROLE + b"\r\n\r\ndata:" + WORDS[0] + b"\n\n"
        b'event: response.output_text.delta\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"data: [DONE]\n\n"
    )
    pieces = [wire[i : i + 7] for i in range(0, len(wire), 7)]  # TCP may cut anywhere
    assert await collect(upstream_stream(pieces)) == [
        ("message", ROLE.decode()),
        ("message", WORDS[0].decode()),
        ("response.output_text.delta", '{"a":\n1}'),
        ("message", "[DONE]"),
    ]


async def test_a_stream_the_upstream_closes_without_done_ends_with_an_error_frame() -> None:
    client = FakeClient()
    [outcome] = await run(FakeUpstream([ROLE, WORDS[0]], done=False), client)

    error = error_event(client)
    assert error["code"] == "upstream_error" and "before it was complete" in error["message"]
    assert client.ended_cleanly
    assert outcome.status == "failed"


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (httpx.ReadTimeout("read timed out"), "upstream_timeout"),
        (httpx.RemoteProtocolError("peer closed connection"), "upstream_error"),
    ],
)
async def test_upstream_transport_failures_mid_stream_become_chatgate_errors(
    failure: Exception, code: str
) -> None:
    with pytest.raises(Exception) as caught:
        await collect(upstream_stream(failure))
    assert getattr(caught.value, "code", None) == code
    assert "peer closed" not in str(caught.value) and "timed out" not in str(caught.value)


# --- settlement before the end, heartbeats, the deadline ---------------------------------------------------


async def test_the_client_has_done_before_settlement_and_the_body_ends_only_after_it() -> None:
    client = FakeClient()
    seen_at_settlement: list[tuple[bool, bool]] = []

    async def settle(_outcome: StreamOutcome) -> None:
        seen_at_settlement.append((client.wire.endswith(DONE), client.ended_cleanly))

    response = EventStreamResponse(
        FakeUpstream(list(FULL_STREAM)),  # type: ignore[arg-type]
        ChatCompletionsRelay(include_usage=False),
        headers={},
        settle=settle,
    )
    await response({"type": "http", "state": {}}, client.receive, client.send)
    assert seen_at_settlement == [(True, False)]  # every event sent, the body still open
    assert client.ended_cleanly
    assert client.bodies[-1]["body"] == b""


async def test_heartbeats_keep_a_silent_stream_alive_and_clients_skip_them() -> None:
    client = FakeClient()
    two_pings = anyio.Event()
    send = client.send

    async def send_and_watch(message: dict[str, Any]) -> None:
        await send(message)
        if client.wire.count(HEARTBEAT) >= 2:
            two_pings.set()

    client.send = send_and_watch  # type: ignore[method-assign]
    # Azure is silent after the first chunk until two heartbeats have gone out (a reasoning model thinking).
    [outcome] = await run(FakeUpstream([ROLE, two_pings.wait, *WORDS]), client, heartbeat_seconds=0.01)

    assert client.wire.count(HEARTBEAT) >= 2
    assert client.events()[-1] == "[DONE]"  # a client's SSE parser skips the comments
    assert "".join(outcome.relayed_text) == "Soft paws tread"
    assert outcome.status == "completed"


async def test_a_stream_past_its_deadline_ends_with_an_error_frame_and_is_accounted() -> None:
    client = FakeClient()
    never = anyio.Event()
    upstream = FakeUpstream([ROLE, WORDS[0], never.wait])
    [outcome] = await run(upstream, client, heartbeat_seconds=0.02, max_seconds=0.2)

    error = error_event(client)
    assert error["code"] == "upstream_timeout" and "maximum duration" in error["message"]
    assert client.ended_cleanly
    assert outcome.status == "timed_out"
    assert "".join(outcome.relayed_text) == "Soft"
    assert upstream.closed == 1


async def test_a_stream_still_running_at_the_shutdown_cutoff_ends_with_an_error_frame() -> None:
    """chatgate.gateway.shutdown: once the server's shutdown begins, a stream still running at the cutoff
    ends as a
    failed stream: the 503 error frame, then the body's end, settled with what was relayed."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        shutdown.install(grace_seconds=0.2, settlement_budget_seconds=0.0)  # cutoff: 0.1 s after the signal
        client = FakeClient()
        never = anyio.Event()

        def signal_now() -> None:
            shutdown.begin()  # as SIGTERM would, once the stream is under way

        upstream = FakeUpstream([ROLE, WORDS[0], signal_now, never.wait])
        [outcome] = await run(upstream, client)
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutdown.reset()
    error = error_event(client)
    assert error["code"] == "service_unavailable" and "shutting down" in error["message"]
    assert client.ended_cleanly and outcome.status == "failed"
    assert "".join(outcome.relayed_text) == "Soft" and upstream.closed == 1


def test_the_shutdown_cutoff_leaves_the_settlement_its_budget() -> None:
    assert shutdown.cutoff_seconds(10, 2) == 7  # 10 - (2 + 1)
    assert shutdown.cutoff_seconds(10, 5) == 5  # at most half the grace is kept back
    assert shutdown.cutoff_seconds(0, 5) == 0
