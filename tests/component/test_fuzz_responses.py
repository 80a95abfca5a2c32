"""The Responses API surface under the same fuzzing as chat completions (tests/component/test_fuzz.py):
bodies mixing its fields with arbitrary JSON, stored-response paths with odd ids, and an upstream that
answers (JSON or typed events), refuses, fails or resets. Never a 500; every error in the contract's shape.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatgate.gateway.responses_request import _CHECKS
from tests.component.test_fuzz import JSON, SEEN, TEXT, UPSTREAM_MODES, check, gateway_in_process

EXAMPLES = int(os.environ.get("FUZZ_RESPONSES_EXAMPLES", "800"))
SEEN.setdefault("responses in-process", Counter())

ITEM = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "developer", "assistant", "x"]), "content": TEXT}
    ),
    st.fixed_dictionaries(
        {
            "role": st.just("user"),
            "content": st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["input_text", "input_image", "input_file", "x"]), "text": TEXT}
                ),
                max_size=3,
            ),
        }
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["function_call_output", "item_reference"]), "id": TEXT}),
    JSON,
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["gpt-4o", "gpt-4o-mini", "nope"]),
    "input": st.one_of(TEXT, st.lists(ITEM, max_size=4)),
    "instructions": TEXT,
    "max_output_tokens": st.integers(-1, 2**40),
    "temperature": st.floats(-1, 3),
    "top_p": st.floats(-1, 2),
    "stream": st.booleans(),
    "store": st.booleans(),
    "previous_response_id": st.sampled_from(["resp_unknown", "", "resp_" + "x" * 300]),
    "tools": st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["function", "web_search", "mcp"]), "name": TEXT}),
        max_size=3,
    ),
    "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]), JSON),
    "text": st.just({"format": {"type": "text"}}),
    "reasoning": st.just({"effort": "xhigh"}),
    "metadata": st.dictionaries(st.text(max_size=8), st.one_of(TEXT, JSON), max_size=3),
}
FIELDS = sorted(
    set(_CHECKS) | set(PLAUSIBLE) | {"background", "conversation", "truncation", "include", "unknown_field"}
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    body: dict[str, Any] = {"model": "gpt-4o-mini", "input": "hi"}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=7, unique=True)):
        body[name] = draw(PLAUSIBLE[name] if name in PLAUSIBLE and draw(st.booleans()) else JSON)
    return json.dumps(body).encode()


def events() -> bytes:
    response = {"id": "resp_fuzz", "object": "response", "status": "completed", "output": []}
    done = {**response, "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}
    frames = [
        ("response.created", {"type": "response.created", "response": response}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "hi"}),
        ("response.completed", {"type": "response.completed", "response": done}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in frames)


class Upstream:
    mode = "ok"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.mode == "reset":
            raise httpx.ReadError("connection reset", request=request)
        if self.mode in ("429", "500", "400"):
            error = {"error": {"message": "no", "type": "x", "param": None, "code": "nope"}}
            return httpx.Response(int(self.mode), json=error)
        if self.mode == "garbage":
            return httpx.Response(200, content=b"<html>")
        if request.method != "POST":
            return httpx.Response(200, json={"id": "resp_fuzz", "object": "response", "data": []})
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, content=events(), headers={"content-type": "text/event-stream"})
        usage = {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
        return httpx.Response(200, json={"id": "resp_fuzz", "object": "response", "usage": usage})


@pytest.fixture(scope="module")
def in_process() -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient, str, Upstream]]:
    yield from gateway_in_process(Upstream(), authorized=True)


PATHS = st.sampled_from(
    [("POST", "/openai/eu/v1/responses")] * 6
    + [("POST", "/api/public/openai/us/v1/responses"), ("PUT", "/openai/eu/v1/responses")]
    + [("GET", "/openai/eu/v1/responses/resp_fuzz"), ("DELETE", "/openai/eu/v1/responses/resp_fuzz")]
    + [
        ("GET", "/openai/eu/v1/responses/resp_fuzz/input_items?limit=abc&order=x"),
        ("GET", "/openai/eu/v1/responses/%00"),
    ]
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(raw=bodies(), route=PATHS, mode=st.sampled_from(UPSTREAM_MODES))
def test_no_responses_request_makes_a_500(
    in_process: Any, raw: bytes, route: tuple[str, str], mode: str
) -> None:
    loop, client, _, upstream = in_process
    upstream.mode = mode
    method, path = route
    content = raw if method in ("POST", "PUT") else None
    response = loop.run_until_complete(client.request(method, path, content=content))
    if response.status_code == 200 and response.headers.get("content-type", "").startswith(
        "text/event-stream"
    ):
        SEEN["responses in-process"]["200"] += 1
        lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
        assert lines
        for line in lines:
            json.loads(line[6:])
        return
    check(response, "responses in-process")


def test_zz_what_the_responses_fuzzer_saw(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        statuses = SEEN["responses in-process"]
        counts = dict(sorted(statuses.items()))
        print(f"\nfuzz responses in-process: {sum(statuses.values())} requests, by status: {counts}")
    assert "500" not in SEEN["responses in-process"]
