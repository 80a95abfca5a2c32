"""Bring-your-own-keys endpoints are checked when a request is served, not only by the CLI: a secret written
directly into Secrets Manager with an endpoint that is not https on an Azure host is refused in the
contract's shape (502), nothing is sent to it and nothing stays reserved."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import boto3
import httpx
import pytest

from chatgate.app import create_app
from chatgate.settings import Settings
from tests.conftest import Stack
from tests.support.contract import assert_error_shape
from tests.support.servers import serve

HI = [{"role": "user", "content": "hi"}]


class Listener:
    """A loopback TCP port that counts connections (stands in for the Lambda Runtime API on :9001)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


@pytest.fixture
def deployed_gateway(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The gateway as deployed: no loopback exception for bring-your-own-keys endpoints."""
    monkeypatch.setenv("CHATGATE_BYOK_ALLOW_HTTP_LOOPBACK", "false")
    with serve(create_app(Settings())) as url:
        yield url


def put_byok(stack: Stack, endpoint: str) -> None:
    value = {"endpoint": endpoint, "api_key": "acme-own-key", "deployments": {"gpt-4o": "gpt-4o"}}
    boto3.client("secretsmanager").create_secret(
        Name=stack.settings.byok_secret_name("acme", "eu"), SecretString=json.dumps(value)
    )


def remaining_tokens(gateway: str, key: str) -> int:
    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HI, "max_tokens": 5},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return int(response.headers["x-ratelimit-remaining-tokens"])


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:{port}",  # the Lambda Runtime API's address shape
        "https://127.0.0.1:{port}",
        "https://a:b:c",
        "https://acme.openai.azure.com@127.0.0.1:{port}",
        "https://acme.openai.azure.com:{port}",
        "https://acme.openai.azure.com.127.0.0.1.nip.io",
        "https://acme.openai.azure.com?x=1",
        "ftp://acme.openai.azure.com",
    ],
)
def test_an_endpoint_that_is_not_https_on_azure_is_refused_before_anything_is_reserved_or_sent(
    deployed_gateway: str, stack: Stack, listener: Listener, endpoint: str
) -> None:
    put_byok(stack, endpoint.format(port=listener.port))
    key = stack.create_key("acme")
    for stream in (False, True):
        response = httpx.post(
            f"{deployed_gateway}/openai/eu/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HI, "stream": stream},
            headers={"authorization": f"Bearer {key}"},
        )
        assert response.status_code == 502, response.text
        error = assert_error_shape(response)
        assert error["code"] == "byok_endpoint_not_allowed"
        assert "workspace 'acme'" in error["message"]
        assert "acme-own-key" not in response.text
        assert "x-ratelimit-remaining-tokens" not in response.headers  # refused before admission
    assert listener.connections == 0
    assert stack.upstream("eu").requests == []  # never the shared resource either
    models = httpx.get(f"{deployed_gateway}/openai/eu/v1/models", headers={"authorization": f"Bearer {key}"})
    assert models.status_code == 502


def test_nothing_stays_reserved_after_refusals(
    deployed_gateway: str, stack: Stack, listener: Listener
) -> None:
    other = stack.create_key("acme")
    before = remaining_tokens(deployed_gateway, other)
    put_byok(stack, f"http://127.0.0.1:{listener.port}")
    for _ in range(3):
        response = httpx.post(
            f"{deployed_gateway}/openai/eu/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HI, "max_tokens": 5},
            headers={"authorization": f"Bearer {other}"},
        )
        assert response.status_code == 502
    boto3.client("secretsmanager").delete_secret(
        SecretId=stack.settings.byok_secret_name("acme", "eu"), ForceDeleteWithoutRecovery=True
    )
    # The first request's usage is the only consumption: refusals reserved nothing.
    after = remaining_tokens(deployed_gateway, other)
    assert before - after < 200
    assert listener.connections == 0


def test_dev_and_tests_allow_loopback_emulators_only_when_the_suffixes_are_not_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatgate.dev.server import prepare  # noqa: F401  (dev applies the same rule in prepare())
    from chatgate.upstream.config import byok_endpoint_policy

    monkeypatch.delenv("CHATGATE_BYOK_ALLOW_HTTP_LOOPBACK", raising=False)
    monkeypatch.delenv("CHATGATE_BYOK_ENDPOINT_SUFFIXES", raising=False)
    assert byok_endpoint_policy(Settings()).problem("http://127.0.0.1:8000") is not None
    dev = Settings().model_copy(update={"byok_allow_http_loopback": True})
    assert byok_endpoint_policy(dev).problem("http://127.0.0.1:8000") is None
    monkeypatch.setenv("CHATGATE_BYOK_ENDPOINT_SUFFIXES", ".example.test")
    custom = Settings()
    assert custom.byok_endpoint_suffixes == (".example.test",)
    assert byok_endpoint_policy(custom).problem("https://r.example.test") is None
    assert byok_endpoint_policy(custom).problem("https://r.openai.azure.com") is not None
