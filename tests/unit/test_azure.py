"""What the client sees for each upstream answer (the contract's "Errors" section)."""

from __future__ import annotations

import json

import httpx
import pytest

from chatgate.errors import ChatgateError
from chatgate.upstream import azure
from chatgate.upstream.azure import AzureOpenAI, Completion, StoredResponseCall
from chatgate.upstream.config import AzureResource, UpstreamTarget

TARGET = UpstreamTarget(
    region="eu",
    model="gpt-4o",
    resource=AzureResource(endpoint="https://r.azure.test", api_key="k", deployments={"gpt-4o": "dep"}),
    deployment="dep",
)
CONTENT_FILTER = {
    "error": {
        "message": "The response was filtered",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {"hate": {"filtered": True}},
        },
    }
}


async def call(response: httpx.Response | Exception) -> ChatgateError:
    def handler(_request: httpx.Request) -> httpx.Response:
        if isinstance(response, Exception):
            raise response
        return response

    client = AzureOpenAI(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    with pytest.raises(ChatgateError) as caught:
        await client.complete(TARGET, {"model": "gpt-4o", "messages": []})
    return caught.value


async def test_content_filter_keeps_azure_details() -> None:
    error = await call(httpx.Response(400, json=CONTENT_FILTER))
    body = error.to_dict()["error"]
    assert error.status_code == 400
    assert body["code"] == "content_filter" and body["param"] == "prompt"
    assert body["type"] == "invalid_request_error"
    assert body["innererror"]["content_filter_result"]["hate"]["filtered"] is True


async def test_429_keeps_retry_headers() -> None:
    error = await call(
        httpx.Response(
            429,
            json={"error": {"code": "429", "message": "slow down"}},
            headers={"retry-after": "3", "retry-after-ms": "2500"},
        )
    )
    assert error.status_code == 429
    assert error.headers == {"retry-after": "3", "retry-after-ms": "2500"}
    assert error.code == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("response", "status", "code"),
    [
        (httpx.Response(500, text="<html>boom</html>"), 502, "upstream_error"),
        (
            httpx.Response(503, json={"error": {"message": "internal db at 10.0.0.1 down"}}),
            502,
            "upstream_error",
        ),
        (httpx.Response(401, json={"error": {"code": "401"}}), 502, "upstream_error"),
        (httpx.Response(404, json={"error": {"code": "DeploymentNotFound"}}), 404, "model_not_found"),
        (httpx.Response(408), 504, "upstream_timeout"),
        (httpx.Response(200, text="not json"), 502, "upstream_error"),
        (httpx.Response(200, json=["not", "an", "object"]), 502, "upstream_error"),
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
        (httpx.ConnectTimeout("no route"), 502, "upstream_error"),
        (httpx.ConnectError("refused"), 502, "upstream_error"),
        (httpx.RemoteProtocolError("reset"), 502, "upstream_error"),
    ],
)
async def test_failures_map_to_gateway_statuses(
    response: httpx.Response | Exception, status: int, code: str
) -> None:
    error = await call(response)
    assert (error.status_code, error.code) == (status, code)
    assert "10.0.0.1" not in error.message and "html" not in error.message


async def test_other_4xx_pass_through_with_param() -> None:
    error = await call(
        httpx.Response(
            400, json={"error": {"message": "bad tool schema", "param": "tools", "code": "invalid_value"}}
        )
    )
    assert (error.status_code, error.param, error.code, error.message) == (
        400,
        "tools",
        "invalid_value",
        "bad tool schema",
    )


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"", b"[1, 2]"])
async def test_a_stored_response_call_never_passes_on_a_body_that_is_not_json(
    method: str, body: bytes
) -> None:
    """GET / DELETE /responses/{id}: a 200 whose body is not a JSON object (an HTML page from a proxy) is a
    502 in the contract's shape, never relayed as the API's answer (the Responses fuzz suite found it)."""
    client = AzureOpenAI(
        httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=body)))
    )
    call = StoredResponseCall(region="eu", resource=TARGET.resource, response_id="resp_1")
    with pytest.raises(ChatgateError) as caught:
        await client.stored_response(call, method)
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")


def embeddings_answer(count: int, usage_last: bool = True) -> bytes:
    vector = [0.012345678] * 1536
    data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)]
    usage = {"prompt_tokens": 7 * count, "total_tokens": 7 * count}
    answer = {"object": "list", "data": data, "model": "text-embedding-3-small", "usage": usage}
    if not usage_last:
        answer = {"usage": usage, **answer}
    return json.dumps(answer, indent=1).encode()


async def embed(content: bytes) -> Completion:
    client = AzureOpenAI(
        httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=content)))
    )
    return await client.create_embeddings(TARGET, {"model": "text-embedding-3-small", "input": "x"})


@pytest.mark.parametrize("count", [1, 100])  # 19 KB (parsed whole) and 1.9 MB (usage read from the tail)
async def test_an_embeddings_answer_is_relayed_whole_with_its_usage(count: int) -> None:
    content = embeddings_answer(count)
    answer = await embed(content)
    assert answer.content == content
    assert answer.usage == {"prompt_tokens": 7 * count, "total_tokens": 7 * count}


async def test_a_large_answer_is_not_parsed_whole_when_its_usage_is_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = embeddings_answer(100)
    parsed: list[int] = []
    real_loads = azure.json.loads
    monkeypatch.setattr(
        azure.json, "loads", lambda text, **kw: parsed.append(len(text)) or real_loads(text, **kw)
    )
    assert (await embed(content)).usage == {"prompt_tokens": 700, "total_tokens": 700}
    assert all(size < 4096 for size in parsed)  # never the 1.9 MB body


@pytest.mark.parametrize(
    "content",
    [
        embeddings_answer(100, usage_last=False),  # usage elsewhere: the whole body is parsed
        embeddings_answer(100)[:-1] + b' , "extra": 1}',  # usage not last
    ],
)
async def test_usage_elsewhere_in_a_large_answer_is_found_by_parsing_it(content: bytes) -> None:
    assert (await embed(content)).usage == {"prompt_tokens": 700, "total_tokens": 700}


@pytest.mark.parametrize(
    "content",
    [
        b"<html>" + b"x" * 300_000 + b'"usage": {"prompt_tokens": 1}}',
        b"[" + b"1," * 200_000 + b'{"usage": {"prompt_tokens": 1}}]',
        embeddings_answer(100)[:-20],  # cut short
    ],
)
async def test_a_large_answer_that_is_not_a_json_object_is_a_502(content: bytes) -> None:
    with pytest.raises(ChatgateError) as caught:
        await embed(content)
    assert caught.value.status_code == 502
