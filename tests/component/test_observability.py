"""Observability as an operator sees it, through the gateway on loopback: one EMF metrics line per request
on stdout (JSON, streams, errors) whose tokens are the response's usage, `server-timing`, API Gateway's
request id from Lambda Web Adapter's header, and X-Ray subsegments sent to a daemon address."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from chatgate import middleware
from chatgate.app import create_app
from chatgate.cli import main
from chatgate.settings import Settings
from tests.conftest import EVENT_WORKSPACE, Stack
from tests.support.emf import dimension_sets, emf_records, server_timing
from tests.support.servers import serve

CATS = [{"role": "user", "content": "Write a short poem about cats."}]
API_REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
LAMBDA_REQUEST_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def sdk(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=key, max_retries=0)


class Emitted:
    """How many metrics lines the gateway has written so far (chatgate.middleware's `emit`, counted after
    it returns), and how many the test has read."""

    def __init__(self) -> None:
        self.written = 0
        self.read = 0
        self.changed = threading.Condition()

    def wait_for(self, count: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.written >= self.read + count, timeout=20)
        self.read = self.written


_emitted = Emitted()


@pytest.fixture(autouse=True)
def count_emitted(monkeypatch: pytest.MonkeyPatch) -> None:
    global _emitted
    _emitted = Emitted()
    original = middleware.emit

    def emit(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        with _emitted.changed:
            _emitted.written += 1
            _emitted.changed.notify_all()

    monkeypatch.setattr(middleware, "emit", emit)


def lines(capfd: pytest.CaptureFixture[str], count: int = 1) -> list[dict[str, Any]]:
    """The metrics lines written since the last call, once `count` more have been written: a stream's line
    is written after the client has read `[DONE]` (its settlement comes first), so it may trail the client.
    One snapshot, taken after the lines are written: capfd's snapshot empties its file, and a line written
    while it does so would be lost."""
    _emitted.wait_for(count)
    return emf_records(capfd.readouterr().out)


def test_json_stream_and_error_requests_each_write_one_metrics_line(
    gateway: str, stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    client = sdk(gateway, stack.key)
    capfd.readouterr()

    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CATS)
    answer = raw.parse()
    [line] = lines(capfd)
    assert answer.usage is not None
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "chatgate"
    assert (line["Region"], line["Api"], line["Model"], line["Workspace"]) == (
        "eu",
        "chat.completions",
        "gpt-4o-mini",
        EVENT_WORKSPACE,
    )
    assert line["InputTokens"] == answer.usage.prompt_tokens
    assert line["OutputTokens"] == answer.usage.completion_tokens
    assert (line["Requests"], line["Errors"], line["RateLimited"], line["ServerErrors"]) == (1, 0, 0, 0)
    assert line["Latency"] >= line["UpstreamLatency"] > 0
    assert "TimeToFirstToken" not in line
    assert line["request_id"] == raw.headers["x-request-id"]
    assert line["upstream_request_id"]  # Azure's apim-request-id
    assert line["status"] == 200 and line["stream"] is False
    assert dimension_sets(line, "InputTokens") == [
        ["Api", "Model", "Region", "Workspace"],
        ["Api", "Model", "Region"],
        ["Region"],
    ]
    timing = server_timing(raw.headers["server-timing"])
    assert set(timing) == {"gateway", "upstream"} and timing["upstream"] > 0 and timing["gateway"] >= 0

    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=CATS, stream=True, stream_options={"include_usage": True}
    ) as response:
        timing = server_timing(response.headers["server-timing"])  # known before the first byte
        chunks = list(response.parse())
    [line] = lines(capfd)
    usage = chunks[-1].usage
    assert usage is not None
    assert (line["InputTokens"], line["OutputTokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert line["stream"] is True and line["status"] == 200
    assert 0 < line["TimeToFirstToken"] <= line["Latency"]
    assert line["UpstreamLatency"] <= line["TimeToFirstToken"]  # a stream's upstream time: to its headers
    assert set(timing) == {"gateway", "upstream"}

    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[server_error]]"}]
        )
    [line] = lines(capfd)
    assert (line["status"], line["ErrorClass"], line["Errors"], line["ServerErrors"]) == (
        502,
        "upstream",
        1,
        1,
    )
    assert line["UpstreamErrors"] == 1 and line["ErrorsByClass"] == 1
    assert dimension_sets(line, "ErrorsByClass") == [["Api", "ErrorClass", "Region"]]

    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": CATS},
        headers={"authorization": "Bearer cg_0123456789abcdef_not-a-key"},
    )
    assert response.status_code == 401
    [line] = lines(capfd)
    assert (line["Region"], line["Model"], line["Workspace"], line["ErrorClass"]) == (
        "eu",
        "-",
        "-",
        "client",
    )
    assert "InputTokens" not in line and "UpstreamLatency" not in line
    assert set(server_timing(response.headers["server-timing"])) == {"gateway"}


def test_a_stream_that_fails_midway_and_a_rate_limited_request(
    gateway: str, stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    client = sdk(gateway, stack.key)
    capfd.readouterr()
    with (
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[[stream_error_after:3]] hi"}], stream=True
        ) as stream,
        pytest.raises(openai.APIError),
    ):
        list(stream)
    [line] = lines(capfd)
    assert (line["status"], line["ErrorClass"], line["UpstreamErrors"]) == (200, "upstream", 1)
    assert line["OutputTokens"] > 0 and line["tokens_counted"] is True  # counted from what was relayed

    limits = ["workspaces", "limits", "set", "--workspace", EVENT_WORKSPACE, "--model", "gpt-4o"]
    assert main([*limits, "--rpm", "0", "--tpm", "100000"]) == 0
    capfd.readouterr()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=CATS)
    [line] = lines(capfd)
    assert (line["status"], line["RateLimited"], line["ErrorClass"], line["Model"]) == (
        429,
        1,
        "rate_limited",
        "gpt-4o",
    )


def test_lambda_web_adapter_request_context_names_the_request(
    gateway: str, stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    headers = {
        "authorization": f"Bearer {stack.key}",
        "x-amzn-request-context": json.dumps({"requestId": API_REQUEST_ID, "stage": "prod"}),
        "x-amzn-lambda-context": json.dumps({"request_id": LAMBDA_REQUEST_ID, "xray_trace_id": TRACE}),
    }
    capfd.readouterr()
    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": CATS},
        headers=headers,
    )
    assert response.headers["x-request-id"] == API_REQUEST_ID
    [line] = lines(capfd)
    assert line["request_id"] == API_REQUEST_ID and line["lambda_request_id"] == LAMBDA_REQUEST_ID
    assert line["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"

    # Outside Lambda Web Adapter a forged value is not echoed: chatgate names the request itself.
    forged = {**headers, "x-amzn-request-context": json.dumps({"requestId": "x\ninjected log line"})}
    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions", json={"model": "gpt-4o", "messages": CATS}, headers=forged
    )
    assert response.headers["x-request-id"].startswith("req_")


def test_per_workspace_dimensions_can_be_switched_off(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHATGATE_METRICS_PER_WORKSPACE", "false")
    monkeypatch.setenv("CHATGATE_METRICS_NAMESPACE", "acme/llm")
    with serve(create_app(Settings())) as url:
        capfd.readouterr()
        sdk(url, stack.key).chat.completions.create(model="gpt-4o", messages=CATS)
        [line] = lines(capfd)
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "acme/llm"
    assert dimension_sets(line, "Requests") == [["Api", "Model", "Region"], ["Region"]]
    assert "Workspace" not in {d for sets in dimension_sets(line, "OutputTokens") for d in sets}


@pytest.fixture
def xray_daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A UDP socket on loopback standing in for the X-Ray daemon."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", f"127.0.0.1:{sock.getsockname()[1]}")
        yield sock


def test_a_sampled_request_sends_its_pipeline_steps_to_the_xray_daemon(
    gateway: str, stack: Stack, xray_daemon: socket.socket
) -> None:
    context = json.dumps({"request_id": LAMBDA_REQUEST_ID, "xray_trace_id": TRACE})
    headers = {"x-amzn-lambda-context": context}
    answer = sdk(gateway, stack.key).chat.completions.create(
        model="gpt-4o", messages=CATS, extra_headers=headers
    )
    datagram = xray_daemon.recv(65536)
    header, _, body = datagram.partition(b"\n")
    assert json.loads(header) == {"format": "json", "version": 1}
    segment = json.loads(body)
    assert segment["type"] == "subsegment" and segment["name"] == "chatgate"
    assert segment["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert segment["parent_id"] == "53995c3f42cd8ad8"
    assert segment["annotations"]["model"] == "gpt-4o"
    assert segment["annotations"]["workspace"] == EVENT_WORKSPACE
    steps = [s["name"] for s in segment["subsegments"]]
    assert steps == ["authenticate", "validate", "reserve", "upstream", "settle"]
    for step in segment["subsegments"]:
        assert segment["start_time"] <= step["start_time"] <= step["end_time"] <= segment["end_time"]
    assert answer.usage is not None
    gen_ai = segment["metadata"]["gen_ai"]
    assert gen_ai["gen_ai.request.model"] == "gpt-4o"
    assert gen_ai["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert gen_ai["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens

    # Not sampled: nothing is sent.
    unsampled = json.dumps({"xray_trace_id": TRACE.replace("Sampled=1", "Sampled=0")})
    sdk(gateway, stack.key).chat.completions.create(
        model="gpt-4o", messages=CATS, extra_headers={"x-amzn-lambda-context": unsampled}
    )
    xray_daemon.settimeout(0.5)
    with pytest.raises(TimeoutError):
        xray_daemon.recv(65536)
