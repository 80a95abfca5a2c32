"""Per-model limits in the DynamoDB control table: pk=WS#<workspace>, sk=LIMITS#<model> {rpm, tpm}.

The request path's read (cached by WorkspaceDirectory); changes are chatgate.admin's
(stores/control_dynamodb.py), with the item built here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatgate.errors import ServiceUnavailable
from chatgate.limits.ratelimit import Limits
from chatgate.stores.aws import AwsError, AwsUnreachable, json_caller

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def limits_query(table: str, workspace_id: str) -> dict[str, Any]:
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": f"WS#{workspace_id}"}, ":prefix": {"S": "LIMITS#"}},
    }


def limits_from(response: dict[str, Any]) -> dict[str, Limits]:
    return {
        item["sk"]["S"].removeprefix("LIMITS#"): Limits(
            requests=int(item["rpm"]["N"]), tokens=int(item["tpm"]["N"])
        )
        for item in response.get("Items", [])
    }


def limits_item(workspace_id: str, model: str, limits: Limits) -> dict[str, Any]:
    return {
        "pk": {"S": f"WS#{workspace_id}"},
        "sk": {"S": f"LIMITS#{model}"},
        "rpm": {"N": str(limits.requests)},
        "tpm": {"N": str(limits.tokens)},
    }


class DynamoDBWorkspaceStore:
    """Per-model limit overrides, read through any `call(action, payload)` client (stores/aws.py)."""

    def __init__(self, client: DynamoDBClient | Any, table_name: str) -> None:
        self._call = json_caller(client).call
        self._table = table_name

    async def get_limits(self, workspace_id: str) -> dict[str, Limits]:
        try:
            return limits_from(await self._call("Query", limits_query(self._table, workspace_id)))
        except (AwsError, AwsUnreachable) as exc:
            raise ServiceUnavailable(
                "Workspace settings are temporarily unavailable. Please retry shortly.",
                headers={"retry-after": "1"},
            ) from exc
