"""Response ownership records in the DynamoDB data table (item design in stores/schema.py):

    pk = RESP#<response id>   sk = OWNER   workspace_id, region, created_at, ttl, deleted_at?

Keyed by the response id (random, so the items spread over partitions); one GetItem per check. Written
with UpdateItem (the function's role has no PutItem or DeleteItem on the data table) under a condition
that keeps an existing record of another workspace as it is. `ttl` expires the record with Azure's 30-day
retention; DynamoDB deletes expired items within days, so reads also ignore a record past its `ttl`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chatgate.errors import ServiceUnavailable
from chatgate.ownership import ResponseOwner

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_UNAVAILABLE = "Stored responses are temporarily unavailable. Please retry shortly."


def owner_key(response_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"RESP#{response_id}"}, "sk": {"S": "OWNER"}}


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(_UNAVAILABLE, headers={"retry-after": "1"})


class DynamoDBOwnershipStore:
    """The OwnershipStore of chatgate.ownership, through an injected boto3 DynamoDB client."""

    def __init__(self, client: DynamoDBClient, table_name: str, clock: Any = time.time) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    async def put(self, response_id: str, owner: ResponseOwner, expires_at: int) -> None:
        try:
            await asyncio.to_thread(self._put, response_id, owner, expires_at)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc

    def _put(self, response_id: str, owner: ResponseOwner, expires_at: int) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=owner_key(response_id),
                UpdateExpression="SET workspace_id = :ws, #region = :region, created_at = :now, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(pk) OR workspace_id = :ws",
                ExpressionAttributeNames={"#region": "region", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":ws": {"S": owner.workspace_id},
                    ":region": {"S": owner.region},
                    ":now": {"N": str(int(self._clock()))},
                    ":ttl": {"N": str(expires_at)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    async def get(self, response_id: str) -> ResponseOwner | None:
        try:
            item = await asyncio.to_thread(self._get, response_id)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        if item is None or int(item.get("ttl", {}).get("N", "0")) <= self._clock():
            return None
        return ResponseOwner(item["workspace_id"]["S"], item["region"]["S"], deleted="deleted_at" in item)

    def _get(self, response_id: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table, Key=owner_key(response_id), ConsistentRead=True
        )
        return response.get("Item")

    async def mark_deleted(self, response_id: str) -> None:
        try:
            await asyncio.to_thread(self._mark_deleted, response_id)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc

    def _mark_deleted(self, response_id: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=owner_key(response_id),
                UpdateExpression="SET deleted_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": {"N": str(int(self._clock()))}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
