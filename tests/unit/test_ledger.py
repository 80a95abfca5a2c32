"""chatgate.limits.ledger and `chatgate ledger replay`'s reading side: an unsettled line, as the gateway
writes it,
is found again in a log file (raw or as CloudWatch exports it) or a log group, once, and nothing else is."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chatgate.cli import main
from chatgate.limits.ledger import UnsettledWrite, log_unsettled, unsettled_in
from chatgate.observability.logs import ChatgateFormatter
from chatgate.stores.usage_dynamodb import UsageStoreError

WRITES = [
    UnsettledWrite.of(
        "reconcile",
        "0123456789abcdef",
        UsageStoreError("DynamoDB UpdateItem outcome unknown: ReadTimeout", maybe_applied=True),
        key="RL#acme#gpt-4o#1700000000",
        requests=0,
        tokens=-900,
    ),
    UnsettledWrite.of(
        "usage",
        "0123456789abcdef",
        UsageStoreError("DynamoDB UpdateItem failed: ThrottlingException"),
        workspace_id="acme",
        day="2025-03-01",
        model="gpt-4o",
        prompt_tokens=30,
        completion_tokens=3,
        source="azure",
    ),
]


def unsettled_line(caplog: pytest.LogCaptureFixture) -> str:
    with caplog.at_level(logging.ERROR, logger="chatgate.limits.ledger"):
        log_unsettled("req_1", "acme", WRITES)
    (record,) = caplog.records
    return ChatgateFormatter(utc=True, use_rfc3339=True).format(record)  # the deployed line's shape


def test_the_line_says_unknown_or_failed_and_round_trips(caplog: pytest.LogCaptureFixture) -> None:
    line = unsettled_line(caplog)
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["message"].startswith(
        "unsettled: reconcile unknown, usage failed"
    )
    assert [write for _, write in unsettled_in([line])] == WRITES
    assert {request for request, _ in unsettled_in([line])} == {"req_1"}
    assert "prompt" not in json.dumps(entry["unsettled"]).replace("prompt_tokens", "")  # counts, no text


def test_other_lines_and_damaged_writes_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    line = unsettled_line(caplog)
    exported = f"2026-12-06T08:00:00.000Z {line}"  # CloudWatch's export puts a timestamp first
    damaged = json.loads(line)
    damaged["unsettled"]["writes"][0]["kind"] = "drop table"
    del damaged["unsettled"]["writes"][1]["marker"]
    noise = ['{"message": "POST /openai/eu/v1/chat/completions 200"}', "INFO: started", "{not json", ""]
    found = list(unsettled_in([*noise, exported, json.dumps(damaged)]))
    assert [write for _, write in found] == WRITES
    nested = json.loads(line)  # a logger that keeps extra["fields"] as a nested object
    nested["fields"] = {"unsettled": nested.pop("unsettled")}
    assert [write for _, write in unsettled_in([json.dumps(nested)])] == WRITES


def test_replay_lists_each_write_once_from_files(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = unsettled_line(caplog)
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(f"INFO: noise\n{line}\n{line}\n")
    second.write_text(f"{line}\n")  # the same line in two files: one write each
    assert main(["ledger", "replay", "--file", str(first), str(second), "--dry-run", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"]["writes"] == 2
    assert [w["kind"] for w in document["writes"]] == ["reconcile", "usage"]
    assert {w["result"] for w in document["writes"]} == {"not applied (dry run)"}
    assert main(["ledger", "replay", "--file", str(tmp_path / "missing.log")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_replay_reads_the_functions_log_group(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    line = unsettled_line(caplog)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LOGS"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        logs = boto3.client("logs", region_name="eu-central-1")
        logs.create_log_group(logGroupName="/aws/lambda/chatgate")
        logs.create_log_stream(logGroupName="/aws/lambda/chatgate", logStreamName="s")
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": '{"message":"other"}'}, {"timestamp": now, "message": line}]
        logs.put_log_events(logGroupName="/aws/lambda/chatgate", logStreamName="s", logEvents=events)
        assert main(["ledger", "replay", "--log-group", "/aws/lambda/chatgate", "--dry-run", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["summary"]["writes"] == 2
        assert main(["ledger", "replay", "--log-group", "/aws/lambda/nothing", "--dry-run"]) == 1
        assert "cannot read log group" in capsys.readouterr().err
