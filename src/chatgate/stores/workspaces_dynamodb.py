"""Workspace settings in the DynamoDB data table: pk=WS#<workspace>, sk=LIMITS#<model> {rpm, tpm}."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chatgate.errors import ServiceUnavailable
from chatgate.ratelimit import Limits

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoDBWorkspaceStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    async def get_limits(self, workspace_id: str) -> dict[str, Limits]:
        try:
            return await asyncio.to_thread(self.list_limits, workspace_id)
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable(
                "Workspace settings are temporarily unavailable. Please retry shortly.",
                headers={"retry-after": "1"},
            ) from exc

    # Administration (CLI) and the cached read above.

    def list_limits(self, workspace_id: str) -> dict[str, Limits]:
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"WS#{workspace_id}"}, ":prefix": {"S": "LIMITS#"}},
        )
        return {
            item["sk"]["S"].removeprefix("LIMITS#"): Limits(
                requests=int(item["rpm"]["N"]), tokens=int(item["tpm"]["N"])
            )
            for item in response.get("Items", [])
        }

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
