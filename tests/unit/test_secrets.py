"""Upstream settings from Secrets Manager: cached for the stated max age, absent secrets cached too."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from chatgate.errors import UpstreamError
from chatgate.stores.secrets import SecretsManagerSource
from chatgate.upstream.config import UpstreamDirectory


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-central-1")


async def test_changes_take_effect_after_max_age_and_missing_is_cached(secretsmanager: object) -> None:
    client = secretsmanager
    clock = Clock()
    calls: list[str] = []
    client.meta.events.register("before-call.secrets-manager.GetSecretValue", lambda **_: calls.append("get"))
    source = SecretsManagerSource(client, max_age=60, clock=clock)  # type: ignore[arg-type]

    assert await source.get_json("chatgate/upstream/eu") is None
    assert await source.get_json("chatgate/upstream/eu") is None
    assert len(calls) == 1  # "no such secret" is remembered too

    client.create_secret(
        Name="chatgate/upstream/eu", SecretString=json.dumps({"endpoint": "https://a", "api_key": "1"})
    )
    clock.now = 61
    assert (await source.get_json("chatgate/upstream/eu")) == {"endpoint": "https://a", "api_key": "1"}
    client.put_secret_value(
        SecretId="chatgate/upstream/eu", SecretString=json.dumps({"endpoint": "https://b", "api_key": "2"})
    )
    clock.now = 100
    assert (await source.get_json("chatgate/upstream/eu"))["endpoint"] == "https://a"  # within max age
    clock.now = 122
    assert (await source.get_json("chatgate/upstream/eu"))["endpoint"] == "https://b"
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "No upstream is configured for region 'eu'."),
        ("{}", "No upstream is configured for region 'eu'."),
        ('{"endpoint": "https://a"}', "The upstream for region 'eu' is misconfigured."),
        ("not json", "No upstream is configured for region 'eu'."),
    ],
)
async def test_missing_or_broken_upstream_is_a_clear_502(
    secretsmanager: object, value: str | None, message: str
) -> None:
    if value is not None:
        secretsmanager.create_secret(Name="chatgate/upstream/eu", SecretString=value)  # type: ignore[attr-defined]
    directory = UpstreamDirectory(
        SecretsManagerSource(secretsmanager, max_age=0),  # type: ignore[arg-type]
        models=("gpt-4o",),
        secret_name=lambda region: f"chatgate/upstream/{region}",
    )
    with pytest.raises(UpstreamError) as caught:
        await directory.resolve("eu", "acme", "gpt-4o")
    assert caught.value.message == message
    assert caught.value.status_code == 502
