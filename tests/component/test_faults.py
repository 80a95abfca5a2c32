"""Fault injection: DynamoDB and Secrets Manager failing under a running gateway (through a fault-injecting
proxy in front of moto), and Azure failing in every way the emulator and a dead port can. Whatever fails,
the client gets the contract's error shape with the right status: 503 with retry-after for chatgate's own
dependencies (never 401, never 500), 502 / 504 / Azure's own 4xx for the upstream, and writes that fail
after the response never change it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from chatgate.app import create_app
from chatgate.cli import main
from chatgate.limits import tokens
from chatgate.settings import Settings
from tests.conftest import Stack
from tests.support.contract import assert_error_shape, check_error_body
from tests.support.faults import Call, FaultyAws, ResettingPort, closed_port_url
from tests.support.servers import serve

FAULTS = ["throttle", "capacity", "error", "reset"]


def body(text: str = "hi", **extra: object) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def post(gateway: str, key: str, payload: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )


@pytest.fixture
def faulty(stack: Stack, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, FaultyAws]]:
    """A gateway whose DynamoDB and Secrets Manager calls go through the fault-injecting proxy."""
    with FaultyAws(moto_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url)
        with serve(create_app(Settings())) as gateway:
            yield gateway, proxy


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = assert_error_shape(response)
    assert error["type"] == "server_error"
    assert int(response.headers["retry-after"]) >= 1
    assert "Traceback" not in response.text and "botocore" not in response.text


# --- DynamoDB -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_key_store_failing_during_authentication_is_503_never_401(
    faulty: tuple[str, FaultyAws], stack: Stack, fault: str
) -> None:
    gateway, proxy = faulty
    key = stack.create_key("acme")
    key_table = stack.settings.control_table_name  # keys are control data
    proxy.fail = lambda call: fault if call.operation == "GetItem" and call.table == key_table else None
    for payload in (body(), body(stream=True)):
        assert_unavailable(post(gateway, key, payload))
    assert proxy.failed()
    proxy.fail = lambda call: None
    assert post(gateway, key, body()).status_code == 200  # it recovers with the store


@pytest.mark.parametrize("fault", FAULTS)
def test_rate_limit_store_failing_during_admission_is_503(
    faulty: tuple[str, FaultyAws], stack: Stack, fault: str
) -> None:
    gateway, proxy = faulty
    key = stack.create_key("acme")
    counters = stack.settings.rate_limit_table_name
    proxy.fail = lambda call: fault if call.table == counters else None
    for payload in (body(), body(stream=True)):
        assert_unavailable(post(gateway, key, payload))
    assert stack.upstream("eu").requests == []  # nothing admitted uncounted
    proxy.fail = lambda call: None
    assert post(gateway, key, body()).status_code == 200


@pytest.mark.parametrize("fault", ["throttle", "capacity", "error", "reset"])
def test_aws_failing_twice_then_answering_serves_the_request(
    faulty: tuple[str, FaultyAws], stack: Stack, fault: str
) -> None:
    """Every AWS call of a request (the key's GetItem, the limits' Query, the secret's GetSecretValue, the
    admission's UpdateItem) fails twice, then answers: retried as botocore's standard mode, the client gets
    its 200 and the books hold the request once."""
    gateway, proxy = faulty
    key = stack.create_key("acme")
    failures: dict[str, int] = {}

    def twice(call: Call) -> str | None:
        name = f"{call.operation}:{call.table or call.secret}"
        failures[name] = failures.get(name, 0) + 1
        return fault if failures[name] <= 2 else None

    proxy.fail = twice
    response = post(gateway, key, body())
    assert response.status_code == 200, response.text
    assert response.headers["x-ratelimit-remaining-requests"] == str(stack.settings.rpm_limit - 1)
    operations = {name.split(":")[0] for name, count in failures.items() if count >= 3}
    assert {"GetItem", "Query", "GetSecretValue", "UpdateItem"} <= operations, failures


def test_writes_applied_but_unanswered_are_retried_and_counted_once(
    faulty: tuple[str, FaultyAws], stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """DynamoDB applies the admission, the reconcile and the usage record, but each answer is lost twice
    (a reset after the write): each is retried, and the request's marker makes every copy a no-op. The
    client gets its 200; the counters and the usage record hold the request once."""
    gateway, proxy = faulty
    key = stack.create_key("acme")
    lost: dict[tuple[str, str | None], int] = {}

    def twice(call: Call) -> str | None:
        if call.operation != "UpdateItem":
            return None
        lost[(call.operation, call.table)] = lost.get((call.operation, call.table), 0) + 1
        return "lost" if lost[(call.operation, call.table)] <= 2 else None

    proxy.fail = twice
    answer = post(gateway, key, body())
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-ratelimit-remaining-requests"] == str(stack.settings.rpm_limit - 1)
    used = answer.json()["usage"]
    proxy.fail = lambda call: None
    second = body(max_tokens=5)
    again = post(gateway, key, second)
    assert again.headers["x-ratelimit-remaining-requests"] == str(stack.settings.rpm_limit - 2)
    # The window holds the first request's usage (its reservation given back once) and the second's
    # reservation: exactly.
    held = stack.settings.tpm_limit - int(again.headers["x-ratelimit-remaining-tokens"])
    assert held == used["total_tokens"] + tokens.count_prompt_tokens("gpt-4o-mini", second) + 5
    capsys.readouterr()
    assert main(["usage", "--workspace", "acme", "--json"]) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    assert total["requests"] == 2  # the first request's record, once, despite three copies
    assert total["prompt_tokens"] >= used["prompt_tokens"]
    assert len([call for call, fault in proxy.calls if fault == "lost"]) >= 4


def test_an_admission_applied_but_never_answered_is_a_503_and_released(
    faulty: tuple[str, FaultyAws], stack: Stack
) -> None:
    """Every attempt of the admission is applied by DynamoDB and its answer lost: the client gets a 503
    (the outcome is unknown), and the settlement gives back the request and the tokens DynamoDB counted."""
    gateway, proxy = faulty
    key = stack.create_key("acme")
    counters = stack.settings.rate_limit_table_name
    writes = []

    def lose_admissions(call: Call) -> str | None:  # the admission's three attempts (the release answers)
        if call.table == counters and call.operation == "UpdateItem":
            writes.append(call)
            return "lost" if len(writes) <= 3 else None
        return None

    proxy.fail = lose_admissions
    refused = post(gateway, key, body())
    assert_unavailable(refused)
    assert "x-ratelimit-remaining-requests" not in refused.headers
    assert len([call for call, fault in proxy.calls if fault == "lost"]) == 3  # applied 3 times, once
    assert stack.upstream("eu").requests == []
    second = body(max_tokens=5)
    served = post(gateway, key, second)
    assert served.status_code == 200
    assert served.headers["x-ratelimit-remaining-requests"] == str(stack.settings.rpm_limit - 1)
    reserved = tokens.count_prompt_tokens("gpt-4o-mini", second) + 5
    assert served.headers["x-ratelimit-remaining-tokens"] == str(stack.settings.tpm_limit - reserved)


def test_workspace_limits_failing_is_503(faulty: tuple[str, FaultyAws], stack: Stack) -> None:
    gateway, proxy = faulty
    key = stack.create_key("acme")
    proxy.fail = lambda call: "throttle" if call.operation == "Query" else None
    assert_unavailable(post(gateway, key, body()))


def test_writes_after_the_response_failing_do_not_change_it(
    faulty: tuple[str, FaultyAws], stack: Stack
) -> None:
    """The last-use and usage-record writes (UpdateItem on the control and data tables) fail: the answer
    stands."""
    gateway, proxy = faulty
    key = stack.create_key("acme")
    tables = {stack.settings.table_name, stack.settings.control_table_name}
    proxy.fail = lambda call: "error" if call.operation == "UpdateItem" and call.table in tables else None
    assert post(gateway, key, body()).status_code == 200
    streamed = post(gateway, key, body(stream=True))
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")


# --- Secrets Manager ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_secrets_manager_failing_on_a_cold_instance_is_503(
    faulty: tuple[str, FaultyAws], stack: Stack, fault: str
) -> None:
    gateway, proxy = faulty
    key = stack.create_key("acme")
    proxy.fail = lambda call: fault if call.operation == "GetSecretValue" else None
    for payload in (body(), body(stream=True)):
        assert_unavailable(post(gateway, key, payload))
    models = httpx.get(f"{gateway}/openai/eu/v1/models", headers={"authorization": f"Bearer {key}"})
    assert_unavailable(models)


def test_aws_unreachable_altogether_is_503(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", closed_port_url())
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", closed_port_url())
    with serve(create_app(Settings())) as gateway:
        assert_unavailable(post(gateway, stack.key, body()))


# --- Azure ----------------------------------------------------------------------------------------------


def sse_frames(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


def test_azure_429_is_passed_through_with_its_retry_hint(gateway: str, stack: Stack) -> None:
    response = post(gateway, stack.key, body("[[rate_limit]]"))
    assert response.status_code == 429
    assert assert_error_shape(response)["code"]
    assert response.headers.get("retry-after")


@pytest.mark.parametrize("stream", [False, True])
def test_azure_5xx_is_502(gateway: str, stack: Stack, stream: bool) -> None:
    response = post(gateway, stack.key, body("[[server_error]]", stream=stream))
    assert response.status_code == 502
    assert assert_error_shape(response)["type"] == "server_error"


@pytest.mark.parametrize("trigger", ["[[stream_reset_after:2]]", "[[stream_error_after:2]]"])
def test_a_stream_that_breaks_mid_way_ends_with_an_error_frame(
    gateway: str, stack: Stack, trigger: str
) -> None:
    response = post(gateway, stack.key, body(f"tell me a story {trigger}", stream=True))
    assert response.status_code == 200
    frames = sse_frames(response.text)
    assert frames and frames[-1] != "[DONE]"
    check_error_body(json.loads(frames[-1]))
    assert all("error" not in json.loads(frame) for frame in frames[:-1])


def test_azure_timeout_is_504(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator waits 20 s; the gateway gives up after 0.2 s (a busy machine can only make the
    timeout come, never prevent it)."""
    monkeypatch.setenv("CHATGATE_UPSTREAM_TIMEOUT_SECONDS", "0.2")
    with serve(create_app(Settings())) as gateway:
        for stream in (False, True):
            response = post(gateway, stack.key, body("[[slow:20000]]", stream=stream))
            assert response.status_code == 504, response.text
            assert assert_error_shape(response)["type"] == "server_error"


@pytest.mark.parametrize("upstream", ["refused", "reset"])
@pytest.mark.parametrize("stream", [False, True])
def test_azure_unreachable_or_resetting_before_answering_is_502(
    gateway: str, stack: Stack, upstream: str, stream: bool
) -> None:
    with ResettingPort() as resetting:
        endpoint = closed_port_url() if upstream == "refused" else resetting.url
        stack.put_upstream("eu", {"endpoint": endpoint, "api_key": "k", "api_version": "2024-10-21"})
        response = post(gateway, stack.key, body(stream=stream))
    assert response.status_code == 502, response.text
    assert assert_error_shape(response)["type"] == "server_error"


def test_the_fault_proxy_sees_real_calls(faulty: tuple[str, FaultyAws], stack: Stack) -> None:
    """The proxy is really in the path (so the tests above test what they say)."""
    gateway, proxy = faulty
    assert post(gateway, stack.key, body()).status_code == 200
    operations = {call.operation for call, _ in proxy.calls}
    assert {"GetItem", "UpdateItem", "GetSecretValue"} <= operations
    assert all(isinstance(call, Call) for call, _ in proxy.calls)
