"""Usage records through the gateway (official SDK, moto, the Azure emulator), read back with
`chatgate usage`: they add up exactly to the usage in the responses, streams included; streams that failed
or lost their client record what chatgate counted, and say so; the write never delays or fails a response.

Exactness under concurrency is proven against dynalite in test_usage_dynalite.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import openai
import pytest

from chatgate.cli import main
from chatgate.limits import tokens
from chatgate.stores.usage_dynamodb import DynamoDBUsageStore, UsageStoreError
from tests.conftest import Stack
from tests.support.outcomes import Outcomes, record_outcomes

CATS = [{"role": "user", "content": "Write a short poem about cats."}]


def say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=key, max_retries=0)


def usage_of(capsys: pytest.CaptureFixture[str], workspace: str) -> dict[str, Any]:
    """`chatgate usage --json` around today (a test may cross midnight UTC)."""
    today = datetime.now(UTC).date()
    argv = ["usage", "--workspace", workspace, "--json"]
    argv += ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))]
    capsys.readouterr()
    assert main(argv) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def per_model(document: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The records summed over days, by model."""
    found: dict[str, dict[str, int]] = {}
    for record in document["records"]:
        into = found.setdefault(record["model"], {})
        for name, value in record.items():
            if isinstance(value, int):
                into[name] = into.get(name, 0) + value
    return found


def wait_for_requests(
    capsys: pytest.CaptureFixture[str], workspace: str, count: int, timeout: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        document = usage_of(capsys, workspace)
        if document["total"]["requests"] >= count or time.monotonic() > deadline:
            return document
        time.sleep(0.05)


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> Outcomes:
    return record_outcomes(monkeypatch)


def test_records_add_up_exactly_to_the_usage_in_the_responses(
    gateway: str, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sdk(gateway, stack.create_key("acme"))
    expected: dict[str, list[int]] = {"gpt-4o": [0, 0, 0], "gpt-4o-mini": [0, 0, 0]}

    def add(model: str, usage: Any) -> None:
        expected[model][0] += 1
        expected[model][1] += usage.prompt_tokens
        expected[model][2] += usage.completion_tokens

    for words in (3, 7, 12):  # non-streaming answers of different lengths
        completion = client.chat.completions.create(model="gpt-4o", messages=say(f"[[words:{words}]] go"))
        add("gpt-4o", completion.usage)
    for words in (5, 9):  # streams with the usage chunk
        with client.chat.completions.create(
            model="gpt-4o",
            messages=say(f"[[words:{words}]] go"),
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            [last] = [chunk for chunk in stream if chunk.usage is not None]
        add("gpt-4o", last.usage)
    # A stream without the usage chunk: the client sees no usage, chatgate still gets Azure's. The same
    # prompt without streaming shows what it is (the emulator answers a prompt the same way every time).
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=CATS)
    add("gpt-4o-mini", answer.usage)
    with client.chat.completions.create(model="gpt-4o-mini", messages=CATS, stream=True) as stream:
        assert all(chunk.usage is None for chunk in stream)
    add("gpt-4o-mini", answer.usage)
    sdk(gateway, stack.key).chat.completions.create(model="gpt-4o", messages=CATS)  # another workspace

    document = wait_for_requests(capsys, "acme", 7)
    models = per_model(document)
    assert set(models) == {"gpt-4o", "gpt-4o-mini"}
    for model, (requests, prompt, completion) in expected.items():
        assert models[model]["requests"] == requests
        assert models[model]["prompt_tokens"] == prompt
        assert models[model]["completion_tokens"] == completion
        assert models[model]["total_tokens"] == prompt + completion
        assert models[model]["counted_requests"] == 0  # every number came from Azure
    total = document["total"]
    assert total["requests"] == 7
    assert total["total_tokens"] == sum(p + c for _, p, c in expected.values())


def test_a_disconnected_stream_records_what_chatgate_counted(
    gateway: str,
    stack: Stack,
    outcomes: Outcomes,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack.upstream("eu"), "chunk_delay_s", 0.02)
    messages = say("[[words:300]] go")
    with sdk(gateway, stack.create_key("acme")).chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    ) as stream:
        seen = 0
        for chunk in stream:
            seen += bool(chunk.choices and chunk.choices[0].delta.content)
            if seen == 4:
                break  # the user stops reading: the gateway cancels Azure before its usage chunk

    outcome = outcomes.next()
    assert outcome.status == "disconnected" and outcome.usage is None
    streamed = "".join(outcome.relayed_text)
    prompt = tokens.count_prompt_tokens("gpt-4o-mini", {"messages": messages})
    completion = tokens.count_text(tokens.encoding_for("gpt-4o-mini"), streamed)
    assert completion >= 4  # at least the words the client read
    [record] = usage_of(capsys, "acme")["records"]
    assert record["requests"] == 1 and record["counted_requests"] == 1
    assert (record["prompt_tokens"], record["completion_tokens"]) == (prompt, completion)
    assert (record["counted_prompt_tokens"], record["counted_completion_tokens"]) == (prompt, completion)


def test_a_stream_that_failed_midway_records_the_streamed_text(
    gateway: str, stack: Stack, outcomes: Outcomes, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sdk(gateway, stack.create_key("acme"))
    messages = say("[[words:6]] [[stream_error_after:3]] go")
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
    with stream, pytest.raises(openai.APIError, match="upstream failed while streaming"):
        list(stream)
    client.chat.completions.create(model="gpt-4o", messages=CATS)  # and one from Azure, same day

    assert outcomes.next().status == "failed"
    record = per_model(wait_for_requests(capsys, "acme", 2))["gpt-4o"]
    prompt = tokens.count_prompt_tokens("gpt-4o", {"messages": messages})
    completion = tokens.count_text(tokens.encoding_for("gpt-4o"), "the quick brown")
    assert record["requests"] == 2 and record["counted_requests"] == 1
    assert (record["counted_prompt_tokens"], record["counted_completion_tokens"]) == (prompt, completion)
    assert record["prompt_tokens"] > prompt and record["completion_tokens"] > completion


def test_a_refused_request_records_nothing(
    gateway: str, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sdk(gateway, stack.create_key("acme"))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=say("[[server_error]] hi"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=say("[[content_filter]] hi"), stream=True)
    time.sleep(0.2)
    assert usage_of(capsys, "acme")["records"] == []


def test_the_usage_record_is_written_before_the_response_ends_even_when_the_write_is_slow(
    gateway: str, stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lambda freezes the sandbox when the body ends: whatever was not written by then may never be.
    original = DynamoDBUsageStore.add

    async def slow(self: DynamoDBUsageStore, *args: Any, **kwargs: Any) -> bool:
        await asyncio.sleep(0.3)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBUsageStore, "add", slow)
    key = stack.create_key("acme")
    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": CATS},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200 and "content-length" not in response.headers
    assert usage_of(capsys, "acme")["total"]["requests"] == 1  # no waiting: it is there already

    with httpx.stream(
        "POST",
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": CATS, "stream": True},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    ) as stream:
        body = b"".join(stream.iter_bytes())  # the whole body, to its end
    assert b"data: [DONE]" in body
    assert usage_of(capsys, "acme")["total"]["requests"] == 2


def test_a_failing_usage_write_is_an_unsettled_line_never_a_500(
    gateway: str,
    stack: Stack,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing(self: DynamoDBUsageStore, *args: Any, **kwargs: Any) -> bool:
        raise UsageStoreError("DynamoDB UpdateItem failed: ProvisionedThroughputExceededException")

    monkeypatch.setattr(DynamoDBUsageStore, "add", failing)
    client = sdk(gateway, stack.create_key("acme"))
    with caplog.at_level(logging.ERROR, logger="chatgate"):
        assert client.chat.completions.create(model="gpt-4o", messages=CATS).choices
        with client.chat.completions.create(model="gpt-4o", messages=CATS, stream=True) as stream:
            assert list(stream)
        deadline = time.monotonic() + 3
        while caplog.text.count("unsettled: usage failed") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    failures = [r for r in caplog.records if r.getMessage().startswith("unsettled: usage failed")]
    assert len(failures) == 2
    assert "for workspace acme" in failures[0].getMessage()
    (write,) = failures[0].fields["unsettled"]["writes"]  # type: ignore[attr-defined]
    assert write["fields"]["model"] == "gpt-4o"
    assert "ProvisionedThroughputExceededException" in write["error"]


def test_usage_table_and_date_range(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    store = DynamoDBUsageStore(boto3.client("dynamodb"), stack.settings.table_name)
    records = [
        ("acme", "2025-03-01", "gpt-4o", tokens.TokenUsage(100, 20, "azure")),
        ("acme", "2025-03-01", "gpt-4o", tokens.TokenUsage(50, 5, "counted")),
        ("acme", "2025-03-02", "gpt-4o-mini", tokens.TokenUsage(10, 1, "azure")),
        ("acme", "2025-03-03", "gpt-4o", tokens.TokenUsage(1, 1, "azure")),  # outside the range
        ("globex", "2025-03-01", "gpt-4o", tokens.TokenUsage(7, 7, "azure")),
    ]
    for number, (workspace, day, model, used) in enumerate(records, start=1):
        assert asyncio.run(store.add(workspace, day, model, used, marker=f"m{number}"))

    assert main(["usage", "--workspace", "acme", "--from", "2025-03-01", "--to", "2025-03-02"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "workspace acme, 2025-03-01 to 2025-03-02 (UTC)"
    assert lines[1].split() == ["DAY", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "TOTAL", "COUNTED"]
    assert [line.split() for line in lines[2:]] == [
        ["2025-03-01", "gpt-4o", "2", "150", "25", "175", "1"],
        ["2025-03-02", "gpt-4o-mini", "1", "10", "1", "11", "0"],
        ["total", "3", "160", "26", "186", "1"],
    ]

    code = main(["usage", "--workspace", "acme", "--from", "2025-03-02", "--to", "2025-03-01"])
    assert code == 2 and "--from 2025-03-02 is after --to 2025-03-01" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["usage", "--workspace", "acme", "--from", "March"])
    assert "not a date" in capsys.readouterr().err


def test_usage_without_records_is_an_empty_table(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--workspace", "nobody"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].split() == ["total", "0", "0", "0", "0", "0"]


def test_rate_limit_refusals_are_in_the_ledger_before_each_429_ends_and_in_the_admin_api(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """chatgate's own 429s are counted per workspace, model and day: the first in the ledger by the time
    the client has its 429 (Lambda freezes when the body ends), those within the next second carried and
    written when the instance stops; the admin API reports them as `num_rate_limited_requests`."""
    from chatgate.app import create_app
    from tests.openapi import validator
    from tests.support.servers import serve

    settings = stack.settings.model_copy(update={"rpm_limit": 1})
    store = DynamoDBUsageStore(boto3.client("dynamodb"), settings.table_name)
    today = datetime.now(UTC).date()

    def in_ledger() -> tuple[int, int]:
        records = asyncio.run(
            store.records(
                "events", (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()
            )
        )
        return sum(r.requests for r in records), sum(r.rate_limited for r in records)

    capsys.readouterr()
    assert main(["admin-keys", "create", "--name", "ops"]) == 0
    admin_key = capsys.readouterr().out.strip()
    statuses = []
    with serve(create_app(settings)) as gateway:
        for _ in range(6):
            response = httpx.post(
                f"{gateway}/openai/eu/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": CATS},
                headers={"authorization": f"Bearer {stack.key}"},
                timeout=30,
            )
            statuses.append(response.status_code)
            if response.status_code == 429 and statuses.count(429) == 1:
                assert response.json()["error"]["code"] == "rate_limit_exceeded"
                assert in_ledger()[1] == 1  # written before the 429's body ended
        assert set(statuses) == {200, 429} and statuses.count(429) >= 3  # 1 RPM (a window may turn once)
        usage = httpx.get(
            f"{gateway}/v1/organization/usage/completions",
            params={"start_time": int(time.time()) - 86_400, "project_ids": "events", "group_by": "model"},
            headers={"authorization": f"Bearer {admin_key}"},
        ).json()
        validator("admin.json", "UsageResponse").validate(usage)
        [result] = [r for bucket in usage["data"] for r in bucket["results"]]
        assert 1 <= result["num_rate_limited_requests"] <= statuses.count(429)
        assert result["num_model_requests"] == statuses.count(200)
    # The instance stopped (graceful shutdown drains): every refusal is counted, none twice.
    assert in_ledger() == (statuses.count(200), statuses.count(429))
    assert usage_of(capsys, "events")["total"]["rate_limited"] == statuses.count(429)  # `chatgate usage`
