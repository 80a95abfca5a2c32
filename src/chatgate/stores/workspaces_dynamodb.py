"""Workspace settings in the DynamoDB data table: pk=WS#<workspace>, sk=LIMITS#<model> {rpm, tpm}."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatgate.errors import ServiceUnavailable
from chatgate.ratelimit import Limits
from chatgate.stores.aws import AwsError, AwsUnreachable, json_caller

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def _limits_query(table: str, workspace_id: str) -> dict[str, Any]:
    return {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": f"WS#{workspace_id}"}, ":prefix": {"S": "LIMITS#"}},
    }


def _limits(response: dict[str, Any]) -> dict[str, Limits]:
    return {
        item["sk"]["S"].removeprefix("LIMITS#"): Limits(
            requests=int(item["rpm"]["N"]), tokens=int(item["tpm"]["N"])
        )
        for item in response.get("Items", [])
    }


class DynamoDBWorkspaceStore:
    """Per-model limit overrides. `get_limits` (the request path, cached by WorkspaceDirectory) goes
    through any `call(action, payload)` client (stores/aws.py); administration needs a boto3 client."""

    def __init__(self, client: DynamoDBClient | Any, table_name: str) -> None:
        self._client = client
        self._call = json_caller(client).call
        self._table = table_name

    async def get_limits(self, workspace_id: str) -> dict[str, Limits]:
        try:
            return _limits(await self._call("Query", _limits_query(self._table, workspace_id)))
        except (AwsError, AwsUnreachable) as exc:
            raise ServiceUnavailable(
                "Workspace settings are temporarily unavailable. Please retry shortly.",
                headers={"retry-after": "1"},
            ) from exc

    # Administration (CLI).

    def list_limits(self, workspace_id: str) -> dict[str, Limits]:
        return _limits(dict(self._client.query(**_limits_query(self._table, workspace_id))))

    def set_limits(self, workspace_id: str, model: str, limits: Limits) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"WS#{workspace_id}"},
                "sk": {"S": f"LIMITS#{model}"},
                "rpm": {"N": str(limits.requests)},
                "tpm": {"N": str(limits.tokens)},
            },
        )

    def remove_limits(self, workspace_id: str, model: str) -> None:
        self._client.delete_item(
            TableName=self._table,
            Key={"pk": {"S": f"WS#{workspace_id}"}, "sk": {"S": f"LIMITS#{model}"}},
        )
