"""Property-based fuzzing of the HTTP surface: thousands of bodies mixing every chat completions parameter
with arbitrary JSON values (and raw bytes, odd headers, odd paths), against an upstream that may answer,
refuse or fail. Whatever comes in: never a 500, and every error in the contract's shape.

Two runs: the bulk in-process (the real app over in-memory adapters and an httpx mock upstream, about a
millisecond a request), and a smaller one over real sockets (uvicorn, moto, the Azure emulator).
FUZZ_EXAMPLES / FUZZ_SOCKET_EXAMPLES set the counts; what was seen is summarised by the last test.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatgate.app import create_app
from chatgate.gateway.validation import _CHECKS
from tests.conftest import Stack
from tests.fakes import azure_completion, fake_services
from tests.support.contract import check_error_body

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2500"))
SOCKET_EXAMPLES = int(os.environ.get("FUZZ_SOCKET_EXAMPLES", "200"))
SEEN: dict[str, Counter[str]] = {"in-process": Counter(), "sockets": Counter()}

# --- what to send ---------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
TEXT = st.text(max_size=60) | st.sampled_from(["", "hi", "[[words:3]]", "\u0000", "a" * 3000, "中文" * 600])
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": TEXT, "detail": TEXT})}
    ),
    st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": JSON}),
    st.fixed_dictionaries({"type": st.just("file"), "file": JSON}),
    st.dictionaries(st.sampled_from(["type", "text", "refusal"]), JSON, max_size=3),
    JSON,
)
MESSAGE = st.dictionaries(
    st.sampled_from(
        ["role", "content", "name", "tool_calls", "tool_call_id", "function_call", "refusal", "x"]
    ),
    st.one_of(
        st.sampled_from(["user", "system", "developer", "assistant", "tool", "function", "robot"]),
        TEXT,
        st.lists(PART, max_size=3),
        st.lists(
            st.fixed_dictionaries(
                {"id": TEXT, "type": st.just("function"), "function": st.fixed_dictionaries({"name": TEXT})}
            ),
            max_size=2,
        ),
        JSON,
    ),
    max_size=5,
).map(lambda m: {"role": "user", **m} if "role" not in m else m)
TOOL = st.fixed_dictionaries(
    {"type": st.sampled_from(["function", "custom", "web_search"]), "function": JSON, "custom": JSON}
) | st.just({"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}})
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "messages": st.lists(MESSAGE, max_size=4),
    "model": st.sampled_from(["gpt-4o", "gpt-4o-mini", "gpt-4", "o3-mini", "nope", ""]),
    "frequency_penalty": st.floats(-3, 3),
    "presence_penalty": st.floats(-3, 3),
    "logit_bias": st.dictionaries(st.sampled_from(["1", "50256", "x", "-1"]), st.integers(-200, 200)),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(-1, 25),
    "max_tokens": st.integers(-1, 2**64),
    "max_completion_tokens": st.integers(-1, 5000),
    "n": st.integers(0, 3),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_schema"}, {"type": "json_object"}]),
    "seed": st.integers(-(2**64), 2**64),
    "service_tier": st.sampled_from(["auto", "default", "flex", "priority"]),
    "stop": st.one_of(TEXT, st.lists(TEXT, max_size=6)),
    "stream": st.booleans(),
    "stream_options": st.dictionaries(st.sampled_from(["include_usage", "x"]), st.booleans(), max_size=2),
    "temperature": st.floats(-1, 3),
    "top_p": st.floats(-0.5, 1.5),
    "tools": st.lists(TOOL, max_size=3),
    "tool_choice": st.one_of(
        st.sampled_from(["none", "auto", "required", "any"]),
        st.just({"type": "function", "function": {"name": "lookup"}}),
        st.fixed_dictionaries({"type": st.just("allowed_tools"), "allowed_tools": JSON}),
    ),
    "parallel_tool_calls": st.booleans(),
    "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh", "max"]),
    "verbosity": st.sampled_from(["low", "medium", "high", "loud"]),
    "modalities": st.lists(st.sampled_from(["text", "audio", "video"]), max_size=3),
    "functions": st.lists(st.fixed_dictionaries({"name": TEXT}), max_size=2),
    "function_call": st.one_of(st.sampled_from(["none", "auto"]), st.fixed_dictionaries({"name": TEXT})),
}
# What chatgate checks, what it forwards unchecked, and fields it has never heard of.
PARAMETERS = sorted(set(_CHECKS) | set(PLAUSIBLE) | {"unknown_parameter", "stream_usage", "data_sources"})


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A request body: mostly JSON objects of parameters, some raw bytes and broken text."""
    kind = draw(st.sampled_from(["params"] * 8 + ["raw", "surrogate"]))
    if kind == "raw":
        return draw(st.binary(max_size=200))
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for name in draw(st.lists(st.sampled_from(PARAMETERS), max_size=8, unique=True)):
        body[name] = draw(PLAUSIBLE[name] if name in PLAUSIBLE and draw(st.booleans()) else JSON)
    text = json.dumps(body, allow_nan=True)
    if kind == "surrogate":
        text = text.replace('"hi"', draw(st.sampled_from(['"\\udc80"', '"\\ud800x"', '"a\\ud83d"'])), 1)
    return text.encode("utf-8", "surrogatepass")


PATHS = st.sampled_from(
    ["/openai/eu/v1/chat/completions"] * 6
    + [
        "/api/public/openai/us/v1/chat/completions",
        "/openai/apac/v1/chat/completions",
        "/openai/eu/v1/models",
    ]
    + [
        "/openai/eu/v1/models/gpt-4o",
        "/openai/eu/v2/chat/completions",
        "/%ff",
        "/openai/eu/v1/chat/completions/",
    ]
)


# --- what to check --------------------------------------------------------------------------------------


def check(response: httpx.Response, run: str) -> None:
    SEEN[run][str(response.status_code)] += 1
    assert response.status_code != 500, response.text
    assert response.status_code in (200, 400, 401, 404, 405, 429, 502, 503, 504), response.text
    assert response.headers.get("x-request-id")
    if response.status_code >= 400:
        check_error_body(json.loads(response.content))
    elif response.headers["content-type"].startswith("text/event-stream"):
        frames = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        for frame in frames[:-1]:
            json.loads(frame)
        last = frames[-1]
        assert last == "[DONE]" or check_error_body(json.loads(last))
    else:
        json.loads(response.content)


# --- the in-process run ---------------------------------------------------------------------------------


def sse(chunks: int) -> bytes:
    event = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    lines = [{**event, "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]} for i in range(chunks)]
    lines.append(
        {**event, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
    )
    return b"".join(b"data: " + json.dumps(line).encode() + b"\n\n" for line in lines) + b"data: [DONE]\n\n"


UPSTREAM_MODES = ["ok"] * 6 + ["429", "500", "400", "garbage", "reset"]


class Upstream:
    mode = "ok"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.mode == "reset":
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        if self.mode in ("429", "500", "400"):
            status = int(self.mode)
            error = {"error": {"message": "upstream says no", "type": "x", "param": None, "code": "nope"}}
            return httpx.Response(status, json=error, headers={"retry-after": "1"})
        if self.mode == "garbage":
            return httpx.Response(200, content=b"\xff not json")
        if json.loads(request.content).get("stream"):
            return httpx.Response(200, content=sse(3), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=azure_completion())


U = TypeVar("U", bound=Callable[[httpx.Request], httpx.Response])


def gateway_in_process(
    upstream: U, *, authorized: bool = False
) -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient, str, U]]:
    """The gateway over memory stores and `upstream`, limits out of reach, with a workspace key (sent on
    every request when `authorized`) and its own event loop: (loop, client, key, upstream). Both fuzz suites
    use it as a module fixture."""
    services, keys, _ = fake_services(upstream, rpm_limit="1000000000", tpm_limit="1000000000")
    key = keys.add("fuzz")
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=services), raise_app_exceptions=False),
        base_url="http://gateway",
        headers={"authorization": f"Bearer {key}"} if authorized else None,
    )
    yield loop, client, key, upstream
    loop.run_until_complete(client.aclose())
    loop.close()


@pytest.fixture(scope="module")
def in_process() -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient, str, Upstream]]:
    yield from gateway_in_process(Upstream())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    raw=bodies(),
    path=PATHS,
    auth=st.sampled_from(["key"] * 8 + ["none", "garbage", "bearer-fake"]),
    content_type=st.sampled_from(
        ["application/json"] * 4 + ["text/plain", "", "application/json; charset=latin-1"]
    ),
    method=st.sampled_from(["POST"] * 9 + ["GET", "PUT"]),
    mode=st.sampled_from(UPSTREAM_MODES),
)
def test_no_body_header_or_upstream_answer_makes_a_500_in_process(
    in_process: Any, raw: bytes, path: str, auth: str, content_type: str, method: str, mode: str
) -> None:
    loop, client, key, upstream = in_process
    upstream.mode = mode
    headers = {"content-type": content_type} if content_type else {}
    if auth != "none":
        token = {"key": key, "garbage": "x y z", "bearer-fake": "cg_0123456789abcdef_fake"}[auth]
        headers["authorization"] = f"Bearer {token}"
    response = loop.run_until_complete(client.request(method, path, content=raw, headers=headers))
    check(response, "in-process")


# --- the real-socket run --------------------------------------------------------------------------------


@settings(
    max_examples=SOCKET_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(raw=bodies(), path=PATHS)
def test_no_body_makes_a_500_over_real_sockets(gateway: str, stack: Stack, raw: bytes, path: str) -> None:
    response = httpx.post(
        f"{gateway}{path}",
        content=raw,
        headers={"authorization": f"Bearer {stack.key}", "content-type": "application/json"},
        timeout=60,
    )
    check(response, "sockets")


def test_zz_what_the_fuzzers_saw(capsys: pytest.CaptureFixture[str]) -> None:
    """The counts, for the docs (run with -s to see them); zero 500s is asserted on every request."""
    with capsys.disabled():
        for run, statuses in SEEN.items():
            if not statuses:  # another module's run, not started yet
                continue
            counts = dict(sorted(statuses.items()))
            print(f"\nfuzz {run}: {sum(statuses.values())} requests, by status: {counts}")
    assert all("500" not in statuses for statuses in SEEN.values())
