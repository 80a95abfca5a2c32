"""Accounting as the platform behaves (issue: "Accounting that survives Lambda").

Lambda freezes the sandbox the moment a response ends. Here that is a real `chatgate dev` process, on
dynalite (DynamoDB) and moto (Secrets Manager), configured only through the contract's variables, frozen
with SIGSTOP the instant the client holds the whole response; the books are then read from DynamoDB by
another instance (its x-ratelimit-* headers) and by `chatgate usage --json`. SIGTERM lets settlements in
flight complete before the process exits.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatgate.app import create_app
from chatgate.cli import main
from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from chatgate.limits import tokens
from chatgate.settings import Settings
from tests.support.instances import chatgate_dev, contract_environment
from tests.support.servers import serve

TPM = 20_000
PROMPT = [{"role": "user", "content": "Write a short poem about cats."}]


@pytest.fixture(scope="module")
def azure() -> Iterator[RunningEmulator]:
    """The Azure OpenAI both instances call (outside the frozen process)."""
    with start_emulator(EmulatorState(api_key="azure-key", name="azure-test")) as emulator:
        yield emulator


@pytest.fixture
def environment(
    endpoint: str, moto_url: str, azure: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The contract's variables for both instances: dynalite, moto, the emulator, fresh tables."""
    return contract_environment(
        endpoint,
        moto_url,
        azure.url,
        monkeypatch,
        CHATGATE_TPM_LIMIT=str(TPM),
        CHATGATE_RPM_LIMIT="100",
        CHATGATE_RATE_WINDOW_SECONDS="3600",
        CHATGATE_KEY_CACHE_SECONDS="0",
    )


def usage(capsys: pytest.CaptureFixture[str], workspace: str) -> dict[str, int]:
    capsys.readouterr()
    assert main(["usage", "--workspace", workspace, "--json"]) == 0
    totals: dict[str, int] = json.loads(capsys.readouterr().out)["total"]
    return totals


def remaining_tokens(url: str, key: str) -> tuple[int, int, int]:
    """A request through `url` (another instance): the remaining tokens it reports, what it reserved,
    and what it used."""
    body = {"model": "gpt-4o", "messages": PROMPT, "max_tokens": 5}
    response = httpx.post(
        f"{url}/openai/eu/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    reserved = tokens.count_prompt_tokens("gpt-4o", body) + 5
    used = response.json()["usage"]["total_tokens"]
    return int(response.headers["x-ratelimit-remaining-tokens"]), reserved, used


def test_a_frozen_instance_has_settled_json_and_streams_before_their_last_byte(
    environment: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with chatgate_dev(environment, tmp_path / "frozen.log") as frozen, serve(create_app(Settings())) as other:
        headers = {"authorization": f"Bearer {frozen.key}"}
        # 1. JSON: reserves prompt + 5,000; uses far less.
        answer = httpx.post(
            f"{frozen.url}/openai/eu/v1/chat/completions",
            json={"model": "gpt-4o", "messages": PROMPT, "max_tokens": 5000},
            headers=headers,
        )
        frozen.freeze()  # the instant the client holds the whole response, as Lambda does
        used = answer.json()["usage"]["total_tokens"]
        remaining, reserved, used_there = remaining_tokens(other, frozen.key)
        assert remaining == TPM - used - reserved  # the 5,000-token reservation is no longer held
        assert usage(capsys, "demo")["total_tokens"] == used + used_there
        frozen.thaw()

        # 2. A stream read to its end (the client asked for the usage chunk, to know what it used).
        body = {"model": "gpt-4o", "messages": PROMPT, "max_tokens": 5000, "stream": True}
        body["stream_options"] = {"include_usage": True}
        with httpx.stream(
            "POST", f"{frozen.url}/openai/eu/v1/chat/completions", json=body, headers=headers
        ) as stream:
            raw = b"".join(stream.iter_bytes())
        frozen.freeze()
        events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        streamed = json.loads(events[-2])["usage"]["total_tokens"]
        remaining_after, reserved_again, used_again = remaining_tokens(other, frozen.key)
        assert remaining_after == remaining + reserved - used_there - streamed - reserved_again
        assert usage(capsys, "demo")["total_tokens"] == used + used_there + streamed + used_again
        assert usage(capsys, "demo")["requests"] == 4  # two through each instance
        frozen.thaw()


def test_sigterm_lets_a_stream_in_flight_finish_and_settle_before_exit(
    environment: dict[str, str], azure: RunningEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    azure.state.chunk_delay_s = 0.05  # 40 words: about two seconds
    try:
        with chatgate_dev(environment, tmp_path / "instance.log") as instance:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "[[words:40]] go"}]}
            with httpx.stream(
                "POST",
                f"{instance.url}/openai/eu/v1/chat/completions",
                json={**body, "stream": True},
                headers={"authorization": f"Bearer {instance.key}"},
                timeout=30,
            ) as stream:
                chunks = stream.iter_bytes()
                first = next(chunks)
                instance.process.send_signal(signal.SIGTERM)  # the platform shuts the instance down
                raw = first + b"".join(chunks)
            assert raw.rstrip().endswith(b"data: [DONE]")  # the stream in flight completed
            # uvicorn re-raises the signal once its graceful shutdown is done
            assert instance.process.wait(timeout=30) in (0, -signal.SIGTERM)
            totals = usage(capsys, "demo")
            assert totals["requests"] == 1 and totals["counted_requests"] == 0  # settled with Azure's usage
    finally:
        azure.state.chunk_delay_s = 0.0


def test_a_stream_still_running_when_the_grace_ends_gets_the_error_frame_and_its_lines(
    environment: dict[str, str], azure: RunningEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """SIGTERM with a stream that would outlive the grace: the client gets the contract's error frame
    (not a cut body), the request is settled with what was relayed, and its access and metrics lines are
    written before the process exits."""
    azure.state.chunk_delay_s = 0.05  # 400 words: 20 s, far beyond the grace
    environment = {
        **environment,
        "CHATGATE_SHUTDOWN_GRACE_SECONDS": "3",
        "CHATGATE_SETTLEMENT_BUDGET_SECONDS": "1",  # streams end 1 s after the signal
    }
    try:
        with chatgate_dev(environment, tmp_path / "instance.log") as instance:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "[[words:400]] go"}]}
            with httpx.stream(
                "POST",
                f"{instance.url}/openai/eu/v1/chat/completions",
                json={**body, "stream": True},
                headers={"authorization": f"Bearer {instance.key}"},
                timeout=30,
            ) as stream:
                request_id = stream.headers["x-request-id"]
                chunks = stream.iter_bytes()
                first = next(chunks)
                instance.process.send_signal(signal.SIGTERM)
                raw = first + b"".join(chunks)
            events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
            error = json.loads(events[-1])["error"]
            assert error["code"] == "service_unavailable" and error["type"] == "server_error"
            assert set(error) == {"message", "type", "param", "code"}
            assert instance.process.wait(timeout=30) in (0, -signal.SIGTERM)
            mine = [line for line in instance.lines() if line.get("request_id") == request_id]
            metrics = [line for line in mine if "_aws" in line]
            assert len(metrics) == 1 and metrics[0]["ErrorClass"] and metrics[0]["OutputTokens"] > 0
            access = [line for line in mine if line.get("logger") == "chatgate.access"]
            assert len(access) == 1 and access[0]["message"].startswith("POST /openai/eu/v1/chat/completions")
            totals = usage(capsys, "demo")
            assert totals["requests"] == 1 and totals["counted_requests"] == 1  # charged what was relayed
            assert totals["completion_tokens"] == metrics[0]["OutputTokens"]
    finally:
        azure.state.chunk_delay_s = 0.0
