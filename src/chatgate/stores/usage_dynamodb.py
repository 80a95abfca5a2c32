"""Usage records in the DynamoDB data table (item design in stores/schema.py):

    pk = WS#<workspace>   sk = USAGE#<day>#<model>
    requests, prompt_tokens, completion_tokens                         (all requests)
    counted_requests, counted_prompt_tokens, counted_completion_tokens (the part chatgate counted itself)
    requests@<resource>, tokens@<resource>                             (per resource that answered)
    rate_limited                              (chatgate's 429 rate_limit_exceeded refusals, add_refusals)
    workspace_id, day, model, api ("completions" | "embeddings"), updated_at

Recording is one UpdateItem with `ADD` for every counter and the request's marker `m_<marker>` set under
`attribute_not_exists(m_<marker>)`: DynamoDB applies it atomically per item and creates the item on first
use, so concurrent requests on any number of instances never lose an update
(tests/component/test_usage_dynalite.py proves it), and a retried or replayed record is applied once
(stores/markers.py: markers known to be applied are removed by a later write, so the item stays small).
Reading a workspace's days is one Query on the sort key range, so a month costs one request per 1 MB of
records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatgate.limits.tokens import TokenUsage
from chatgate.limits.usage import COMPLETIONS, UsageRecord
from chatgate.stores.aws import AwsError, AwsUnreachable, RetryPolicy, json_caller
from chatgate.stores.markers import SETTLE, Acknowledged

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_COUNTERS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "counted_requests",
    "counted_prompt_tokens",
    "counted_completion_tokens",
)
_UPDATE = (
    "ADD " + ", ".join(f"#{name} :{name}" for name in _COUNTERS) + " "
    "SET #workspace_id = :workspace_id, #day = :day, #model = :model, #api = :api, #updated_at = :updated_at"
)
# Which resource answered (upstream pools), added to the same atomic ADD.
_RESOURCE_ADD = "#res_requests :res_requests, #res_tokens :res_tokens"
_NAMES = {f"#{name}": name for name in (*_COUNTERS, "workspace_id", "day", "model", "api", "updated_at")}
# Rate-limit refusals: their own ADD; the record's API is the one its requests set, if any came first.
_REFUSALS = (
    "ADD #rate_limited :count SET #workspace_id = :workspace_id, #day = :day, #model = :model, "
    "#api = if_not_exists(#api, :api), #updated_at = :updated_at"
)
_REFUSAL_NAMES = {
    f"#{name}": name for name in ("rate_limited", "workspace_id", "day", "model", "api", "updated_at")
}
# Sorts after every model name: the upper end of a day range on the sort key.
_HIGHEST = "\uffff"


class UsageStoreError(Exception):
    """A usage record could not be written or read. The message names the operation and error code;
    `maybe_applied` says whether the write may have been applied all the same."""

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


def usage_key(workspace_id: str, day: str, model: str) -> dict[str, Any]:
    return {"pk": {"S": f"WS#{workspace_id}"}, "sk": {"S": f"USAGE#{day}#{model}"}}


def _num(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _record(item: dict[str, Any]) -> UsageRecord:
    _, day, model = item["sk"]["S"].split("#", 2)
    counters = {name: int(item[name]["N"]) if name in item else 0 for name in (*_COUNTERS, "rate_limited")}
    api = item.get("api", {}).get("S", COMPLETIONS)  # records written before embeddings: completions
    resources = {
        name.removeprefix("requests@"): (
            int(value["N"]),
            int(item.get(f"tokens@{name[9:]}", {}).get("N", "0")),
        )
        for name, value in item.items()
        if name.startswith("requests@")
    }
    return UsageRecord(
        workspace_id=item["pk"]["S"].removeprefix("WS#"),
        day=day,
        model=model,
        api=api,
        resources=resources,
        **counters,
    )


def _error(operation: str, exc: Exception) -> UsageStoreError:
    if isinstance(exc, AwsError | AwsUnreachable):
        code = exc.code if isinstance(exc, AwsError) else str(exc)
        what = "outcome unknown" if exc.maybe_applied else "failed"  # "failed": it did not happen
        return UsageStoreError(f"DynamoDB {operation} {what}: {code}", maybe_applied=exc.maybe_applied)
    from botocore.exceptions import ClientError  # the CLI's boto3 path

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        return UsageStoreError(f"DynamoDB {operation} failed: {code}")
    return UsageStoreError(f"DynamoDB {operation} failed: {type(exc).__name__}")


class DynamoDBUsageStore:
    """The UsageStore of chatgate.limits.usage, through any `call(action, payload)` client (stores/aws.py's,
    or a boto3 client wrapped by `json_caller` for tooling and the CLI)."""

    def __init__(
        self, client: DynamoDBClient | Any, table_name: str, *, settle_policy: RetryPolicy = SETTLE
    ) -> None:
        self._client = client
        self._call = json_caller(client).call
        self._table = table_name
        self._settle_policy = settle_policy
        self._acknowledged = Acknowledged()

    async def add(
        self,
        workspace_id: str,
        day: str,
        model: str,
        usage: TokenUsage,
        *,
        marker: str,
        api: str = COMPLETIONS,
    ) -> bool:
        """Add one request's usage, once per marker: False if it already was."""
        return await self._marked(
            workspace_id,
            day,
            model,
            marker,
            lambda stale: self._update(workspace_id, day, model, usage, marker=marker, api=api, stale=stale),
        )

    async def add_refusals(
        self, workspace_id: str, day: str, model: str, count: int, *, marker: str, api: str
    ) -> bool:
        """Add `count` rate-limit refusals (chatgate.limits.usage.UsageLedger.refused), once per marker."""

        def update(stale: list[str]) -> dict[str, Any]:
            values = {
                ":count": _num(count),
                ":workspace_id": {"S": workspace_id},
                ":day": {"S": day},
                ":model": {"S": model},
                ":api": {"S": api},
                ":updated_at": _num(int(time.time())),
                ":one": _num(1),
            }
            return self._conditional(
                workspace_id, day, model, _REFUSALS + ", #m = :one", {**_REFUSAL_NAMES}, values, marker, stale
            )

        return await self._marked(workspace_id, day, model, marker, update)

    async def _marked(
        self,
        workspace_id: str,
        day: str,
        model: str,
        marker: str,
        update: Callable[[list[str]], dict[str, Any]],
    ) -> bool:
        """One marked UpdateItem on the record (False: the marker was already applied); markers this
        instance knows were applied are removed by the write (stores/markers.py)."""
        item = f"{workspace_id}#{day}#{model}"
        stale = self._acknowledged.due(item, f"m_{marker}")
        try:
            await self._call("UpdateItem", update(stale), policy=self._settle_policy)
        except AwsError as exc:
            self._acknowledged.restore(item, stale)
            if exc.code == "ConditionalCheckFailedException":
                self._acknowledged.add(item, f"m_{marker}")
                return False
            raise _error("UpdateItem", exc) from None
        except AwsUnreachable as exc:
            self._acknowledged.restore(item, stale)
            raise _error("UpdateItem", exc) from None
        self._acknowledged.add(item, f"m_{marker}")
        return True

    def _update(
        self,
        workspace_id: str,
        day: str,
        model: str,
        usage: TokenUsage,
        *,
        marker: str,
        stale: list[str] | None = None,
        api: str = COMPLETIONS,
    ) -> dict[str, Any]:
        counted = usage.source == "counted"
        amounts = {
            "requests": 1,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "counted_requests": int(counted),
            "counted_prompt_tokens": usage.prompt_tokens if counted else 0,
            "counted_completion_tokens": usage.completion_tokens if counted else 0,
        }
        values = {f":{name}": _num(amount) for name, amount in amounts.items()}
        values |= {
            ":workspace_id": {"S": workspace_id},
            ":day": {"S": day},
            ":model": {"S": model},
            ":api": {"S": api},
            ":updated_at": _num(int(time.time())),
        }
        values[":one"] = _num(1)
        names = dict(_NAMES)
        update = _UPDATE + ", #m = :one"
        if usage.resource is not None:  # upstream pools: which resource answered, in the same atomic ADD
            values |= {":res_requests": _num(1), ":res_tokens": _num(usage.total_tokens)}
            names |= {
                "#res_requests": f"requests@{usage.resource}",
                "#res_tokens": f"tokens@{usage.resource}",
            }
            update = update.replace("ADD ", f"ADD {_RESOURCE_ADD}, ", 1)
        return self._conditional(workspace_id, day, model, update, names, values, marker, stale)

    def _conditional(
        self,
        workspace_id: str,
        day: str,
        model: str,
        update: str,
        names: dict[str, str],
        values: dict[str, Any],
        marker: str,
        stale: list[str] | None,
    ) -> dict[str, Any]:
        """The UpdateItem of a write marked `m_<marker>`, once only, removing the `stale` markers."""
        names = {**names, "#m": f"m_{marker}"}
        if stale:
            names |= {f"#x{i}": name for i, name in enumerate(stale)}
            update += " REMOVE " + ", ".join(f"#x{i}" for i in range(len(stale)))
        return {
            "TableName": self._table,
            "Key": usage_key(workspace_id, day, model),
            "UpdateExpression": update,
            "ConditionExpression": "attribute_not_exists(#m)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    # Reading (the admin API's usage, the CLI): outside the request path.

    async def records(self, workspace_id: str, first_day: str, last_day: str) -> list[UsageRecord]:
        """The workspace's records from `first_day` to `last_day` (inclusive), by day then model."""
        records: list[UsageRecord] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"WS#{workspace_id}"},
                ":first": {"S": f"USAGE#{first_day}#"},
                ":last": {"S": f"USAGE#{last_day}#{_HIGHEST}"},
            },
            "ConsistentRead": True,
        }
        while True:  # a page per MB of records; a workspace's month is a few hundred records
            try:
                page = await self._call("Query", query)
            except (AwsError, AwsUnreachable) as exc:
                raise _error("Query", exc) from None
            records.extend(_record(item) for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return records
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
