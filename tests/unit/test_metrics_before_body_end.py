"""The freeze rule for the metrics line: Lambda freezes the sandbox as the response body ends, so the line
must already be written when the middleware passes the last body message on — for JSON answers, streams,
errors, the last-resort 500, and an event run through the Mangum handler."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.lambda_handler import make_handler
from chatgate.middleware import RequestContextMiddleware
from chatgate.observability import metrics
from tests.fakes import azure_completion, fake_services
from tests.support.emf import emf_records

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    metrics.redirect(buffer)
    yield buffer
    metrics.redirect(None)


def azure_stream(_request: httpx.Request) -> httpx.Response:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


async def call(app: Any, body: dict[str, Any], key: str, out: io.StringIO) -> list[tuple[str, bool, int]]:
    """Run one request through the ASGI app; for each message sent: (type, more_body, lines written)."""
    payload = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/openai/eu/v1/chat/completions",
        "raw_path": b"/openai/eu/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": payload, "more_body": False}]
    seen: list[tuple[str, bool, int]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays until the response ends
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        seen.append((message["type"], bool(message.get("more_body")), len(emf_records(out.getvalue()))))

    await app(scope, receive, send)
    return seen


@pytest.mark.parametrize(
    ("handler", "body", "status"),
    [
        (None, BODY, 200),
        (azure_stream, {**BODY, "stream": True}, 200),
        (lambda _r: httpx.Response(500, json={"error": {"message": "boom"}}), BODY, 502),
        (None, {**BODY, "temperature": 9}, 400),
    ],
    ids=["json", "stream", "upstream-error", "invalid"],
)
async def test_the_line_is_written_before_the_last_body_message(
    out: io.StringIO, handler: Any, body: dict[str, Any], status: int
) -> None:
    services, keys, _ = fake_services(handler)
    key = keys.add("acme")
    seen = await call(create_app(services=services), body, key, out)
    bodies = [entry for entry in seen if entry[0] == "http.response.body"]
    assert bodies[-1][1] is False  # the last body message...
    assert bodies[-1][2] == 1  # ...found the line already written
    assert all(written == 0 for _, more, written in bodies[:-1])  # and not before the answer was known
    [line] = emf_records(out.getvalue())
    assert line["status"] == status
    if status == 200:
        assert (line["InputTokens"], line["OutputTokens"]) == (8, 1)


async def test_the_last_resort_500_is_measured_before_its_body(out: io.StringIO) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("secret internal detail")

    seen = await call(RequestContextMiddleware(broken), BODY, "k", out)
    assert seen[-1] == ("http.response.body", False, 1)
    [line] = emf_records(out.getvalue())
    assert (line["status"], line["ErrorClass"], line["ServerErrors"]) == (500, "internal", 1)
    assert "secret internal detail" not in out.getvalue()


def test_mangum_event_gets_api_gateways_request_id_and_its_line(out: io.StringIO) -> None:
    services, keys, _ = fake_services(lambda _r: httpx.Response(200, json=azure_completion()))
    key = keys.add("acme")
    event = {
        "resource": "/{proxy+}",
        "path": "/openai/eu/v1/chat/completions",
        "httpMethod": "POST",
        "headers": {"authorization": f"Bearer {key}", "content-type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {"requestId": "5b7c2a8e-0d6f-4c1a-9e3b-7f2d1c0b9a88", "stage": "prod"},
        "body": json.dumps(BODY),
        "isBase64Encoded": False,
    }

    class Context:
        aws_request_id = "lambda-0123456789"

    result = make_handler(create_app(services=services))(event, Context())
    assert result["headers"]["x-request-id"] == "5b7c2a8e-0d6f-4c1a-9e3b-7f2d1c0b9a88"
    [line] = emf_records(out.getvalue())
    assert line["request_id"] == "5b7c2a8e-0d6f-4c1a-9e3b-7f2d1c0b9a88"
    assert line["lambda_request_id"] == "lambda-0123456789"
