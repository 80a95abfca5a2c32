"""Shared fixtures: AWS on moto (server mode), two Azure emulators (eu, us), and the gateway on loopback.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest

from chatgate.app import create_app
from chatgate.dev import aws
from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from chatgate.gateway.auth import ApiKey, hash_key
from chatgate.settings import Settings
from chatgate.stores.keys_dynamodb import key_item
from tests.support.servers import serve

# A fixed, well-formed key that tests and the events/ payloads use; created in the store per test.
EVENT_KEY = "cg_0123456789abcdef_events-and-tests-only-key"
EVENT_WORKSPACE = "events"
EMULATOR_KEYS = {"eu": "azure-key-eu", "us": "azure-key-us"}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode for the whole session; boto3 finds it through AWS_ENDPOINT_URL."""
    for name in aws.AWS_ENDPOINT_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="eu-central-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    logging.getLogger("werkzeug").disabled = True  # moto's request log
    server, url = aws.start_moto()
    os.environ["AWS_ENDPOINT_URL"] = url
    yield url
    server.stop()


@pytest.fixture(scope="session")
def emulators() -> Iterator[dict[str, RunningEmulator]]:
    """One Azure OpenAI emulator per region, so data residency is observable."""
    running = {
        region: start_emulator(EmulatorState(api_key=key, name=f"azure-{region}"))
        for region, key in EMULATOR_KEYS.items()
    }
    yield running
    for emulator in running.values():
        emulator.stop()


@dataclass
class Stack:
    """A seeded local stack for one test."""

    settings: Settings
    key: str
    emulators: dict[str, RunningEmulator]
    moto_url: str

    def upstream(self, region: str) -> EmulatorState:
        return self.emulators[region].state

    def create_key(self, workspace: str, name: str = "") -> str:
        from chatgate.cli import create_key

        return create_key(self.settings, workspace, name)

    def put_upstream(self, region: str, value: dict[str, object]) -> None:
        aws.put_secret(boto3.client("secretsmanager"), self.settings.upstream_secret_name(region), value)


def seed_stack(settings: Settings, emulators: dict[str, RunningEmulator]) -> None:
    """Tables, one upstream secret per region, and the events/ key."""
    dynamodb, secretsmanager = boto3.client("dynamodb"), boto3.client("secretsmanager")
    aws.ensure_tables(dynamodb, settings)
    for region in settings.regions:
        aws.put_secret(
            secretsmanager,
            settings.upstream_secret_name(region),
            {
                "endpoint": emulators[region].url,
                "api_key": EMULATOR_KEYS[region],
                "api_version": "2024-10-21",
            },
        )
    dynamodb.put_item(
        TableName=settings.control_table_name,
        Item=key_item(
            ApiKey(EVENT_KEY.split("_")[1], EVENT_WORKSPACE, hash_key(EVENT_KEY), "events", int(time.time()))
        ),
    )


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Default settings with the short caches tests want; override with monkeypatch.setenv before use."""
    monkeypatch.setenv("CHATGATE_KEY_CACHE_SECONDS", "0")
    monkeypatch.setenv("CHATGATE_KEY_NEGATIVE_CACHE_SECONDS", "0")
    monkeypatch.setenv("CHATGATE_SECRET_MAX_AGE_SECONDS", "0")
    # As `chatgate dev` does: bring-your-own-keys workspaces may point at the loopback Azure emulators.
    monkeypatch.setenv("CHATGATE_BYOK_ALLOW_HTTP_LOOPBACK", "true")
    return Settings()


@pytest.fixture
def stack(moto_url: str, emulators: dict[str, RunningEmulator], settings: Settings) -> Iterator[Stack]:
    httpx.post(f"{moto_url}/moto-api/reset")
    for emulator in emulators.values():
        emulator.state.reset()
    seed_stack(settings, emulators)
    yield Stack(settings=settings, key=EVENT_KEY, emulators=emulators, moto_url=moto_url)


@pytest.fixture
def gateway(stack: Stack) -> Iterator[str]:
    """The gateway served by uvicorn on loopback; yields its base URL."""
    with serve(create_app(stack.settings)) as url:
        yield url
