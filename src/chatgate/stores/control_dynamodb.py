"""The control plane in its DynamoDB table (item design in stores/schema.py): chatgate.admin's ControlStore.

Every change is one TransactWriteItems: the changed item (with its condition) and its audit entry, so no
change goes unaudited and no audit entry describes a change that did not happen. (Against an emulator
without transactions, dynalite, the writes are made one after the other.) Reads of a single item are
consistent reads (in a global table: of this region's replica). Works over any `call(action, payload)`
client (stores/aws.py): the request path's, or a boto3 client (the CLI), run in a worker thread.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from chatgate.admin.control import AdminKey, AuditEntry, Page, Workspace
from chatgate.errors import ServiceUnavailable
from chatgate.gateway.auth import ApiKey
from chatgate.limits.ratelimit import Limits
from chatgate.stores.aws import AwsError, AwsUnreachable, json_caller
from chatgate.stores.keys_dynamodb import item_to_key, key_item, key_pk
from chatgate.stores.schema import GSI1
from chatgate.stores.workspaces_dynamodb import limits_from, limits_item, limits_query

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

_SINGLE = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
_WORKSPACES = "WORKSPACES"
_ADMIN_KEYS = "ADMINKEYS"
_AUDIT = "AUDIT"
# Pages read per listing at most (each up to 1 MB): listings stay bounded whatever the table holds.
_MAX_PAGES = 50


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _int(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    return int(value["N"]) if value else None


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return str(value["S"]) if value else None


def workspace_pk(workspace_id: str) -> dict[str, Any]:
    return {"pk": _s(f"WS#{workspace_id}"), "sk": _s("WORKSPACE")}


def _workspace(item: dict[str, Any]) -> Workspace:
    return Workspace(
        workspace_id=item["workspace_id"]["S"],
        name=_str(item, "name") or "",
        created_at=_int(item, "created_at") or 0,
        archived_at=_int(item, "archived_at"),
    )


def workspace_item(workspace: Workspace) -> dict[str, Any]:
    item = {
        **workspace_pk(workspace.workspace_id),
        "gsi1pk": _s(_WORKSPACES),
        "gsi1sk": _s(workspace.workspace_id),
        "workspace_id": _s(workspace.workspace_id),
        "name": _s(workspace.name),
        "created_at": _n(workspace.created_at),
    }
    if workspace.archived_at is not None:
        item["archived_at"] = _n(workspace.archived_at)
    return item


def _admin_pk(key_id: str) -> dict[str, Any]:
    return {"pk": _s(f"ADMINKEY#{key_id}"), "sk": _s("ADMINKEY")}


def _admin_item(key: AdminKey) -> dict[str, Any]:
    item = {
        **_admin_pk(key.key_id),
        "gsi1pk": _s(_ADMIN_KEYS),
        "gsi1sk": _s(f"{key.created_at:012d}#{key.key_id}"),
        "key_id": _s(key.key_id),
        "key_hash": _s(key.key_hash),
        "name": _s(key.name),
        "created_at": _n(key.created_at),
    }
    if key.project_id is not None:
        item["project_id"] = _s(key.project_id)
    return item


def _admin_key(item: dict[str, Any]) -> AdminKey:
    return AdminKey(
        key_id=item["key_id"]["S"],
        key_hash=item["key_hash"]["S"],
        name=_str(item, "name") or "",
        created_at=_int(item, "created_at") or 0,
        project_id=_str(item, "project_id"),
        last_used_at=_int(item, "last_used_at"),
    )


def _audit_item(entry: AuditEntry) -> dict[str, Any]:
    item = {
        "pk": _s(_AUDIT),
        "sk": _s(entry.entry_id),
        "id": _s(entry.entry_id),
        "type": _s(entry.type),
        "effective_at": _n(entry.effective_at),
        "actor": _s(json.dumps(entry.actor, separators=(",", ":"))),
        "details": _s(json.dumps(entry.details, separators=(",", ":"))),
    }
    if entry.request_id:
        item["request_id"] = _s(entry.request_id)
    if entry.project_id is not None:
        item["project_id"] = _s(entry.project_id)
        item["gsi1pk"] = _s(f"AUDIT#{entry.project_id}")
        item["gsi1sk"] = _s(entry.entry_id)
    if entry.project_name is not None:
        item["project_name"] = _s(entry.project_name)
    return item


def _audit_entry(item: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        entry_id=item["id"]["S"],
        type=item["type"]["S"],
        effective_at=_int(item, "effective_at") or 0,
        actor=json.loads(item["actor"]["S"]),
        request_id=_str(item, "request_id"),
        project_id=_str(item, "project_id"),
        project_name=_str(item, "project_name"),
        details=json.loads(item["details"]["S"]),
    )


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        "The control plane is temporarily unavailable. Please retry shortly.",
        headers={"retry-after": "1"},
    )


class DynamoDBControlStore:
    """ControlStore over DynamoDB: one table, conditional transactions, bounded listings."""

    def __init__(self, client: DynamoDBClient | Any, table_name: str) -> None:
        self._call = json_caller(client).call
        self._table = table_name
        self._transactions = True

    # --- plumbing ---------------------------------------------------------------------------------------

    async def _request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._call(action, {"TableName": self._table, **payload})
        except (AwsError, AwsUnreachable) as exc:
            raise _unavailable(exc) from exc

    async def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = (
            await self._request("GetItem", {"Key": key, "ConsistentRead": True})
        ).get("Item")
        return item

    async def _transact(self, writes: list[dict[str, Any]], audit: AuditEntry) -> bool:
        """The writes and the audit entry, all or none; False when a write's condition failed."""
        if not self._transactions:
            return await self._one_by_one(writes, audit)
        items = [
            {kind: {"TableName": self._table, **body}} for write in writes for kind, body in write.items()
        ]
        items.append({"Put": {"TableName": self._table, "Item": _audit_item(audit)}})
        try:
            await self._call("TransactWriteItems", {"TransactItems": items})
        except AwsError as exc:
            if exc.code == "UnknownOperationException":  # an emulator without transactions (dynalite)
                self._transactions = False
                return await self._one_by_one(writes, audit)
            reasons = exc.body.get("CancellationReasons") or []
            codes = {str(reason.get("Code", "None")) for reason in reasons if isinstance(reason, dict)}
            if exc.code == "TransactionCanceledException" and codes <= {"None", "ConditionalCheckFailed"}:
                return False
            raise _unavailable(exc) from exc
        except AwsUnreachable as exc:
            raise _unavailable(exc) from exc
        return True

    async def _one_by_one(self, writes: list[dict[str, Any]], audit: AuditEntry) -> bool:
        """Where the endpoint has no transactions (dynalite, locally): each write, then the audit entry.
        Condition checks on other items are skipped: the only one (a new key's workspace is not archived)
        is checked again by every authentication."""
        for write in writes:
            for kind, body in write.items():
                if kind == "ConditionCheck":
                    continue
                try:
                    await self._call(_SINGLE[kind], {"TableName": self._table, **body})
                except AwsError as exc:
                    if exc.code == "ConditionalCheckFailedException":
                        return False
                    raise _unavailable(exc) from exc
                except AwsUnreachable as exc:
                    raise _unavailable(exc) from exc
        await self.record(audit)  # the change is made: its entry goes in the log if the table refuses it
        return True

    async def _query(self, payload: dict[str, Any], *, want: int, keep: Any = None) -> Page[dict[str, Any]]:
        """Items of a query in order, those `keep` accepts, until `want` are found (and whether more are)."""
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        for _ in range(_MAX_PAGES):
            page = await self._request(
                "Query", {**payload, **({"ExclusiveStartKey": start} if start else {})}
            )
            for item in page.get("Items", []):
                if keep is None or keep(item):
                    if len(items) == want:
                        return Page(items, has_more=True)
                    items.append(item)
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return Page(items, has_more=start is not None)

    # --- workspaces -------------------------------------------------------------------------------------

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        item = await self._get(workspace_pk(workspace_id))
        return _workspace(item) if item else None

    async def list_workspaces(
        self, *, after: str | None, limit: int, include_archived: bool
    ) -> Page[Workspace]:
        condition = "gsi1pk = :p" + (" AND gsi1sk > :after" if after else "")
        values = {":p": _s(_WORKSPACES), **({":after": _s(after)} if after else {})}
        page = await self._query(
            {"IndexName": GSI1, "KeyConditionExpression": condition, "ExpressionAttributeValues": values},
            want=limit,
            keep=None if include_archived else (lambda item: "archived_at" not in item),
        )
        return Page([_workspace(item) for item in page.items], page.has_more)

    async def create_workspace(self, workspace: Workspace, audit: AuditEntry) -> bool:
        put = {"Item": workspace_item(workspace), "ConditionExpression": "attribute_not_exists(pk)"}
        return await self._transact([{"Put": put}], audit)

    async def rename_workspace(self, workspace_id: str, name: str, audit: AuditEntry) -> bool:
        update = {
            "Key": workspace_pk(workspace_id),
            "UpdateExpression": "SET #name = :name",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(archived_at)",
            "ExpressionAttributeNames": {"#name": "name"},
            "ExpressionAttributeValues": {":name": _s(name)},
        }
        return await self._transact([{"Update": update}], audit)

    async def archive_workspace(self, workspace_id: str, at: int, audit: AuditEntry) -> bool:
        update = {
            "Key": workspace_pk(workspace_id),
            "UpdateExpression": "SET archived_at = :at",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(archived_at)",
            "ExpressionAttributeValues": {":at": _n(at)},
        }
        return await self._transact([{"Update": update}], audit)

    # --- keys -------------------------------------------------------------------------------------------

    async def create_key(self, key: ApiKey, audit: AuditEntry) -> bool:
        active = {
            "Key": workspace_pk(key.workspace_id),
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(archived_at)",
        }
        put = {"Item": key_item(key), "ConditionExpression": "attribute_not_exists(pk)"}
        return await self._transact([{"ConditionCheck": active}, {"Put": put}], audit)

    async def get_key(self, key_id: str) -> ApiKey | None:
        item = await self._get(key_pk(key_id))
        return item_to_key(item) if item else None

    async def list_keys(self, workspace_id: str) -> list[ApiKey]:
        page = await self._query(
            {
                "IndexName": GSI1,
                "KeyConditionExpression": "gsi1pk = :ws AND begins_with(gsi1sk, :prefix)",
                "ExpressionAttributeValues": {":ws": _s(f"WS#{workspace_id}"), ":prefix": _s("KEY#")},
            },
            want=100_000,
        )
        return [item_to_key(item) for item in page.items]

    async def revoke_key(self, key_id: str, at: int, audit: AuditEntry) -> bool:
        update = {
            "Key": key_pk(key_id),
            "UpdateExpression": "SET revoked_at = :now",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(revoked_at)",
            "ExpressionAttributeValues": {":now": _n(at)},
        }
        return await self._transact([{"Update": update}], audit)

    # --- limits -----------------------------------------------------------------------------------------

    async def get_limits(self, workspace_id: str) -> dict[str, Limits]:
        return limits_from(await self._request("Query", limits_query(self._table, workspace_id)))

    async def set_limits(self, workspace_id: str, model: str, limits: Limits, audit: AuditEntry) -> None:
        await self._transact([{"Put": {"Item": limits_item(workspace_id, model, limits)}}], audit)

    # --- admin keys -------------------------------------------------------------------------------------

    async def create_admin_key(self, key: AdminKey, audit: AuditEntry) -> None:
        put = {"Item": _admin_item(key), "ConditionExpression": "attribute_not_exists(pk)"}
        if not await self._transact([{"Put": put}], audit):
            raise _unavailable(RuntimeError("admin key id collision"))

    async def get_admin_key(self, key_id: str) -> AdminKey | None:
        item = await self._get(_admin_pk(key_id))
        return _admin_key(item) if item else None

    async def list_admin_keys(self) -> list[AdminKey]:
        page = await self._query(
            {
                "IndexName": GSI1,
                "KeyConditionExpression": "gsi1pk = :p",
                "ExpressionAttributeValues": {":p": _s(_ADMIN_KEYS)},
            },
            want=100_000,
        )
        return [_admin_key(item) for item in page.items]

    async def touch_admin_key(self, key_id: str, now: int, *, older_than: int) -> bool:
        """As the key store's touch (stores/keys_dynamodb.py), on an admin key."""
        try:
            await self._call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": _admin_pk(key_id),
                    "UpdateExpression": "SET last_used_at = :now",
                    "ConditionExpression": (
                        "attribute_exists(pk) AND "
                        "(attribute_not_exists(last_used_at) OR last_used_at < :since)"
                    ),
                    "ExpressionAttributeValues": {":now": _n(now), ":since": _n(older_than)},
                },
            )
        except AwsError as exc:
            if exc.code == "ConditionalCheckFailedException":
                return False
            raise _unavailable(exc) from exc
        except AwsUnreachable as exc:
            raise _unavailable(exc) from exc
        return True

    async def delete_admin_key(self, key_id: str, audit: AuditEntry) -> bool:
        delete = {"Key": _admin_pk(key_id), "ConditionExpression": "attribute_exists(pk)"}
        return await self._transact([{"Delete": delete}], audit)

    async def copy_item(self, item: dict[str, Any]) -> bool:
        """The migration's write (admin/migration.py): the item as it is, unless its key exists."""
        try:
            await self._call(
                "PutItem",
                {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"},
            )
        except AwsError as exc:
            if exc.code == "ConditionalCheckFailedException":
                return False
            raise _unavailable(exc) from exc
        except AwsUnreachable as exc:
            raise _unavailable(exc) from exc
        return True

    async def record(self, audit: AuditEntry) -> None:
        """An audit entry alone, for a change made elsewhere (a BYOK secret in Secrets Manager). Written
        after that change: if it fails, the entry is kept in the error log line."""
        try:
            await self._call("PutItem", {"TableName": self._table, "Item": _audit_item(audit)})
        except (AwsError, AwsUnreachable) as exc:
            logger.error("audit entry not written (%s): %s", type(exc).__name__, _audit_item(audit))

    # --- audit log --------------------------------------------------------------------------------------

    async def delete_limits(self, workspace_id: str, model: str, audit: AuditEntry) -> bool:
        delete = {
            "Key": {"pk": _s(f"WS#{workspace_id}"), "sk": _s(f"LIMITS#{model}")},
            "ConditionExpression": "attribute_exists(pk)",
        }
        return await self._transact([{"Delete": delete}], audit)

    async def list_audit(
        self, *, project_ids: frozenset[str], after: str | None, limit: int, event_types: frozenset[str]
    ) -> Page[AuditEntry]:
        project_id = next(iter(project_ids)) if len(project_ids) == 1 else None
        if project_id is None:
            condition, values = "pk = :p", {":p": _s(_AUDIT)}
            payload: dict[str, Any] = {}
            key = "sk"
        else:
            condition, values = "gsi1pk = :p", {":p": _s(f"AUDIT#{project_id}")}
            payload = {"IndexName": GSI1}
            key = "gsi1sk"
        if after:
            condition += f" AND {key} < :after"
            values[":after"] = _s(after)
        page = await self._query(
            {
                **payload,
                "KeyConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": False,
            },
            want=limit,
            keep=lambda item: (
                (not event_types or item["type"]["S"] in event_types)
                and (len(project_ids) < 2 or item.get("project_id", {}).get("S") in project_ids)
            ),
        )
        return Page([_audit_entry(item) for item in page.items], page.has_more)
