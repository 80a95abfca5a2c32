"""The rate-limit counters in DynamoDB (the CounterStore of chatgate.limits.ratelimit).

One item per workspace, model and window (table: schema.rate_limit_table):

    pk = RL#<workspace>#<model>#<window start>   r = requests   t = tokens   ttl = window end + retention

Admit: one UpdateItem, `ADD r :1, t :cost` plus the request's marker `p_<marker> = cost`, under the condition
`r <= max_r - 1 AND t <= max_t - cost AND attribute_not_exists(p_<marker>)` (missing attributes count as
zero), ReturnValues=ALL_NEW for the headers and ReturnValuesOnConditionCheckFailure=ALL_OLD for the refusal,
so no read is needed. DynamoDB evaluates the condition and applies the update atomically per item, so
concurrent instances never over-admit; and the marker makes the admission idempotent: an attempt whose
answer was lost (a reset, a read timeout) is sent again, and if the refusal's item holds the marker, the
first attempt was applied and the request is admitted once.

Settle (reconcile, or release an admission in doubt): one UpdateItem `ADD r :dr, t :dt REMOVE p_<marker>`
under `attribute_exists(p_<marker>)`: applied once whatever the retries; a refusal means it already was (or
the admission never happened). The pending markers of an item are the requests of that window still in
flight, so the item stays small. Tokens beyond a reservation charged to a later window: `ADD t :delta SET
o_<marker>` under `attribute_not_exists(o_<marker>)` (`ttl` set if missing, so an item that expired meanwhile
is not recreated forever); those markers are removed by this instance's next such write to the item, a few
seconds after it knew the write applied (stores/markers.py).

The client is the request path's AwsJsonClient (stores/aws.py: async, on httpx, short timeouts, retried
as botocore's standard mode within a time budget), or a boto3 client (run in a worker thread) where tooling
or tests hand one in.
"""

from __future__ import annotations

from typing import Any

from chatgate.limits.ratelimit import AddResult, CounterStoreError, Counts
from chatgate.stores.aws import READ, AwsError, AwsUnreachable, RetryPolicy, json_caller
from chatgate.stores.markers import SETTLE, Acknowledged
from chatgate.stores.schema import TTL_ATTRIBUTE

_NAMES = {"#r": "r", "#t": "t", "#ttl": TTL_ATTRIBUTE}
_ADMIT_UPDATE = "ADD #r :r, #t :t SET #ttl = if_not_exists(#ttl, :ttl), #p = :t"
_ADMIT_CONDITION = (
    "(attribute_not_exists(#r) OR #r <= :max_r) AND (attribute_not_exists(#t) OR #t <= :max_t)"
    " AND attribute_not_exists(#p)"
)
_SETTLE_UPDATE = "ADD #r :r, #t :t REMOVE #p"
_OVERSHOOT_UPDATE = "ADD #t :t SET #ttl = if_not_exists(#ttl, :ttl), #o = :t"


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
    what = "outcome unknown" if exc.maybe_applied else "failed"  # "failed": it did not happen
    return CounterStoreError(f"DynamoDB {operation} {what}: {code}", maybe_applied=exc.maybe_applied)


def _refused(exc: AwsError) -> bool:
    return exc.code == "ConditionalCheckFailedException"


class DynamoDBCounterStore:
    """Window counters in a DynamoDB table, through an injected client (AwsJsonClient or boto3)."""

    def __init__(self, client: Any, table_name: str, *, settle_policy: RetryPolicy = SETTLE) -> None:
        self._client = client
        self._call = json_caller(client).call
        self._table = table_name
        self._settle_policy = settle_policy
        self._acknowledged = Acknowledged()

    async def try_add(
        self,
        key: str,
        *,
        requests: int,
        tokens: int,
        max_requests: int,
        max_tokens: int,
        expires_at: int,
        marker: str,
    ) -> AddResult:
        """Atomically add both amounts if both counters stay within their maximum, once per marker."""
        if requests > max_requests or tokens > max_tokens:
            raise ValueError("an amount larger than its maximum can never be admitted")
        values = {
            ":r": _num(requests),
            ":t": _num(tokens),
            ":max_r": _num(max_requests - requests),
            ":max_t": _num(max_tokens - tokens),
            ":ttl": _num(expires_at),
        }
        pending = f"p_{marker}"
        try:
            response = await self._call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": {"pk": {"S": key}},
                    "UpdateExpression": _ADMIT_UPDATE,
                    "ConditionExpression": _ADMIT_CONDITION,
                    "ExpressionAttributeNames": {**_NAMES, "#p": pending},
                    "ExpressionAttributeValues": values,
                    "ReturnValues": "ALL_NEW",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                },
                policy=READ,
            )
        except AwsError as exc:
            if not _refused(exc):
                raise _store_error("UpdateItem", exc) from None
            item = exc.body.get("Item")
            # DynamoDB returns the refusing item; emulators without ALL_OLD support (dynalite) do not.
            if not isinstance(item, dict):
                item = await self._item(key)
            # An earlier attempt whose answer was lost was applied: the request is admitted, once.
            return AddResult(pending in item, _counts(item))
        except AwsUnreachable as exc:
            raise _store_error("UpdateItem", exc) from None
        return AddResult(True, _counts(response.get("Attributes")))

    async def settle(self, key: str, *, marker: str, requests: int, tokens: int) -> bool:
        """Add (negative or zero) amounts to the admitting window and end the request's admission there,
        once: False if it had already ended (or never happened)."""
        try:
            await self._call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": {"pk": {"S": key}},
                    "UpdateExpression": _SETTLE_UPDATE,
                    "ConditionExpression": "attribute_exists(#p)",
                    "ExpressionAttributeNames": {"#r": "r", "#t": "t", "#p": f"p_{marker}"},
                    "ExpressionAttributeValues": {":r": _num(requests), ":t": _num(tokens)},
                },
                policy=self._settle_policy,
            )
        except AwsError as exc:
            if _refused(exc):
                return False
            raise _store_error("UpdateItem", exc) from None
        except AwsUnreachable as exc:
            raise _store_error("UpdateItem", exc) from None
        return True

    async def add_tokens(self, key: str, tokens: int, *, expires_at: int, marker: str) -> bool:
        """Add tokens to a (later) window, once per marker: False if they already were."""
        name = f"o_{marker}"
        names = {"#t": "t", "#ttl": TTL_ATTRIBUTE, "#o": name}
        update = _OVERSHOOT_UPDATE
        stale = self._acknowledged.due(key, name)
        if stale:
            names |= {f"#x{i}": old for i, old in enumerate(stale)}
            update += " REMOVE " + ", ".join(f"#x{i}" for i in range(len(stale)))
        try:
            await self._call(
                "UpdateItem",
                {
                    "TableName": self._table,
                    "Key": {"pk": {"S": key}},
                    "UpdateExpression": update,
                    "ConditionExpression": "attribute_not_exists(#o)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {":t": _num(tokens), ":ttl": _num(expires_at)},
                },
                policy=self._settle_policy,
            )
        except AwsError as exc:
            self._acknowledged.restore(key, stale)
            if _refused(exc):
                self._acknowledged.add(key, name)
                return False
            raise _store_error("UpdateItem", exc) from None
        except AwsUnreachable as exc:
            self._acknowledged.restore(key, stale)
            raise _store_error("UpdateItem", exc) from None
        self._acknowledged.add(key, name)
        return True

    async def read(self, key: str) -> Counts:
        """The current counts, strongly consistent (zero when the item does not exist)."""
        return _counts(await self._item(key))

    async def _item(self, key: str) -> dict[str, Any]:
        try:
            response = await self._call(
                "GetItem", {"TableName": self._table, "Key": {"pk": {"S": key}}, "ConsistentRead": True}
            )
        except (AwsError, AwsUnreachable) as exc:
            raise _store_error("GetItem", exc) from None
        item = response.get("Item")
        return item if isinstance(item, dict) else {}
