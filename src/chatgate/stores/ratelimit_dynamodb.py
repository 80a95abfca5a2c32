"""The rate-limit counters in DynamoDB (the CounterStore of chatgate.ratelimit).

One item per workspace, model and window (table: schema.rate_limit_table):

    pk = RL#<workspace>#<model>#<window start>   r = requests   t = tokens   ttl = window end + retention

Admit: one UpdateItem, `ADD r :1, t :cost` under the condition `r <= max_r - 1 AND t <= max_t - cost`
(missing attributes count as zero), ReturnValues=ALL_NEW for the headers and
ReturnValuesOnConditionCheckFailure=ALL_OLD for the refusal, so no read is needed. DynamoDB evaluates the
condition and applies the update atomically per item, so concurrent instances never over-admit.
Reconcile: one UpdateItem `ADD t :delta` without condition (`ttl` set if missing, so an item that expired
meanwhile is not recreated forever).

The client is the request path's AwsJsonClient (stores/aws.py: async, on httpx, short timeouts, one
retry), or a boto3 client (run in a worker thread) where tooling or tests hand one in.
"""

from __future__ import annotations

from typing import Any

from chatgate.ratelimit import AddResult, CounterStoreError, Counts
from chatgate.stores.aws import AwsError, AwsUnreachable, json_caller
from chatgate.stores.schema import TTL_ATTRIBUTE

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


def _store_error(operation: str, exc: AwsError | AwsUnreachable) -> CounterStoreError:
    code = exc.code if isinstance(exc, AwsError) else str(exc)
    return CounterStoreError(f"DynamoDB {operation} failed: {code}")


class DynamoDBCounterStore:
    """Window counters in a DynamoDB table, through an injected client (AwsJsonClient or boto3)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._call = json_caller(client).call
        self._table = table_name

    async def try_add(
        self, key: str, *, requests: int, tokens: int, max_requests: int, max_tokens: int, expires_at: int
    ) -> AddResult:
        """Atomically add both amounts if both counters stay within their maximum."""
        if requests > max_requests or tokens > max_tokens:
            raise ValueError("an amount larger than its maximum can never be admitted")
        values = {
            ":r": _num(requests),
            ":t": _num(tokens),
            ":max_r": _num(max_requests - requests),
            ":max_t": _num(max_tokens - tokens),
            ":ttl": _num(expires_at),
        }
        try:
            response = await self._call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": {"pk": {"S": key}},
                    "UpdateExpression": _ADMIT_UPDATE,
                    "ConditionExpression": _ADMIT_CONDITION,
                    "ExpressionAttributeNames": _NAMES,
                    "ExpressionAttributeValues": values,
                    "ReturnValues": "ALL_NEW",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                },
            )
        except AwsError as exc:
            if exc.code != "ConditionalCheckFailedException":
                raise _store_error("UpdateItem", exc) from None
            item = exc.body.get("Item")
            # DynamoDB returns the refusing item; emulators without ALL_OLD support (dynalite) do not.
            return AddResult(False, _counts(item) if isinstance(item, dict) else await self.read(key))
        except AwsUnreachable as exc:
            raise _store_error("UpdateItem", exc) from None
        return AddResult(True, _counts(response.get("Attributes")))

    async def add_tokens(self, key: str, tokens: int, *, expires_at: int) -> None:
        """Add (possibly negative) tokens, unconditionally."""
        try:
            await self._call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": {"pk": {"S": key}},
                    "UpdateExpression": _RECONCILE_UPDATE,
                    "ExpressionAttributeNames": {"#t": "t", "#ttl": TTL_ATTRIBUTE},
                    "ExpressionAttributeValues": {":t": _num(tokens), ":ttl": _num(expires_at)},
                },
            )
        except (AwsError, AwsUnreachable) as exc:
            raise _store_error("UpdateItem", exc) from None

    async def read(self, key: str) -> Counts:
        """The current counts, strongly consistent (zero when the item does not exist)."""
        try:
            response = await self._call(
                "GetItem", {"TableName": self._table, "Key": {"pk": {"S": key}}, "ConsistentRead": True}
            )
        except (AwsError, AwsUnreachable) as exc:
            raise _store_error("GetItem", exc) from None
        return _counts(response.get("Item"))
