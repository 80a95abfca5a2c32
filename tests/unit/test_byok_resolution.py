"""UpstreamDirectory with bring-your-own-keys over the cached Secrets Manager source (moto in-process):
the workspace's own resource and models where it has a secret, the stack's otherwise, at no Secrets Manager
cost on a warm instance, and changes within the max age."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chatgate.errors import ModelNotFound, ServiceUnavailable, UpstreamError
from chatgate.settings import Settings
from chatgate.stores.aws import AwsError, AwsJsonClient
from chatgate.stores.secrets import SecretsManagerSource
from chatgate.upstream.config import UpstreamDirectory, byok_capable

SETTINGS = Settings(CHATGATE_MODELS="gpt-4o,gpt-4o-mini,gpt-4.1")  # type: ignore[call-arg]
SHARED = {"endpoint": "https://shared-eu.openai.azure.com", "api_key": "shared-key"}
OWN = {
    "endpoint": "https://acme.openai.azure.com/",
    "api_key": "acme-key",
    "api_version": "2025-01-01-preview",
    "deployments": {"gpt-4o": "acme-4o", "acme-tuned": "acme-ft"},
}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-central-1")
        client.create_secret(Name=SETTINGS.upstream_secret_name("eu"), SecretString=json.dumps(SHARED))
        yield client


def directory(client: Any, clock: Clock, calls: list[str]) -> UpstreamDirectory:
    client.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue",
        lambda params, **_: calls.append(params["SecretId"]),
    )
    return UpstreamDirectory(
        SecretsManagerSource(client, max_age=60, clock=clock),
        models=SETTINGS.models,
        secret_name=SETTINGS.upstream_secret_name,
        byok_secret_name=SETTINGS.byok_secret_name,
    )


async def test_a_workspace_without_own_keys_costs_no_call_on_a_warm_instance(aws: Any) -> None:
    calls: list[str] = []
    upstreams = directory(aws, Clock(), calls)
    for _ in range(50):
        target = await upstreams.resolve("eu", "globex", "gpt-4o")
    assert target.resource.endpoint == SHARED["endpoint"] and target.byok_workspace is None
    assert sorted(calls) == ["chatgate/byok/globex/eu", "chatgate/upstream/eu"]  # once each, cached
    catalog = await upstreams.catalog("eu", "globex")
    assert catalog.models == ("gpt-4o", "gpt-4o-mini", "gpt-4.1") and catalog.owned_by == "chatgate"
    assert len(calls) == 2


async def test_a_byok_workspace_gets_its_resource_deployments_and_models(aws: Any) -> None:
    aws.create_secret(Name=SETTINGS.byok_secret_name("acme", "eu"), SecretString=json.dumps(OWN))
    calls: list[str] = []
    upstreams = directory(aws, Clock(), calls)
    target = await upstreams.resolve("eu", "acme", "gpt-4o")
    assert target.resource.endpoint == "https://acme.openai.azure.com"
    assert target.resource.api_key == "acme-key" and target.resource.api_version == "2025-01-01-preview"
    assert target.deployment == "acme-4o" and target.byok_workspace == "acme"
    assert (await upstreams.resolve("eu", "acme", "acme-tuned")).deployment == "acme-ft"
    with pytest.raises(ModelNotFound):
        await upstreams.resolve("eu", "acme", "gpt-4.1")  # the stack's, not acme's
    catalog = await upstreams.catalog("eu", "acme")
    assert catalog.models == ("gpt-4o", "acme-tuned") and catalog.owned_by == "acme" and catalog.byok
    # the shared secret is read alongside the workspace's own on a cold instance, then neither again
    assert sorted(calls) == ["chatgate/byok/acme/eu", "chatgate/upstream/eu"]
    assert "acme-key" not in repr(target)  # the key stays out of reprs (and so out of tracebacks)


async def test_changes_take_effect_after_the_max_age(aws: Any) -> None:
    clock = Clock()
    upstreams = directory(aws, clock, [])
    assert (await upstreams.resolve("eu", "acme", "gpt-4o")).byok_workspace is None
    aws.create_secret(Name=SETTINGS.byok_secret_name("acme", "eu"), SecretString=json.dumps(OWN))
    clock.now = 59
    assert (await upstreams.resolve("eu", "acme", "gpt-4o")).byok_workspace is None  # cached "none"
    clock.now = 60
    assert (await upstreams.resolve("eu", "acme", "gpt-4o")).byok_workspace == "acme"
    aws.delete_secret(SecretId=SETTINGS.byok_secret_name("acme", "eu"))  # with a recovery window
    clock.now = 120
    target = await upstreams.resolve("eu", "acme", "gpt-4.1")  # scheduled for deletion: gone
    assert target.byok_workspace is None and target.resource.endpoint == SHARED["endpoint"]


@pytest.mark.parametrize("value", ["not json", "[1, 2]", json.dumps({"endpoint": "https://a"})])
async def test_an_unusable_own_secret_is_a_502_never_the_shared_resource(aws: Any, value: str) -> None:
    aws.create_secret(Name=SETTINGS.byok_secret_name("acme", "eu"), SecretString=value)
    upstreams = directory(aws, Clock(), [])
    with pytest.raises(UpstreamError) as caught:
        await upstreams.resolve("eu", "acme", "gpt-4o")
    assert "bring-your-own-keys upstream of workspace 'acme'" in caught.value.message
    with pytest.raises(UpstreamError):
        await upstreams.catalog("eu", "acme")


async def test_a_secrets_manager_failure_is_a_503_not_a_fallback(
    aws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from botocore.stub import Stubber

    upstreams = directory(aws, Clock(), [])
    with Stubber(aws) as stub:
        stub.add_client_error("get_secret_value", service_error_code="AccessDeniedException")
        with pytest.raises(ServiceUnavailable):
            await upstreams.resolve("eu", "acme", "gpt-4o")
    assert "AccessDeniedException" in caplog.text


@pytest.mark.parametrize(
    ("workspace", "capable"),
    [("acme", True), ("team.a@corp_1+x=y-z", True), ("a/b", False), ("my team", False), ("", False)],
)
def test_only_ids_that_can_name_a_secret_are_looked_up(workspace: str, capable: bool) -> None:
    assert byok_capable(workspace) is capable


async def test_a_workspace_id_that_cannot_have_own_keys_is_never_looked_up(aws: Any) -> None:
    calls: list[str] = []
    upstreams = directory(aws, Clock(), calls)
    await upstreams.resolve("eu", "my team", "gpt-4o")
    assert calls == ["chatgate/upstream/eu"]


@pytest.mark.parametrize(
    ("endpoint", "allowed"),
    [
        ("https://acme.openai.azure.com", True),
        ("https://ACME.OpenAI.Azure.com:443", True),
        ("https://acme.cognitiveservices.azure.com", True),
        ("https://acme.services.ai.azure.com/openai", True),
        ("http://acme.openai.azure.com", False),
        ("http://127.0.0.1:9001", False),
        ("https://a:b:c", False),
        ("https://acme.openai.azure.com:8443", False),
        ("https://user:pw@acme.openai.azure.com", False),
        ("https://acme.openai.azure.com@evil.example", False),
        ("https://openai.azure.com", False),
        ("https://acme.openai.azure.com.evil.example", False),
        ("https://acme.openai.azure.com/../admin", False),
        ("https://acme.openai.azure.com/#x", False),
        ("https://acme.openai.azure.com/\r\nHost: x", False),
        ("https://\u0430cme.openai.azure.com", False),
    ],
)
def test_endpoint_policy(endpoint: str, allowed: bool) -> None:
    from chatgate.upstream.config import EndpointPolicy

    assert (EndpointPolicy().problem(endpoint) is None) is allowed


async def test_a_stored_endpoint_outside_the_policy_is_a_502_at_resolution() -> None:
    from chatgate.upstream.config import EndpointPolicy
    from tests.fakes import MemorySecrets

    secrets = MemorySecrets(
        {
            SETTINGS.upstream_secret_name("eu"): SHARED,
            SETTINGS.byok_secret_name("acme", "eu"): {**OWN, "endpoint": "http://127.0.0.1:9001"},
        }
    )
    upstreams = UpstreamDirectory(
        secrets,
        models=SETTINGS.models,
        secret_name=SETTINGS.upstream_secret_name,
        byok_secret_name=SETTINGS.byok_secret_name,
        byok_endpoints=EndpointPolicy(),
    )
    with pytest.raises(UpstreamError) as caught:
        await upstreams.resolve("eu", "acme", "gpt-4o")
    assert caught.value.status_code == 502 and caught.value.code == "byok_endpoint_not_allowed"
    loopback = UpstreamDirectory(
        secrets,
        models=SETTINGS.models,
        secret_name=SETTINGS.upstream_secret_name,
        byok_secret_name=SETTINGS.byok_secret_name,
        byok_endpoints=EndpointPolicy(allow_http_loopback=True),
    )
    assert (await loopback.resolve("eu", "acme", "gpt-4o")).resource.endpoint == "http://127.0.0.1:9001"


async def test_a_cold_instance_reads_both_secrets_at_once() -> None:
    """The workspace's own secret and the stack's are read concurrently: one round trip, not two."""
    in_flight: list[str] = []
    both_in_flight = asyncio.Event()

    class Reader(AwsJsonClient):  # Secrets Manager's API as the gateway calls it
        def __init__(self) -> None:
            pass

        async def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
            name = payload["SecretId"]
            in_flight.append(name)
            if len(in_flight) == 2:
                both_in_flight.set()
            await asyncio.wait_for(both_in_flight.wait(), timeout=5)  # times out if read one by one
            if "byok" in name:
                raise AwsError("ResourceNotFoundException", 400, {})
            return {"SecretString": json.dumps(SHARED)}

    upstreams = UpstreamDirectory(
        SecretsManagerSource(Reader(), max_age=60),
        models=SETTINGS.models,
        secret_name=SETTINGS.upstream_secret_name,
        byok_secret_name=SETTINGS.byok_secret_name,
    )
    target = await upstreams.resolve("eu", "globex", "gpt-4o")
    assert target.resource.endpoint == SHARED["endpoint"]
    assert sorted(in_flight) == ["chatgate/byok/globex/eu", "chatgate/upstream/eu"]


async def test_a_byok_workspace_does_not_need_the_stacks_secret(aws: Any) -> None:
    aws.create_secret(Name=SETTINGS.byok_secret_name("acme", "eu"), SecretString=json.dumps(OWN))
    aws.delete_secret(SecretId=SETTINGS.upstream_secret_name("eu"), ForceDeleteWithoutRecovery=True)
    upstreams = directory(aws, Clock(), [])
    assert (await upstreams.resolve("eu", "acme", "gpt-4o")).byok_workspace == "acme"
    with pytest.raises(UpstreamError, match="No upstream is configured"):
        await upstreams.resolve("eu", "globex", "gpt-4o")  # a workspace without its own still needs it
