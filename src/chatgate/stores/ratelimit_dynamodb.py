"""The rate-limit counters in DynamoDB (the CounterStore of chatgate.ratelimit).

One item per workspace, model and window (table: schema.rate_limit_table):

    pk = RL#<workspace>#<model>#<window start>   r = requests   t = tokens   ttl = window end + retention

Admit: one UpdateItem, `ADD r :1, t :cost` under the condition `r <= max_r - 1 AND t <= max_t - cost`
(missing attributes count as zero), ReturnValues=ALL_NEW for the headers and
ReturnValuesOnConditionCheckFailure=ALL_OLD for the refusal, so no read is needed. DynamoDB evaluates the
condition and applies the update atomically per item, so concurrent instances never over-admit.
Reconcile: one UpdateItem `ADD t :delta` without condition (`ttl` set if missing, so an item that expired
meanwhile is not recreated forever).

Blocking boto3 calls run in a worker thread (asyncio.to_thread). Give the client a connection pool as
large as the expected concurrency (botocore Config(max_pool_connections=...)) and short timeouts with few
retries, so an outage turns into a quick 503 instead of a hanging request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chatgate.ratelimit import AddResult, CounterStoreError, Counts
from chatgate.stores.schema import TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_NAMES = {"#r": "r", "#t": "t", "#ttl": TTL_ATTRIBUTE}
_ADMIT_UPDATE = "ADD #r :r, #t :t SET #ttl = if_not_exists(#ttl, :ttl)"
_ADMIT_CONDITION = "(attribute_not_exists(#r) OR #r <= :max_r) AND (attribute_not_exists(#t) OR #t <= :max_t)"
_RECONCILE_UPDATE = "ADD #t :t SET #ttl = if_not_exists(#ttl, :ttl)"


def _num(value: int) -> dict[str, Any]:
    return {"N": str(value)}


def _counts(item: dict[str, Any] | None) -> Counts:
    item = item or {}
    return Counts(
        requests=int(item.get("r", {}).get("N", "0")),
        tokens=int(item.get("t", {}).get("N", "0")),
    )


def _store_error(operation: str, exc: Exception) -> CounterStoreError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        return CounterStoreError(f"DynamoDB {operation} failed: {code}")
    return CounterStoreError(f"DynamoDB {operation} failed: {type(exc).__name__}")


class DynamoDBCounterStore:
    """Window counters in a DynamoDB table, through an injected boto3 DynamoDB client."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    async def try_add(
        self, key: str, *, requests: int, tokens: int, max_requests: int, max_tokens: int, expires_at: int
    ) -> AddResult:
        """Atomically add both amounts if both counters stay within their maximum."""
        if requests > max_requests or tokens > max_tokens:
            raise ValueError("an amount larger than its maximum can never be admitted")
        return await asyncio.to_thread(
            self._try_add, key, requests, tokens, max_requests - requests, max_tokens - tokens, expires_at
        )

    async def add_tokens(self, key: str, tokens: int, *, expires_at: int) -> None:
        """Add (possibly negative) tokens, unconditionally."""
        await asyncio.to_thread(self._add_tokens, key, tokens, expires_at)

    async def read(self, key: str) -> Counts:
        """The current counts, strongly consistent (zero when the item does not exist)."""
        return await asyncio.to_thread(self._read, key)

    def _try_add(
        self, key: str, requests: int, tokens: int, max_r: int, max_t: int, expires_at: int
    ) -> AddResult:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression=_ADMIT_UPDATE,
                ConditionExpression=_ADMIT_CONDITION,
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={
                    ":r": _num(requests),
                    ":t": _num(tokens),
                    ":max_r": _num(max_r),
                    ":max_t": _num(max_t),
                    ":ttl": _num(expires_at),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _store_error("UpdateItem", exc) from exc
            item: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            # DynamoDB returns the refusing item; emulators without ALL_OLD support (dynalite) do not.
            return AddResult(False, _counts(item) if item is not None else self._read(key))
        except BotoCoreError as exc:
            raise _store_error("UpdateItem", exc) from exc
        return AddResult(True, _counts(response.get("Attributes")))

    def _add_tokens(self, key: str, tokens: int, expires_at: int) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": key}},
                UpdateExpression=_RECONCILE_UPDATE,
                ExpressionAttributeNames={"#t": "t", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={":t": _num(tokens), ":ttl": _num(expires_at)},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("UpdateItem", exc) from exc

    def _read(self, key: str) -> Counts:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": key}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _store_error("GetItem", exc) from exc
        return _counts(response.get("Item"))
