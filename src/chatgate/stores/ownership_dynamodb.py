"""Response ownership records in the DynamoDB data table (item design in stores/schema.py):

    pk = RESP#<response id>   sk = OWNER   workspace_id, region, resource?, created_at, ttl, deleted_at?

`resource` names the pool's resource that stores the response (upstream pools); records made before pools
have none and live on the pool's first resource by priority.

Keyed by the response id (random, so the items spread over partitions); one GetItem per check. Written
with UpdateItem (the function's role has no PutItem or DeleteItem on the data table) under a condition
that keeps an existing record of another workspace as it is. `ttl` expires the record with Azure's 30-day
retention; DynamoDB deletes expired items within days, so reads also ignore a record past its `ttl`.

A partition key holds at most 2,048 bytes, so an id longer than `RESP#` leaves room for (2,043 bytes) can
never have been recorded: it is answered as unknown (404 `not_found`) without asking DynamoDB, which would
refuse the key (a ValidationException, that is a 503) rather than find nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from chatgate.errors import ServiceUnavailable
from chatgate.gateway.ownership import ResponseOwner
from chatgate.stores.aws import AwsError, AwsUnreachable, json_caller

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_SET_OWNER = "SET workspace_id = :ws, #region = :region, created_at = :now, #ttl = :ttl"
_UNAVAILABLE = "Stored responses are temporarily unavailable. Please retry shortly."


# DynamoDB's limit on a partition key value, in UTF-8 bytes.
MAX_PARTITION_KEY_BYTES = 2048


def owner_key(response_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"RESP#{response_id}"}, "sk": {"S": "OWNER"}}


def storable(response_id: str) -> bool:
    """Whether a response id fits in the table's partition key (every id Azure issues does)."""
    return len(f"RESP#{response_id}".encode()) <= MAX_PARTITION_KEY_BYTES


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(_UNAVAILABLE, headers={"retry-after": "1"})


class DynamoDBOwnershipStore:
    """The OwnershipStore of chatgate.gateway.ownership, through any `call(action, payload)` DynamoDB client
    (stores/aws.py; a boto3 client is wrapped)."""

    def __init__(self, client: DynamoDBClient | Any, table_name: str, clock: Any = time.time) -> None:
        self._call = json_caller(client).call
        self._table = table_name
        self._clock = clock

    async def _conditional_update(self, payload: dict[str, Any]) -> None:
        try:
            await self._call("UpdateItem", payload)
        except AwsError as exc:
            if exc.code != "ConditionalCheckFailedException":
                raise _unavailable(exc) from exc
        except AwsUnreachable as exc:
            raise _unavailable(exc) from exc

    async def put(self, response_id: str, owner: ResponseOwner, expires_at: int) -> None:
        if not storable(response_id):
            raise _unavailable(ValueError("response id too long for a key"))
        values = {
            ":ws": {"S": owner.workspace_id},
            ":region": {"S": owner.region},
            ":now": {"N": str(int(self._clock()))},
            ":ttl": {"N": str(expires_at)},
        }
        update = _SET_OWNER
        if owner.resource is not None:
            update += ", #resource = :resource"
            values[":resource"] = {"S": owner.resource}
        await self._conditional_update(
            {
                "TableName": self._table,
                "Key": owner_key(response_id),
                "UpdateExpression": update,
                "ConditionExpression": "attribute_not_exists(pk) OR workspace_id = :ws",
                "ExpressionAttributeNames": {"#region": "region", "#ttl": "ttl", "#resource": "resource"}
                if owner.resource is not None
                else {"#region": "region", "#ttl": "ttl"},
                "ExpressionAttributeValues": values,
            }
        )

    async def get(self, response_id: str) -> ResponseOwner | None:
        if not storable(response_id):
            return None  # never recorded: a 404 like any id chatgate never issued
        try:
            response = await self._call(
                "GetItem", {"TableName": self._table, "Key": owner_key(response_id), "ConsistentRead": True}
            )
        except (AwsError, AwsUnreachable) as exc:
            raise _unavailable(exc) from exc
        item = response.get("Item")
        if item is None or int(item.get("ttl", {}).get("N", "0")) <= self._clock():
            return None
        resource = item.get("resource", {}).get("S")
        return ResponseOwner(
            item["workspace_id"]["S"], item["region"]["S"], deleted="deleted_at" in item, resource=resource
        )

    async def mark_deleted(self, response_id: str) -> None:
        if not storable(response_id):
            return
        await self._conditional_update(
            {
                "TableName": self._table,
                "Key": owner_key(response_id),
                "UpdateExpression": "SET deleted_at = :now",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":now": {"N": str(int(self._clock()))}},
            }
        )
