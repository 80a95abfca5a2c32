"""`chatgate control migrate`: an existing stack's keys and limits, kept in its data table before the
control plane, are copied into the control table, idempotently, with a dry run that writes nothing."""

from __future__ import annotations

import time

import boto3
import httpx
import pytest

from chatgate.cli import main
from chatgate.gateway.auth import ApiKey, hash_key, new_key
from chatgate.limits.ratelimit import Limits
from chatgate.stores.keys_dynamodb import key_item
from chatgate.stores.workspaces_dynamodb import limits_item
from tests.conftest import Stack


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_migration_copies_keys_and_limits_once(
    stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb = boto3.client("dynamodb")
    data, control = stack.settings.table_name, stack.settings.control_table_name
    key, key_id, key_hash = new_key()
    dynamodb.put_item(
        TableName=data, Item=key_item(ApiKey(key_id, "legacy", key_hash, "old key", int(time.time())))
    )
    dynamodb.put_item(TableName=data, Item=limits_item("legacy", "gpt-4o", Limits(7, 7000)))
    dynamodb.put_item(
        TableName=data,
        Item={"pk": {"S": "WS#usage-only"}, "sk": {"S": "USAGE#2025-01-01#gpt-4o"}, "requests": {"N": "1"}},
    )
    ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

    def chat() -> httpx.Response:
        return httpx.post(
            f"{gateway}/openai/eu/v1/chat/completions", json=ask, headers={"authorization": f"Bearer {key}"}
        )

    assert chat().status_code == 401  # the control plane does not know the key yet

    dry = run(capsys, "control", "migrate", "--dry-run")
    assert "keys:       1 would copy" in dry and "limits:     1 would copy" in dry
    assert "workspaces: 2 would be created" in dry
    assert chat().status_code == 401  # nothing written

    done = run(capsys, "control", "migrate")
    assert "keys:       1 copied" in done and "workspaces: 2 created" in done
    answered = chat()
    assert answered.status_code == 200
    assert answered.headers["x-ratelimit-limit-requests"] == "7"  # the limit came along
    item = dynamodb.get_item(TableName=control, Key={"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "KEY"}})[
        "Item"
    ]
    assert item["key_hash"]["S"] == hash_key(key)

    again = run(capsys, "control", "migrate")
    assert "keys:       0 copied" in again and "workspaces: 0 created" in again
    assert "unchanged:  2 already in the control table" in again
