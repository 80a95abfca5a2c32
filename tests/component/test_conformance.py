"""Conformance with OpenAI's published OpenAPI spec (the vendored subset tests/openapi/inference.json):
request bodies generated from the spec's own request schemas (Schemathesis, positive mode: every body is
spec-valid) for each operation chatgate serves, with an allowed model, sent to the gateway in process
(memory stores, an upstream that answers every call). Asserted for every request:

- no 5xx, and every error body is the spec's `ErrorResponse` (and the contract's shape);
- the request is answered (2xx), or refused by a rule the contract names: `REFUSALS` below says which rule
  each refused field falls under, and a refusal that no row explains fails the test;
- the bodies chatgate builds itself (`/models`, `/models/{model}`, errors) validate against the spec.

Deterministic (fixed seed, derandomized); CONFORMANCE_EXAMPLES sets the examples per operation.
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
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from chatgate.gateway.checks import AZURE_EXTENSIONS
from chatgate.settings import DEFAULT_EMBEDDING_MODELS, DEFAULT_MODELS
from tests.component.test_fuzz import gateway_in_process, sse
from tests.component.test_fuzz_responses import events
from tests.fakes import azure_completion
from tests.openapi import subset, validator
from tests.support.contract import check_error_body

EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "150"))
SPEC = schemathesis.openapi.from_dict(subset("inference.json"))
CHAT_MODELS = DEFAULT_MODELS.split(",")
EMBEDDING_MODELS = DEFAULT_EMBEDDING_MODELS.split(",")

# Every refusal of a spec-valid request, by API and the field it names, and the contract's rule for it
# (../shared/CONTRACT.md). A field matches its row and everything under it (`tool_choice.function`).
REFUSALS: dict[tuple[str, str], str] = {
    ("chat", "n"): "Request body: the four unsupported parameters (n: 1 or null)",
    ("chat", "service_tier"): "Request body: the four unsupported parameters (service_tier: auto, default)",
    (
        "chat",
        "parallel_tool_calls",
    ): "Request body: the four unsupported parameters (parallel_tool_calls: true)",
    ("chat", "stream_options"): "Request body: the four unsupported parameters (stream_options)",
    ("chat", "max_tokens"): "Request body: max_tokens / max_completion_tokens are positive integers",
    (
        "chat",
        "max_completion_tokens",
    ): "Request body: max_tokens / max_completion_tokens are positive integers",
    ("chat", "top_logprobs"): "Request body: top_logprobs only with logprobs: true",
    ("chat", "logit_bias"): "Request body: logit_bias maps token ids to integers in [-100, 100]",
    ("chat", "tools"): "Request body: tools holds 1 to 128 functions",
    ("chat", "functions"): "Request body: functions holds 1 to 128",
    ("chat", "tool_choice"): "Request body: tool_choice none/auto/required, or a named function in tools",
    ("chat", "function_call"): "Request body: function_call none/auto or a name in functions",
    # The spec bounds seed by 9223372036854776000, 2^63 rounded as a double: 2^63 itself passes its schema.
    ("chat", "seed"): "Request body: seed is a 64-bit signed integer",
    ("responses", "background"): "Responses API: background: true is refused",
    ("responses", "conversation"): "Responses API: conversation is refused",
    ("responses", "input"): "Responses API: item_reference input items are refused",
    ("responses", "previous_response_id"): "Responses API: a response id chatgate never issued is a 404",
    # Where the spec leaves additional properties open, a generator may add one of Azure's extensions.
    **{
        (api, field): "Request body: the denylist of Azure extensions (data_sources and its kin)"
        for api in ("chat", "responses", "embeddings")
        for field in AZURE_EXTENSIONS
    },
}
# Whatever the API: a request larger than the workspace's TPM (prompt + max_output_tokens / max_tokens, which
# the spec does not bound) can never be admitted.
TOO_LARGE = "Rate limits: a single request larger than the TPM limit is a 429 that says so"
SEEN: dict[str, Counter[str]] = {"chat": Counter(), "responses": Counter(), "embeddings": Counter()}


def embeddings_answer(body: dict[str, Any]) -> dict[str, Any]:
    count = len(body["input"]) if isinstance(body["input"], list) else 1
    data = [{"object": "embedding", "index": i, "embedding": [0.6, 0.8]} for i in range(count)]
    return {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def upstream(request: httpx.Request) -> httpx.Response:
    """An Azure resource that answers every call as it would a valid one."""
    body = json.loads(request.content)
    stream = body.get("stream") is True
    if request.url.path.endswith("/embeddings"):
        return httpx.Response(200, json=embeddings_answer(body))
    if request.url.path.endswith("/responses"):
        if stream:
            return httpx.Response(200, content=events(), headers={"content-type": "text/event-stream"})
        usage = {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
        return httpx.Response(200, json={"id": "resp_1", "object": "response", "output": [], "usage": usage})
    if stream:
        return httpx.Response(200, content=sse(2), headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=azure_completion())


@pytest.fixture(scope="module")
def in_process() -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient, str, Any]]:
    yield from gateway_in_process(upstream, authorized=True)


def rule_for(api: str, param: str | None) -> str | None:
    for (rule_api, field), rule in REFUSALS.items():
        if (
            rule_api == api
            and param is not None
            and (param == field or param.startswith((f"{field}.", f"{field}[")))
        ):
            return rule
    return None


def check(api: str, response: httpx.Response, body: dict[str, Any]) -> None:
    assert response.status_code < 500, response.text
    if response.status_code < 300:
        SEEN[api]["answered"] += 1
        return
    error_body = json.loads(response.content)
    check_error_body(error_body)
    validator("inference.json", "ErrorResponse").validate(error_body)
    error = error_body["error"]
    if (
        response.status_code == 429
        and error["code"] == "rate_limit_exceeded"
        and "retry-after" not in response.headers
    ):
        SEEN[api][TOO_LARGE] += 1
        return
    rule = rule_for(api, error["param"])
    assert rule is not None, f"a spec-valid request refused by no rule of the contract: {error} for {body}"
    if rule.endswith("404"):
        assert response.status_code == 404 and error["code"] == "not_found"
    else:
        assert response.status_code == 400, error
    SEEN[api][rule] += 1
    if os.environ.get("CONFORMANCE_DEBUG"):
        print("REFUSED", error["param"], error["message"][:200])


CONFORMANCE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def cases(path: str) -> st.SearchStrategy[Any]:
    return SPEC[path]["POST"].as_strategy(generation_mode=GenerationMode.POSITIVE)


@seed(20)
@CONFORMANCE
@given(case=cases("/chat/completions"), model=st.sampled_from(CHAT_MODELS))
def test_spec_valid_chat_completions(in_process: Any, case: Any, model: str) -> None:
    loop, client, _, _ = in_process
    body = {**case.body, "model": model}
    response = loop.run_until_complete(client.post("/openai/eu/v1/chat/completions", json=body))
    check("chat", response, body)


@seed(20)
@CONFORMANCE
@given(case=cases("/responses"), model=st.sampled_from(CHAT_MODELS))
def test_spec_valid_responses(in_process: Any, case: Any, model: str) -> None:
    loop, client, _, _ = in_process
    body = {**case.body, "model": model}
    response = loop.run_until_complete(client.post("/openai/eu/v1/responses", json=body))
    check("responses", response, body)


@seed(20)
@CONFORMANCE
@given(case=cases("/embeddings"), model=st.sampled_from(EMBEDDING_MODELS))
def test_spec_valid_embeddings(in_process: Any, case: Any, model: str) -> None:
    loop, client, _, _ = in_process
    body = {**case.body, "model": model}
    response = loop.run_until_complete(client.post("/openai/eu/v1/embeddings", json=body))
    check("embeddings", response, body)


def test_chatgates_own_bodies_are_the_specs(in_process: Any) -> None:
    loop, client, _, _ = in_process
    listed = loop.run_until_complete(client.get("/openai/eu/v1/models"))
    validator("inference.json", "ListModelsResponse").validate(listed.json())
    assert [m["id"] for m in listed.json()["data"]] == [*CHAT_MODELS, *EMBEDDING_MODELS]
    for model in (CHAT_MODELS[0], EMBEDDING_MODELS[0]):
        retrieved = loop.run_until_complete(client.get(f"/openai/eu/v1/models/{model}"))
        validator("inference.json", "Model").validate(retrieved.json())
    errors = [
        loop.run_until_complete(client.get("/openai/eu/v1/models/no-such-model")),
        loop.run_until_complete(client.post("/openai/eu/v1/embeddings", content=b"{")),
        loop.run_until_complete(client.post("/openai/ap/v1/chat/completions", json={})),
        loop.run_until_complete(
            client.post("/openai/eu/v1/responses", json={"model": "gpt-4o", "background": True})
        ),
        loop.run_until_complete(client.get("/openai/eu/v1/responses/resp_never")),
    ]
    for response in errors:
        assert 400 <= response.status_code < 500
        validator("inference.json", "ErrorResponse").validate(response.json())


def test_zz_what_conformance_saw(capsys: pytest.CaptureFixture[str]) -> None:
    """The counts, for the docs (run with -s): how many spec-valid requests were answered, and how many
    each contract rule refused."""
    with capsys.disabled():
        for api, counts in SEEN.items():
            if counts:
                print(f"\nconformance {api}: {dict(counts.most_common())}")
    assert all(counts["answered"] for counts in SEEN.values() if counts)
