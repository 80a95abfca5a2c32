"""`chatgate usage --workspace W [--from DATE] [--to DATE] [--json]`: tokens per day and model.

Without dates: the last 30 days up to today (UTC). COUNTED is how many of the requests had their usage
counted by chatgate because Azure sent none (a stream that failed, or whose client went away, before
Azure's usage chunk); their tokens are included in PROMPT and COMPLETION.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta

from chatgate.cli.common import (
    CommandError,
    Commands,
    dynamodb,
    fail,
    print_table,
    run_async,
    runs,
    workspace_argument,
)
from chatgate.limits.usage import UsageRecord
from chatgate.settings import Settings

DEFAULT_DAYS = 30


def register(commands: Commands) -> None:
    usage = commands.add_parser("usage", help="a workspace's token usage per day and model")
    usage.add_argument("--workspace", required=True, type=workspace_argument)
    usage.add_argument("--from", dest="first", type=_day, help="first day, YYYY-MM-DD (UTC)")
    usage.add_argument("--to", dest="last", type=_day, help="last day, YYYY-MM-DD (UTC); default today")
    usage.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    usage.set_defaults(run=runs(run_usage))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def day_range(first: date | None, last: date | None, today: date | None = None) -> tuple[date, date]:
    last = last or today or datetime.now(UTC).date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise CommandError(f"--from {first} is after --to {last}", 2)
    return first, last


def totals(workspace_id: str, records: list[UsageRecord]) -> UsageRecord:
    return UsageRecord(
        workspace_id,
        day="",
        model="",
        requests=sum(r.requests for r in records),
        prompt_tokens=sum(r.prompt_tokens for r in records),
        completion_tokens=sum(r.completion_tokens for r in records),
        counted_requests=sum(r.counted_requests for r in records),
        counted_prompt_tokens=sum(r.counted_prompt_tokens for r in records),
        counted_completion_tokens=sum(r.counted_completion_tokens for r in records),
        rate_limited=sum(r.rate_limited for r in records),
        resources=_by_resource(records),
    )


def _by_resource(records: list[UsageRecord]) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for record in records:
        for name, (requests, tokens) in record.resources.items():
            had_requests, had_tokens = found.get(name, (0, 0))
            found[name] = (had_requests + requests, had_tokens + tokens)
    return found


def run_usage(args: argparse.Namespace) -> int:
    from chatgate.stores.usage_dynamodb import DynamoDBUsageStore, UsageStoreError

    settings = Settings()
    first, last = day_range(args.first, args.last)
    store = DynamoDBUsageStore(dynamodb(settings), settings.table_name)
    try:
        records = run_async(store.records(args.workspace, first.isoformat(), last.isoformat()))
    except UsageStoreError as error:
        fail(str(error))
    total = totals(args.workspace, records)
    if args.json:
        summary = total.to_dict()
        del summary["day"], summary["model"], summary["api"]
        document = {
            "workspace": args.workspace,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "records": [record.to_dict() for record in records],
            "total": summary,
        }
        print(json.dumps(document, indent=2))
        return 0
    print(f"workspace {args.workspace}, {first} to {last} (UTC)")
    rows = [("DAY", "MODEL", "REQUESTS", "PROMPT", "COMPLETION", "TOTAL", "COUNTED")]
    for record in [*records, total]:
        rows.append(
            (
                record.day or "total",
                record.model,
                str(record.requests),
                str(record.prompt_tokens),
                str(record.completion_tokens),
                str(record.total_tokens),
                str(record.counted_requests),
            )
        )
    print_table(rows)
    return 0
