"""The Responses adapter's stream relay: Azure's typed events pass unchanged, usage comes from the terminal
event, an error after the stream started becomes the spec's `error` event."""

from __future__ import annotations

import json

import pytest
from httpx_sse import ServerSentEvent

from chatgate.errors import ChatgateError, UpstreamTimeout
from chatgate.gateway.apis.responses import ResponsesRelay, usage_of
from chatgate.limits.tokens import TokenUsage

USAGE = {
    "input_tokens": 11,
    "output_tokens": 70,
    "total_tokens": 81,
    "output_tokens_details": {"reasoning_tokens": 64},
}


def event(kind: str, sequence: int, **payload: object) -> ServerSentEvent:
    return ServerSentEvent(
        event=kind, data=json.dumps({"type": kind, "sequence_number": sequence, **payload})
    )


@pytest.mark.parametrize("terminal", ["response.completed", "response.incomplete", "response.failed"])
def test_events_pass_unchanged_and_the_terminal_event_settles(terminal: str) -> None:
    relay = ResponsesRelay()
    created = event("response.created", 0, response={"id": "resp_1", "usage": None})
    delta = event("response.output_text.delta", 1, delta="Hel", item_id="m", output_index=0, content_index=0)
    last = event(terminal, 2, response={"id": "resp_1", "usage": USAGE})
    frames = [relay.relay(e) for e in (created, delta, last)]
    assert frames[0] == b"event: response.created\ndata: " + created.data.encode() + b"\n\n"
    assert frames[1] == b"event: response.output_text.delta\ndata: " + delta.data.encode() + b"\n\n"
    assert relay.finished and relay.end_frame() == b""
    assert relay.usage == TokenUsage(11, 70, "azure") and relay.relayed_text == ["Hel"]


def test_an_upstream_error_event_raises() -> None:
    relay = ResponsesRelay()
    with pytest.raises(ChatgateError):
        relay.relay(event("error", 3, code="server_error", message="boom", param=None))


def test_the_error_frame_is_the_specs_error_event_with_the_next_sequence_number() -> None:
    relay = ResponsesRelay()
    relay.relay(event("response.created", 0, response={"id": "r"}))
    relay.relay(event("response.in_progress", 1, response={"id": "r"}))
    frame = relay.error_frame(UpstreamTimeout("The upstream stopped sending the response in time."))
    name, data = frame.decode().rstrip("\n").split("\n")
    assert name == "event: error"
    body = json.loads(data.removeprefix("data: "))
    assert body["type"] == "error" and body["sequence_number"] == 2
    assert body["message"] == "The upstream stopped sending the response in time."
    assert body["error"]["message"] == body["message"] and body["code"] == body["error"]["code"]


def test_usage_of() -> None:
    assert usage_of(USAGE) == TokenUsage(11, 70, "azure")
    assert usage_of({"input_tokens": 1}) is None and usage_of(None) is None
