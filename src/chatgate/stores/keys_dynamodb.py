"""API keys in the DynamoDB control table (item design in stores/schema.py): the request path's reads.

Administration (create, list, revoke) is chatgate.admin's, through stores/control_dynamodb.py."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatgate.errors import ServiceUnavailable
from chatgate.gateway.auth import ApiKey
from chatgate.stores.aws import AwsError, AwsUnreachable, json_caller

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class KeyStoreError(Exception):
    """A write to the key store failed; the message names the operation and the error code only."""


def _outcome(exc: AwsError | AwsUnreachable) -> str:
    """How a failed write is logged: "failed" only when it did not happen."""
    return "outcome unknown" if exc.maybe_applied else "failed"


def key_pk(key_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "KEY"}}


def _int(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    return int(value["N"]) if value else None


def item_to_key(item: dict[str, Any]) -> ApiKey:
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


def key_item(key: ApiKey) -> dict[str, Any]:
    """The stored item of a key (its hash, never the key)."""
    item: dict[str, Any] = {
        **key_pk(key.key_id),
        "gsi1pk": {"S": f"WS#{key.workspace_id}"},
        "gsi1sk": {"S": f"KEY#{key.created_at:012d}#{key.key_id}"},
        "key_id": {"S": key.key_id},
        "workspace_id": {"S": key.workspace_id},
        "key_hash": {"S": key.key_hash},
        "name": {"S": key.name},
        "created_at": {"N": str(key.created_at)},
    }
    for name in ("expires_at", "revoked_at", "last_used_at"):
        value = getattr(key, name)
        if value is not None:
            item[name] = {"N": str(value)}
    return item


class DynamoDBKeyStore:
    """Reads keys for authentication and records their last use, through any `call(action, payload)`
    client (stores/aws.py)."""

    def __init__(self, client: DynamoDBClient | Any, table_name: str) -> None:
        self._call = json_caller(client).call
        self._table = table_name

    async def get(self, key_id: str) -> ApiKey | None:
        """The key record, or None, with its workspace's archive time (a second read, made only for a
        key that exists and is not revoked). Store failures become a 503 (never a silent 401)."""
        try:
            response = await self._call(
                "GetItem", {"TableName": self._table, "Key": key_pk(key_id), "ConsistentRead": True}
            )
            item = response.get("Item")
            if not item or "revoked_at" in item:
                return item_to_key(item) if item else None
            workspace = await self._call(
                "GetItem",
                {
                    "TableName": self._table,
                    "Key": {"pk": {"S": f"WS#{item['workspace_id']['S']}"}, "sk": {"S": "WORKSPACE"}},
                    "ConsistentRead": True,
                    "ProjectionExpression": "archived_at",
                },
            )
        except (AwsError, AwsUnreachable) as exc:
            raise ServiceUnavailable(
                "The key store is temporarily unavailable. Please retry shortly.",
                headers={"retry-after": "1"},
            ) from exc
        archived_at = _int(workspace.get("Item") or {}, "archived_at")
        return replace(item_to_key(item), workspace_archived_at=archived_at)

    async def touch(self, key_id: str, now: int, *, older_than: int) -> bool:
        """Record a use: last_used_at = now, only if it is missing or older than `older_than` (so
        instances racing for the same key write once per interval) and only on an existing key."""
        try:
            await self._call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": key_pk(key_id),
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
