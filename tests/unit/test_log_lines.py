"""Log lines in Powertools' Logger shape, with each request's Lambda keys filled from what Lambda Web Adapter
passes, and never another request's: two requests are held in flight at once (each one's upstream call
waits until the other's has started), and every line either logs carries its own ids only."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.observability import logs
from tests.fakes import azure_completion, fake_services

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
ARN = "arn:aws:lambda:eu-central-1:123456789012:function:chatgate-fn"
POWERTOOLS_KEYS = {"level", "location", "message", "timestamp", "service"}
LAMBDA_KEYS = {"cold_start", "function_request_id", "function_arn", "xray_trace_id"}


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the `chatgate` Logger writes, through its own formatter, as of a fresh process."""
    monkeypatch.setattr(logs, "_cold", True)
    logger = logs.configure_logging("INFO")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    chatgate = logging.getLogger("chatgate")
    chatgate.addHandler(handler)
    yield buffer
    chatgate.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def lambda_headers(name: str) -> dict[str, str]:
    """What the adapter adds to the request it forwards for invocation `name`."""
    return {
        "x-amzn-request-context": json.dumps({"requestId": f"{name}-api0-0000-0000-000000000000"}),
        "x-amzn-lambda-context": json.dumps(
            {
                "request_id": f"{name}-fn00-0000-0000-000000000000",
                "invoked_function_arn": ARN,
                "xray_trace_id": f"Root=1-5759e988-{name}0000000000000000;Parent=53995c3f42cd8ad8;Sampled=0",
            }
        ),
    }


async def test_two_concurrent_requests_each_log_their_own_keys(written: io.StringIO) -> None:
    arrived: list[str] = []
    both = asyncio.Event()

    async def azure(request: httpx.Request) -> httpx.Response:
        logging.getLogger("chatgate.test").info("upstream called")
        arrived.append(request.url.path)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), timeout=10)  # the other request is in flight meanwhile
        return httpx.Response(200, json=azure_completion())

    services, keys, _ = fake_services(azure)  # type: ignore[arg-type]
    key = keys.add("acme")
    app = create_app(services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/openai/eu/v1/chat/completions",
                    json=BODY,
                    headers={"authorization": f"Bearer {key}", **lambda_headers(name)},
                )
                for name in ("aaaa", "bbbb")
            )
        )
    assert [answer.status_code for answer in answers] == [200, 200]
    logging.getLogger("chatgate.test").info("outside any request")

    entries = lines(written)
    by_request: dict[str, list[dict[str, Any]]] = {}
    for entry in entries[:-1]:
        assert POWERTOOLS_KEYS | LAMBDA_KEYS | {"request_id", "logger"} <= set(entry), entry
        assert entry["service"] == "chatgate"
        by_request.setdefault(entry["request_id"], []).append(entry)
    assert set(by_request) == {f"{name}-api0-0000-0000-000000000000" for name in ("aaaa", "bbbb")}
    for request_id, entries_of_one in by_request.items():
        name = request_id[:4]
        assert sorted(e["logger"] for e in entries_of_one) == ["chatgate.access", "chatgate.test"]
        for entry in entries_of_one:
            assert entry["function_request_id"] == f"{name}-fn00-0000-0000-000000000000"
            assert entry["xray_trace_id"] == f"1-5759e988-{name}0000000000000000"
            assert entry["function_arn"] == ARN
        [access] = [e for e in entries_of_one if e["logger"] == "chatgate.access"]
        assert (access["status"], access["workspace"], access["model"]) == (200, "acme", "gpt-4o")
        assert access["latency_ms"] >= access["upstream_ms"] > 0
    # The process's first request is its cold start, whichever of the two it is; the other is warm.
    colds = {e["request_id"]: e["cold_start"] for e in entries[:-1]}
    assert sorted(colds.values()) == [False, True]
    outside = entries[-1]
    assert outside["message"] == "outside any request"
    assert not (LAMBDA_KEYS | {"request_id"}) & set(outside)


def test_fields_never_replace_the_standard_keys(written: io.StringIO) -> None:
    token = logs.bind_request(request_id="req_1", function_request_id="fn-1")
    try:
        logging.getLogger("chatgate.x").warning(
            "settled %s", "ok", extra={"fields": {"message": "forged", "request_id": "other", "tokens": 3}}
        )
    finally:
        logs.unbind_request(token)
    [entry] = lines(written)
    assert (entry["message"], entry["request_id"], entry["tokens"]) == ("settled ok", "req_1", 3)
    assert (entry["level"], entry["logger"], entry["function_request_id"]) == (
        "WARNING",
        "chatgate.x",
        "fn-1",
    )


def test_level_settings_in_powertools_order(monkeypatch: pytest.MonkeyPatch) -> None:
    chatgate = logging.getLogger("chatgate")
    try:
        logs.configure_logging("DEBUG")
        assert chatgate.getEffectiveLevel() == logging.DEBUG  # CHATGATE_LOG_LEVEL alone
        monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
        logs.configure_logging("DEBUG")
        assert chatgate.getEffectiveLevel() == logging.WARNING  # Powertools' setting over chatgate's
        monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "ERROR")
        with pytest.warns(UserWarning):  # Powertools warns that ALC drops what its level would keep
            logs.configure_logging("DEBUG")
        assert chatgate.getEffectiveLevel() == logging.ERROR  # Lambda's advanced logging controls first
    finally:
        monkeypatch.delenv("POWERTOOLS_LOG_LEVEL")
        monkeypatch.delenv("AWS_LAMBDA_LOG_LEVEL")
        logs.configure_logging("INFO")


def test_a_sample_rate_of_one_logs_debug_for_every_request(
    monkeypatch: pytest.MonkeyPatch, written: io.StringIO
) -> None:
    logger = logs.configure_logging("INFO")
    monkeypatch.setattr(logger, "sampling_rate", "1")
    try:
        token = logs.bind_request(request_id="req_sampled")
        logging.getLogger("chatgate.x").debug("sampled detail")
        logs.unbind_request(token)
    finally:
        monkeypatch.setattr(logger, "sampling_rate", None)
        logs.configure_logging("INFO")
    [entry] = lines(written)
    assert (entry["message"], entry["level"], entry["request_id"]) == (
        "sampled detail",
        "DEBUG",
        "req_sampled",
    )


async def test_the_trace_header_the_adapter_passes_names_the_trace_without_a_context(
    written: io.StringIO,
) -> None:
    services, keys, _ = fake_services()
    key = keys.add("acme")
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
    app = create_app(services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        answer = await client.post(
            "/openai/eu/v1/chat/completions",
            json=BODY,
            headers={"authorization": f"Bearer {key}", "x-amzn-trace-id": trace},
        )
    assert answer.status_code == 200
    [access] = [e for e in lines(written) if e["logger"] == "chatgate.access"]
    assert access["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert access["request_id"] == answer.headers["x-request-id"]
    assert "function_request_id" not in access and access["cold_start"] is True
