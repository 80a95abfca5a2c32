"""stores/aws.py: SigV4 as botocore computes it, endpoints and errors as boto3 reads them (no sockets:
httpx.MockTransport answers in-process)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from chatgate.stores.aws import (
    DYNAMODB,
    SECRETS_MANAGER,
    AwsError,
    AwsJsonClient,
    AwsUnreachable,
    Credentials,
    endpoint_from_env,
    sign,
)

NOW = datetime.datetime(2025, 3, 1, 12, 34, 56, tzinfo=datetime.UTC)


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize(
    ("service", "host"),
    [(DYNAMODB, "dynamodb.eu-central-1.amazonaws.com"), (SECRETS_MANAGER, "127.0.0.1:4566")],
)
def test_signature_matches_botocore(
    monkeypatch: pytest.MonkeyPatch, service: Any, host: str, token: str | None
) -> None:
    body = json.dumps({"TableName": "t", "Key": {"pk": {"S": "a/b c"}}}).encode()
    target = f"{service.target_prefix}.GetItem"
    ours = sign(
        credentials=Credentials("AKIDEXAMPLE", "secret/key+", token),
        service=service,
        region="eu-central-1",
        host=host,
        target=target,
        body=body,
        now=NOW.timestamp(),
    )
    request = AWSRequest(
        method="POST",
        url=f"https://{host}/",
        data=body,
        headers={"Content-Type": service.content_type, "X-Amz-Target": target},
    )
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None), raising=False)
    monkeypatch.setattr("botocore.auth.datetime.datetime", _FrozenDatetime, raising=False)
    SigV4Auth(
        BotoCredentials("AKIDEXAMPLE", "secret/key+", token), service.signing_name, "eu-central-1"
    ).add_auth(request)
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


class _FrozenDatetime(datetime.datetime):
    @classmethod
    def utcnow(cls) -> _FrozenDatetime:  # type: ignore[override]
        return cls(2025, 3, 1, 12, 34, 56)


def test_endpoints_follow_boto3s_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    assert endpoint_from_env(DYNAMODB, "eu-west-1") == "https://dynamodb.eu-west-1.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert endpoint_from_env(SECRETS_MANAGER, "eu-west-1") == "http://127.0.0.1:5000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:4567")
    assert endpoint_from_env(DYNAMODB, "eu-west-1") == "http://127.0.0.1:4567"
    assert endpoint_from_env(SECRETS_MANAGER, "eu-west-1") == "http://127.0.0.1:5000"


def client_answering(*answers: httpx.Response | Exception) -> tuple[AwsJsonClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    pending = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = AwsJsonClient(
        DYNAMODB,
        http,
        region="eu-central-1",
        endpoint="http://127.0.0.1:8000",
        credentials=Credentials("a", "b"),
    )
    return client, seen


async def test_a_call_posts_the_signed_target_and_decodes_the_answer() -> None:
    client, seen = client_answering(httpx.Response(200, json={"Item": {"pk": {"S": "x"}}}))
    assert await client.call("GetItem", {"TableName": "t"}) == {"Item": {"pk": {"S": "x"}}}
    (request,) = seen
    assert request.url == "http://127.0.0.1:8000/"
    assert request.headers["host"] == "127.0.0.1:8000"
    assert request.headers["x-amz-target"] == "DynamoDB_20120810.GetItem"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=a/")
    assert json.loads(request.content) == {"TableName": "t"}


async def test_errors_carry_the_code_and_body_and_throttling_is_retried_once() -> None:
    failed = {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "Item": {}}
    client, _ = client_answering(httpx.Response(400, json=failed))
    with pytest.raises(AwsError) as caught:
        await client.call("UpdateItem", {})
    assert caught.value.code == "ConditionalCheckFailedException" and caught.value.body["Item"] == {}

    throttled = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException"}
    client, seen = client_answering(httpx.Response(400, json=throttled), httpx.Response(200, json={}))
    assert await client.call("UpdateItem", {}) == {}
    assert len(seen) == 2

    client, seen = client_answering(httpx.Response(400, json=throttled), httpx.Response(400, json=throttled))
    with pytest.raises(AwsError, match="ThrottlingException"):
        await client.call("UpdateItem", {})


async def test_no_answer_is_unreachable_and_a_read_timeout_is_not_retried() -> None:
    client, seen = client_answering(httpx.ConnectError("refused"), httpx.ConnectError("refused"))
    with pytest.raises(AwsUnreachable, match="ConnectError"):
        await client.call("GetItem", {})
    assert len(seen) == 2
    client, seen = client_answering(httpx.ReadTimeout("slow"))
    with pytest.raises(AwsUnreachable, match="ReadTimeout"):
        await client.call("UpdateItem", {})
    assert len(seen) == 1  # the write may have happened: never sent twice
