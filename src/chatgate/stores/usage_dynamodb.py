"""Usage records in the DynamoDB data table (item design in stores/schema.py):

    pk = WS#<workspace>   sk = USAGE#<day>#<model>
    requests, prompt_tokens, completion_tokens                         (all requests)
    counted_requests, counted_prompt_tokens, counted_completion_tokens (the part chatgate counted itself)
    workspace_id, day, model, api ("completions" | "embeddings"), updated_at

Recording is one UpdateItem with `ADD` for every counter: DynamoDB applies it atomically per item and
creates the item on first use, so concurrent requests on any number of instances never lose an update
(tests/component/test_usage_dynalite.py proves it). Reading a workspace's days is one Query on the sort key
range, so a month costs one request per 1 MB of records.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from chatgate.stores.aws import AwsError, AwsUnreachable, Boto3Json, json_caller
from chatgate.tokens import TokenUsage
from chatgate.usage import COMPLETIONS, UsageRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_COUNTERS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "counted_requests",
    "counted_prompt_tokens",
    "counted_completion_tokens",
)
_UPDATE = (
    "ADD " + ", ".join(f"#{name} :{name}" for name in _COUNTERS) + " "
    "SET #workspace_id = :workspace_id, #day = :day, #model = :model, #api = :api, #updated_at = :updated_at"
)
_NAMES = {f"#{name}": name for name in (*_COUNTERS, "workspace_id", "day", "model", "api", "updated_at")}
# Sorts after every model name: the upper end of a day range on the sort key.
_HIGHEST = "\uffff"


class UsageStoreError(Exception):
    """A usage record could not be written or read. The message names the operation and error code."""


def usage_key(workspace_id: str, day: str, model: str) -> dict[str, Any]:
    return {"pk": {"S": f"WS#{workspace_id}"}, "sk": {"S": f"USAGE#{day}#{model}"}}


def _num(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _record(item: dict[str, Any]) -> UsageRecord:
    _, day, model = item["sk"]["S"].split("#", 2)
    counters = {name: int(item[name]["N"]) if name in item else 0 for name in _COUNTERS}
    api = item.get("api", {}).get("S", COMPLETIONS)  # records written before embeddings: completions
    return UsageRecord(
        workspace_id=item["pk"]["S"].removeprefix("WS#"), day=day, model=model, api=api, **counters
    )


def _error(operation: str, exc: Exception) -> UsageStoreError:
    if isinstance(exc, AwsError):
        return UsageStoreError(f"DynamoDB {operation} failed: {exc.code}")
    if isinstance(exc, AwsUnreachable):
        return UsageStoreError(f"DynamoDB {operation} failed: {exc}")
    from botocore.exceptions import ClientError  # the CLI's boto3 path

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        return UsageStoreError(f"DynamoDB {operation} failed: {code}")
    return UsageStoreError(f"DynamoDB {operation} failed: {type(exc).__name__}")


class DynamoDBUsageStore:
    """The UsageStore of chatgate.usage. `add` goes through any `call(action, payload)` client
    (stores/aws.py); `add_now` and `list` (tooling, the CLI) need a boto3 client."""

    def __init__(self, client: DynamoDBClient | Any, table_name: str) -> None:
        self._client = client
        self._call = json_caller(client).call
        self._table = table_name

    async def add(
        self, workspace_id: str, day: str, model: str, usage: TokenUsage, api: str = COMPLETIONS
    ) -> None:
        try:
            await self._call("UpdateItem", self._update(workspace_id, day, model, usage, api))
        except (AwsError, AwsUnreachable) as exc:
            raise _error("UpdateItem", exc) from None

    def add_now(self, workspace_id: str, day: str, model: str, usage: TokenUsage) -> None:
        """The same write, blocking (a boto3 client only)."""
        try:
            Boto3Json(self._client).call_now("UpdateItem", self._update(workspace_id, day, model, usage))
        except (AwsError, AwsUnreachable) as exc:
            raise _error("UpdateItem", exc) from None

    def _update(
        self, workspace_id: str, day: str, model: str, usage: TokenUsage, api: str = COMPLETIONS
    ) -> dict[str, Any]:
        counted = usage.source == "counted"
        amounts = {
            "requests": 1,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "counted_requests": int(counted),
            "counted_prompt_tokens": usage.prompt_tokens if counted else 0,
            "counted_completion_tokens": usage.completion_tokens if counted else 0,
        }
        values = {f":{name}": _num(amount) for name, amount in amounts.items()}
        values |= {
            ":workspace_id": {"S": workspace_id},
            ":day": {"S": day},
            ":model": {"S": model},
            ":api": {"S": api},
            ":updated_at": _num(int(time.time())),
        }
        return {
            "TableName": self._table,
            "Key": usage_key(workspace_id, day, model),
            "UpdateExpression": _UPDATE,
            "ExpressionAttributeNames": _NAMES,
            "ExpressionAttributeValues": values,
        }

    # Reading (CLI): synchronous, outside the request path.

    def list(self, workspace_id: str, first_day: str, last_day: str) -> list[UsageRecord]:
        """The workspace's records from `first_day` to `last_day` (inclusive), by day then model."""
        records: list[UsageRecord] = []
        paginator = self._client.get_paginator("query")
        try:
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
                ExpressionAttributeValues={
                    ":pk": {"S": f"WS#{workspace_id}"},
                    ":first": {"S": f"USAGE#{first_day}#"},
                    ":last": {"S": f"USAGE#{last_day}#{_HIGHEST}"},
                },
                ConsistentRead=True,
            ):
                records.extend(_record(item) for item in page.get("Items", []))
        except Exception as exc:  # botocore's ClientError / BotoCoreError, named by _error
            raise _error("Query", exc) from exc
        return records
