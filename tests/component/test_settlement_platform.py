"""Accounting as the platform behaves (issue: "Accounting that survives Lambda").

Lambda freezes the sandbox the moment a response ends. Here that is a real `chatgate dev` process, on
dynalite (DynamoDB) and moto (Secrets Manager), configured only through the contract's variables, frozen
with SIGSTOP the instant the client holds the whole response; the books are then read from DynamoDB by
another instance (its x-ratelimit-* headers) and by `chatgate usage --json`. SIGTERM lets settlements in
flight complete before the process exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from chatgate import tokens
from chatgate.app import create_app
from chatgate.cli import main
from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from chatgate.settings import Settings
from tests.support import dynalite as dl
from tests.support.servers import serve

TPM = 20_000
PROMPT = [{"role": "user", "content": "Write a short poem about cats."}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    """A `chatgate dev` process and the demo key it printed."""

    process: subprocess.Popen[str]
    url: str
    key: str

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


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
    client = dl.client(endpoint)
    suffix = uuid.uuid4().hex[:8]
    values = {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AZURE_OPENAI_ENDPOINT": azure.url,
        "AZURE_OPENAI_API_KEY": "azure-key",
        "CHATGATE_TABLE_NAME": dl.create_data_table(client, f"data-{suffix}"),
        "CHATGATE_CONTROL_TABLE_NAME": dl.create_control_table(client, f"control-{suffix}"),
        "CHATGATE_RATE_LIMIT_TABLE_NAME": dl.create_rate_limit_table(client, f"rl-{suffix}"),
        "CHATGATE_SECRET_PREFIX": f"freeze-{suffix}",
        "CHATGATE_TPM_LIMIT": str(TPM),
        "CHATGATE_RPM_LIMIT": "100",
        "CHATGATE_RATE_WINDOW_SECONDS": "3600",
        "CHATGATE_KEY_CACHE_SECONDS": "0",
    }
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@contextlib.contextmanager
def chatgate_dev(environment: dict[str, str]) -> Iterator[Instance]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "CHATGATE_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "chatgate.cli", "dev", "--port", str(port)],
        env={**env, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        key = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not key:
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(lines)
            lines.append(line)
            if line.startswith("Demo key"):
                key = process.stdout.readline().strip()
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        assert key.startswith("cg_"), "".join(lines)
        yield Instance(process, url, key)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
    environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with chatgate_dev(environment) as frozen, serve(create_app(Settings())) as other:
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
    environment: dict[str, str], azure: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    azure.state.chunk_delay_s = 0.05  # 40 words: about two seconds
    try:
        with chatgate_dev(environment) as instance:
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
