"""Usage records on DynamoDB semantics (dynalite, which serialises updates per item like DynamoDB; moto does
not): concurrent requests on several instances never lose an update, so the records add up exactly."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import openai
import pytest

from chatgate.admin import keys
from chatgate.admin.control import CLI
from chatgate.app import create_app
from chatgate.cli.common import control_store
from chatgate.limits import tokens
from chatgate.limits.tokens import TokenUsage
from chatgate.limits.usage import UsageLedger
from chatgate.settings import Settings
from chatgate.stores.usage_dynamodb import DynamoDBUsageStore
from tests.conftest import Stack
from tests.support import dynalite as dl
from tests.support.outcomes import record_outcomes
from tests.support.servers import serve


async def test_concurrent_adds_from_four_instances_lose_nothing(endpoint: str, table: str) -> None:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=48))
    ledgers = [UsageLedger(DynamoDBUsageStore(dl.client(endpoint), table)) for _ in range(4)]
    rng = random.Random(7)
    usages = [
        TokenUsage(rng.randint(1, 5000), rng.randint(0, 2000), rng.choice(["azure", "counted"]))
        for _ in range(200)
    ]
    await asyncio.gather(
        *(
            ledgers[i % 4].record("acme", "2025-03-01", "gpt-4o", u, marker=f"m{i}")
            for i, u in enumerate(usages)
        )
    )

    [record] = await DynamoDBUsageStore(dl.client(endpoint), table).records(
        "acme", "2025-03-01", "2025-03-01"
    )
    counted = [u for u in usages if u.source == "counted"]
    assert record.requests == 200
    assert record.prompt_tokens == sum(u.prompt_tokens for u in usages)
    assert record.completion_tokens == sum(u.completion_tokens for u in usages)
    assert record.counted_requests == len(counted)
    assert record.counted_prompt_tokens == sum(u.prompt_tokens for u in counted)
    assert record.counted_completion_tokens == sum(u.completion_tokens for u in counted)


async def test_refusals_from_four_instances_beside_requests_lose_nothing(endpoint: str, table: str) -> None:
    """Refusal writes (ADD rate_limited) and request records hit the same item at once: all are kept, the
    record's API is the requests' (a refusal only sets it where none is)."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=48))
    store = DynamoDBUsageStore(dl.client(endpoint), table)
    ledgers = [
        UsageLedger(s, refusals=s) for s in (DynamoDBUsageStore(dl.client(endpoint), table) for _ in range(4))
    ]
    usage = TokenUsage(10, 0, "azure")
    day, model = "2025-03-02", "text-embedding-3-small"
    await asyncio.gather(
        *(ledgers[i % 4].refused("acme", day, model, api="embeddings") for i in range(120)),
        *(
            ledgers[i % 4].record("acme", day, model, usage, marker=f"e{i}", api="embeddings")
            for i in range(40)
        ),
    )
    for ledger in ledgers:
        await ledger.drain()  # what each instance still carries (at shutdown)
    [record] = await store.records("acme", day, day)
    assert (record.rate_limited, record.requests, record.prompt_tokens) == (120, 40, 400)
    assert record.api == "embeddings"


@pytest.fixture
def gateways(stack: Stack, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Two gateway instances whose DynamoDB is dynalite (secrets stay on moto)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    client = dl.client(endpoint)
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("CHATGATE_TABLE_NAME", dl.create_data_table(client, f"data-{suffix}"))
    monkeypatch.setenv("CHATGATE_CONTROL_TABLE_NAME", dl.create_control_table(client, f"control-{suffix}"))
    monkeypatch.setenv("CHATGATE_RATE_LIMIT_TABLE_NAME", dl.create_rate_limit_table(client, f"rl-{suffix}"))
    with ExitStack() as running:
        yield [running.enter_context(serve(create_app(Settings()))) for _ in range(2)]


def read_three_words_and_leave(gateway: str, key: str, messages: list[dict[str, str]]) -> None:
    """A client that stops reading a stream after three words and closes the connection."""
    body = {"model": "gpt-4o", "messages": messages, "stream": True}
    body["stream_options"] = {"include_usage": True}
    url = f"{gateway}/openai/eu/v1/chat/completions"
    headers = {"authorization": f"Bearer {key}"}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", url, json=body, headers=headers) as response,
    ):
        words = 0
        for line in response.iter_lines():
            chunk = json.loads(line[6:]) if line.startswith("data: {") else {}
            words += bool(chunk.get("choices") and chunk["choices"][0]["delta"].get("content"))
            if words == 3:
                return


def long(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"[[words:200]] request {i}"}]


async def test_concurrent_requests_on_two_instances_add_up_exactly(
    gateways: list[str], endpoint: str, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """48 simultaneous requests, alternating between two instances: answers, streams with the usage
    chunk, and streams whose client goes away after three words (Azure never sends their usage)."""
    outcomes = record_outcomes(monkeypatch)
    monkeypatch.setattr(stack.upstream("eu"), "chunk_delay_s", 0.01)
    settings = Settings()
    key, _ = await keys.create_key(control_store(settings), CLI, "acme", "load")
    clients = [
        openai.AsyncOpenAI(base_url=f"{url}/openai/eu/v1", api_key=key, max_retries=0) for url in gateways
    ]

    async def one(i: int) -> tuple[int, int] | None:
        client = clients[i % 2]
        messages = [{"role": "user", "content": f"[[words:{1 + i % 13}]] request {i}"}]
        if i % 3 == 0:
            completion = await client.chat.completions.create(model="gpt-4o", messages=messages)
            assert completion.usage is not None
            return completion.usage.prompt_tokens, completion.usage.completion_tokens
        if i % 3 == 1:
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
            )
            usage = [chunk.usage async for chunk in stream if chunk.usage is not None]
            return usage[0].prompt_tokens, usage[0].completion_tokens
        await asyncio.to_thread(read_three_words_and_leave, gateways[i % 2], key, long(i))
        return None

    seen = [usage for usage in await asyncio.gather(*(one(i) for i in range(48))) if usage]
    for client in clients:
        await client.close()
    counted = [outcome for outcome in (outcomes.next(5) for _ in range(32)) if outcome.usage is None]
    assert len(counted) == 16 and {outcome.status for outcome in counted} == {"disconnected"}
    encoding = tokens.encoding_for("gpt-4o")
    counted_prompt = sum(
        tokens.count_prompt_tokens("gpt-4o", {"messages": long(i)}) for i in range(48) if i % 3 == 2
    )
    counted_completion = sum(tokens.count_text(encoding, "".join(o.relayed_text)) for o in counted)

    store = DynamoDBUsageStore(dl.client(endpoint), settings.table_name)
    for _ in range(100):  # the last writes finish just after the last responses
        records = await store.records("acme", "2000-01-01", "2100-01-01")
        if records and records[0].requests == 48:
            break
        await asyncio.sleep(0.05)
    [record] = records
    assert record.model == "gpt-4o"
    assert record.requests == 48
    assert record.counted_requests == 16
    assert (record.counted_prompt_tokens, record.counted_completion_tokens) == (
        counted_prompt,
        counted_completion,
    )
    assert record.prompt_tokens == sum(p for p, _ in seen) + counted_prompt
    assert record.completion_tokens == sum(c for _, c in seen) + counted_completion
