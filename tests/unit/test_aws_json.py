"""stores/aws.py: SigV4 as botocore computes it, endpoints and errors as boto3 reads them (no sockets:
httpx.MockTransport answers in-process)."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
import time
import zlib
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from chatgate.stores import aws
from chatgate.stores.aws import (
    DYNAMODB,
    SECRETS_MANAGER,
    AwsError,
    AwsJsonClient,
    AwsUnreachable,
    Credentials,
    RetryPolicy,
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


async def test_errors_carry_the_code_and_body_and_throttling_is_retried_up_to_three_attempts() -> None:
    failed = {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "Item": {}}
    client, seen = client_answering(httpx.Response(400, json=failed))
    with pytest.raises(AwsError) as caught:
        await client.call("UpdateItem", {})
    assert caught.value.code == "ConditionalCheckFailedException" and caught.value.body["Item"] == {}
    assert not caught.value.maybe_applied and len(seen) == 1  # a definitive answer is never retried

    throttled = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException"}
    client, seen = client_answering(
        httpx.Response(400, json=throttled), httpx.Response(400, json=throttled), httpx.Response(200, json={})
    )
    assert await client.call("GetItem", {}) == {}
    assert len(seen) == 3

    client, seen = client_answering(*[httpx.Response(400, json=throttled)] * 3)
    with pytest.raises(AwsError, match="ThrottlingException") as caught:
        await client.call("GetItem", {})
    assert len(seen) == 3 and not caught.value.maybe_applied  # throttled: never applied


@pytest.mark.parametrize(
    "failure",
    [
        httpx.RemoteProtocolError("Server disconnected without sending a response."),  # broken reused
        httpx.ReadError("reset"),
        httpx.ReadTimeout("slow"),
        httpx.Response(500, json={"__type": "InternalServerError"}),
        httpx.Response(503, text="<html>busy</html>"),
    ],
)
async def test_an_answer_that_may_have_been_applied_is_retried_and_says_so(
    failure: httpx.Response | Exception,
) -> None:
    client, seen = client_answering(failure, httpx.Response(200, json={"Attributes": {}}))
    assert await client.call("UpdateItem", {}) == {"Attributes": {}}
    assert len(seen) == 2
    client, seen = client_answering(failure, failure, failure)
    with pytest.raises((AwsError, AwsUnreachable)) as caught:
        await client.call("UpdateItem", {})
    assert len(seen) == 3 and caught.value.maybe_applied


async def test_a_request_that_never_left_is_not_maybe_applied() -> None:
    client, seen = client_answering(*[httpx.ConnectError("refused")] * 3)
    with pytest.raises(AwsUnreachable, match="ConnectError") as caught:
        await client.call("GetItem", {})
    assert len(seen) == 3 and not caught.value.maybe_applied


async def test_retries_stop_at_the_time_budget() -> None:
    client, seen = client_answering(*[httpx.ReadError("reset")] * 10)
    policy = RetryPolicy(attempts=10, base=1.0, cap=1.0, budget=0.0)
    with pytest.raises(AwsUnreachable):
        await client.call("UpdateItem", {}, policy=policy)
    assert len(seen) == 1  # no pause fits in an empty budget


async def test_a_checksum_mismatch_is_retried_and_a_match_is_accepted() -> None:
    good = b'{"Item":{}}'
    crc = str(zlib.crc32(good))
    garbled = httpx.Response(200, content=b'{"Item":{"x":1}}', headers={"x-amz-crc32": crc})
    client, seen = client_answering(garbled, httpx.Response(200, content=good, headers={"x-amz-crc32": crc}))
    assert await client.call("GetItem", {}) == {"Item": {}}
    assert len(seen) == 2
    client, _ = client_answering(*[garbled] * 3)
    with pytest.raises(AwsError, match="CRC32CheckFailed"):
        await client.call("GetItem", {})


@pytest.mark.parametrize("content", [b"<html>proxy</html>", b"", b"[1, 2]", b'{"Item": '])
async def test_a_200_that_is_not_a_json_object_is_a_clear_error(content: bytes) -> None:
    client, seen = client_answering(*[httpx.Response(200, content=content)] * 3)
    with pytest.raises(AwsError) as caught:
        await client.call("GetItem", {})
    assert caught.value.code == "InvalidResponse" and "not a JSON object" in caught.value.message
    assert len(seen) == 3


async def test_botocore_credentials_are_resolved_off_the_loop_and_refreshed_before_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    class Resolved:  # botocore's RefreshableCredentials: each refresh gives credentials valid for an hour
        def __init__(self) -> None:
            self.refreshes = 0
            self._expiry_time: datetime.datetime | None = None

        def get_frozen_credentials(self) -> BotoCredentials:
            threads.append(threading.get_ident())
            self.refreshes += 1
            self._expiry_time = datetime.datetime.fromtimestamp(aws.time.time() + 3600, datetime.UTC)
            return BotoCredentials(f"key{self.refreshes}", "secret", "token")

    resolved = Resolved()
    monkeypatch.setattr("botocore.session.Session.get_credentials", lambda self: resolved)
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # a laptop or container without keys
        monkeypatch.delenv(name, raising=False)
    client = AwsJsonClient(DYNAMODB, http, region="eu-central-1", endpoint="http://127.0.0.1:8000")
    await asyncio.gather(*(client.call("GetItem", {}) for _ in range(5)))
    assert resolved.refreshes == 1 and loop_thread not in threads  # once, in a worker thread
    assert (await client.credentials()).access_key == "key1"

    class Later:  # 50 minutes later: 10 minutes before expiry, inside the refresh window
        gmtime, strftime = staticmethod(time.gmtime), staticmethod(time.strftime)

        @staticmethod
        def time() -> float:
            return time.time() + 3000

    monkeypatch.setattr(aws, "time", Later)
    await asyncio.gather(*(client.call("GetItem", {}) for _ in range(5)))
    assert resolved.refreshes == 2 and loop_thread not in threads  # refreshed once for five calls
    assert (await client.credentials()).access_key == "key2"
