"""Usage records in the DynamoDB data table (item design in stores/schema.py):

    pk = WS#<workspace>   sk = USAGE#<day>#<model>
    requests, prompt_tokens, completion_tokens                         (all requests)
    counted_requests, counted_prompt_tokens, counted_completion_tokens (the part chatgate counted itself)
    workspace_id, day, model, updated_at

Recording is one UpdateItem with `ADD` for every counter: DynamoDB applies it atomically per item and
creates the item on first use, so concurrent requests on any number of instances never lose an update
(tests/component/test_usage_dynalite.py proves it). Reading a workspace's days is one Query on the sort key
range, so a month costs one request per 1 MB of records.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chatgate.tokens import TokenUsage
from chatgate.usage import UsageRecord

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
    "SET #workspace_id = :workspace_id, #day = :day, #model = :model, #updated_at = :updated_at"
)
_NAMES = {f"#{name}": name for name in (*_COUNTERS, "workspace_id", "day", "model", "updated_at")}
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
    return UsageRecord(workspace_id=item["pk"]["S"].removeprefix("WS#"), day=day, model=model, **counters)


def _error(operation: str, exc: Exception) -> UsageStoreError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        return UsageStoreError(f"DynamoDB {operation} failed: {code}")
    return UsageStoreError(f"DynamoDB {operation} failed: {type(exc).__name__}")


class DynamoDBUsageStore:
    """The UsageStore of chatgate.usage, through an injected boto3 DynamoDB client."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    async def add(self, workspace_id: str, day: str, model: str, usage: TokenUsage) -> None:
        await asyncio.to_thread(self.add_now, workspace_id, day, model, usage)

    def add_now(self, workspace_id: str, day: str, model: str, usage: TokenUsage) -> None:
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
            ":updated_at": _num(int(time.time())),
        }
        try:
            self._client.update_item(
                TableName=self._table,
                Key=usage_key(workspace_id, day, model),
                UpdateExpression=_UPDATE,
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _error("UpdateItem", exc) from exc

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
        except (ClientError, BotoCoreError) as exc:
            raise _error("Query", exc) from exc
        return records
