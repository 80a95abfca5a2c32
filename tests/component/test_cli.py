"""`chatgate keys create|list|revoke` against the AWS endpoint in the environment (moto here)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import boto3
import openai
import pytest

from chatgate.cli import main
from tests.conftest import Stack


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_key_lifecycle(stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "keys", "create", "--workspace", "acme", "--name", "ci pipeline")
    assert code == 0
    [key] = out.splitlines()  # the key, alone on its line, on stdout
    assert key.startswith("cg_")

    # Only the hash is stored: the key itself is nowhere in the table.
    items = boto3.client("dynamodb").scan(TableName=stack.settings.table_name)["Items"]
    assert key not in str(items)

    client = openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    key_id = key.split("_")[1]
    deadline = time.monotonic() + 3
    while True:  # the last use is written in the background, after the response
        _, out, _ = run(capsys, "keys", "list", "--workspace", "acme", "--json")
        [listed] = json.loads(out)["keys"]
        if listed["last_used_at"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert listed["key_id"] == key_id and listed["name"] == "ci pipeline" and listed["status"] == "active"
    assert abs(datetime.fromisoformat(listed["last_used_at"]).timestamp() - time.time()) < 60
    assert key not in out and key.split("_", 2)[2] not in out

    code, out, _ = run(capsys, "keys", "list", "--workspace", "acme")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["KEY_ID", "NAME", "CREATED", "LAST", "USED", "EXPIRES", "STATUS"]
    assert row.startswith(key_id) and "ci pipeline" in row and row.endswith("active")
    assert row.count("Z ") == 2  # created and last used are times; it never expires ("-")
    assert key not in out and key.split("_", 2)[2] not in out

    code, out, _ = run(capsys, "keys", "revoke", key_id)
    assert code == 0 and key_id in out
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    _, out, _ = run(capsys, "keys", "list", "--workspace", "acme")
    assert "revoked" in out


def test_listing_is_per_workspace(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "keys", "create", "--workspace", "acme")
    _, out, _ = run(capsys, "keys", "create", "--workspace", "globex")
    globex_id = out.strip().split("_")[1]
    _, out, _ = run(capsys, "keys", "list", "--workspace", "acme")
    assert globex_id not in out


def test_revoking_an_unknown_key_fails_clearly(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "keys", "revoke", "0000000000000000")
    assert code == 1 and "No API key found with id '0000000000000000'" in err


def test_expiring_keys(stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "keys", "create", "--workspace", "acme", "--expires-in-days", "-1")
    client = openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=out.strip(), max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
