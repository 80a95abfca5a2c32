"""API keys in the DynamoDB data table (item design in stores/schema.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from chatgate.auth import ApiKey
from chatgate.errors import ServiceUnavailable
from chatgate.stores.aws import AwsError, AwsUnreachable, json_caller
from chatgate.stores.schema import GSI1

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class KeyNotFound(LookupError):
    """No key with that id."""


class KeyStoreError(Exception):
    """A write to the key store failed; the message names the operation and the error code only."""


def _outcome(exc: AwsError | AwsUnreachable) -> str:
    """How a failed write is logged: "failed" only when it did not happen."""
    return "outcome unknown" if exc.maybe_applied else "failed"


def _key_pk(key_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "KEY"}}


def _int(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    return int(value["N"]) if value else None


def _from_item(item: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=item["key_id"]["S"],
        workspace_id=item["workspace_id"]["S"],
        key_hash=item["key_hash"]["S"],
        name=item.get("name", {}).get("S", ""),
        created_at=_int(item, "created_at") or 0,
        expires_at=_int(item, "expires_at"),
        revoked_at=_int(item, "revoked_at"),
        last_used_at=_int(item, "last_used_at"),
    )


class DynamoDBKeyStore:
    """Reads (for authentication) and administers API keys.

    The request path (get, touch) goes through any `call(action, payload)` client (stores/aws.py); the
    administration methods need a boto3 client (the CLI's)."""

    def __init__(self, client: DynamoDBClient | Any, table_name: str) -> None:
        self._client = client
        self._call = json_caller(client).call
        self._table = table_name

    async def get(self, key_id: str) -> ApiKey | None:
        """The key record, or None. Store failures become a 503 (never a silent 401)."""
        try:
            response = await self._call(
                "GetItem", {"TableName": self._table, "Key": _key_pk(key_id), "ConsistentRead": True}
            )
        except (AwsError, AwsUnreachable) as exc:
            raise ServiceUnavailable(
                "The key store is temporarily unavailable. Please retry shortly.",
                headers={"retry-after": "1"},
            ) from exc
        item = response.get("Item")
        return _from_item(item) if item else None

    async def touch(self, key_id: str, now: int, *, older_than: int) -> bool:
        """Record a use: last_used_at = now, only if it is missing or older than `older_than` (so
        instances racing for the same key write once per interval) and only on an existing key."""
        try:
            await self._call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": _key_pk(key_id),
                    "UpdateExpression": "SET last_used_at = :now",
                    "ConditionExpression": (
                        "attribute_exists(pk) AND "
                        "(attribute_not_exists(last_used_at) OR last_used_at < :since)"
                    ),
                    "ExpressionAttributeValues": {":now": {"N": str(now)}, ":since": {"N": str(older_than)}},
                },
            )
        except AwsError as exc:
            if exc.code == "ConditionalCheckFailedException":
                return False  # another instance recorded a use within the interval (or the key is gone)
            raise KeyStoreError(f"DynamoDB UpdateItem {_outcome(exc)}: {exc.code}") from None
        except AwsUnreachable as exc:
            raise KeyStoreError(f"DynamoDB UpdateItem {_outcome(exc)}: {exc}") from None
        return True

    # Administration (CLI): synchronous, outside the request path.

    def create(
        self, *, key_id: str, key_hash: str, workspace_id: str, name: str, expires_at: int | None = None
    ) -> ApiKey:
        now = int(time.time())
        item: dict[str, Any] = {
            **_key_pk(key_id),
            "gsi1pk": {"S": f"WS#{workspace_id}"},
            "gsi1sk": {"S": f"KEY#{now:012d}#{key_id}"},
            "key_id": {"S": key_id},
            "workspace_id": {"S": workspace_id},
            "key_hash": {"S": key_hash},
            "name": {"S": name},
            "created_at": {"N": str(now)},
        }
        if expires_at is not None:
            item["expires_at"] = {"N": str(expires_at)}
        self._client.put_item(
            TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
        return _from_item(item)

    def list(self, workspace_id: str) -> list[ApiKey]:
        keys: list[ApiKey] = []
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName=GSI1,
            KeyConditionExpression="gsi1pk = :ws AND begins_with(gsi1sk, :prefix)",
            ExpressionAttributeValues={":ws": {"S": f"WS#{workspace_id}"}, ":prefix": {"S": "KEY#"}},
        ):
            keys.extend(_from_item(item) for item in page.get("Items", []))
        return keys

    def revoke(self, key_id: str) -> ApiKey:
        """Mark a key revoked (idempotent: a second revoke keeps the first time)."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=_key_pk(key_id),
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": {"N": str(int(time.time()))}},
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise KeyNotFound(key_id) from None
        return _from_item(response["Attributes"])
