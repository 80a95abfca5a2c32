"""`chatgate dev` against an AWS-compatible DynamoDB that lacks UpdateTimeToLive (dynalite, pointed to with
AWS_ENDPOINT_URL_DYNAMODB): it warns and serves, instead of crashing at start."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from chatgate.app import create_app
from chatgate.dev import aws
from chatgate.dev.server import prepare
from chatgate.settings import Settings
from tests.support import dynalite
from tests.support.servers import serve


@pytest.fixture(scope="module")
def dynalite_url() -> Iterator[str]:
    with dynalite.dynalite() as url:
        yield url


def test_dynalite_really_lacks_update_time_to_live(dynalite_url: str) -> None:
    client = dynalite.client(dynalite_url)
    table = dynalite.create_rate_limit_table(client, "ttl-probe")
    assert aws.enable_ttl(client, table) is False


def test_dev_warns_and_serves_when_ttl_cannot_be_enabled(
    dynalite_url: str, moto_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in aws.AWS_ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynalite_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_url)
    monkeypatch.setenv("CHATGATE_TABLE_NAME", "dev-data")
    monkeypatch.setenv("CHATGATE_RATE_LIMIT_TABLE_NAME", "dev-ratelimits")
    monkeypatch.setenv("CHATGATE_CONTROL_TABLE_NAME", "dev-control")
    monkeypatch.setenv("CHATGATE_SECRET_PREFIX", "devdynalite")
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_ENDPOINT_EU", "AZURE_OPENAI_ENDPOINT_US"):
        monkeypatch.delenv(name, raising=False)

    with caplog.at_level(logging.WARNING, logger="chatgate.dev.aws"):
        stack = prepare({}, settings=Settings())
    try:
        warnings = [r.getMessage() for r in caplog.records if "did not enable TTL" in r.getMessage()]
        assert len(warnings) == 3  # every table (data, control, rate limits), and it went on
        assert stack.aws_endpoint is None  # no embedded AWS: the configured endpoints are used
        with serve(create_app(stack.settings)) as gateway:
            response = httpx.post(
                f"{gateway}/openai/eu/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {stack.demo_key}"},
            )
        assert response.status_code == 200, response.text
        assert response.headers["x-ratelimit-remaining-requests"]
    finally:
        stack.close()
