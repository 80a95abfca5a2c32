"""`chatgate ledger replay`: apply the settlement writes that "unsettled" lines name, once.

    chatgate ledger replay --file LOG [LOG ...]           (log lines: a saved `chatgate dev` log, an export)
    chatgate ledger replay --log-group NAME [--since-hours 24]   (the function's CloudWatch log group)
    [--dry-run] [--json]

Each write is applied with the request's marker under a condition (chatgate.limits.ledger, stores/markers.py):
one that was applied meanwhile, or by an earlier replay, changes nothing ("already applied"). Replaying the
same lines twice is safe. A reconcile whose window's counter has expired (its ttl: an hour after the
window) has nothing left to correct and is reported as already applied. Exit status 1 if any write failed
(run it again later); 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from chatgate.cli.common import Commands, dynamodb, fail, runs
from chatgate.limits.ledger import UnsettledWrite, unsettled_in
from chatgate.settings import Settings

# CloudWatch Logs filter: events with the term "unsettled" (the lines themselves are then read as JSON,
# wherever the logger put the object).
FILTER_PATTERN = '"unsettled"'


def register(commands: Commands) -> None:
    ledger = commands.add_parser("ledger", help="the books: replay settlement writes that did not settle")
    actions = ledger.add_subparsers(title="actions")
    replay = actions.add_parser("replay", help="apply the writes named by 'unsettled' log lines, once")
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", nargs="+", metavar="LOG", help="log files ('-': standard input)")
    source.add_argument("--log-group", help="the function's CloudWatch Logs group")
    replay.add_argument("--since-hours", type=float, default=24.0, help="with --log-group (default 24)")
    replay.add_argument("--dry-run", action="store_true", help="list the writes, apply nothing")
    replay.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    replay.set_defaults(run=runs(run_replay))


def _file_lines(paths: list[str]) -> Iterator[str]:
    for path in paths:
        if path == "-":
            yield from sys.stdin
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as lines:
                yield from lines
        except OSError as error:
            fail(f"cannot read {path}: {error.strerror}")


def _log_group_lines(group: str, since_hours: float) -> Iterator[str]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    logs = boto3.session.Session().client("logs")
    start = int((time.time() - since_hours * 3600) * 1000)
    try:
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, filterPattern=FILTER_PATTERN, startTime=start
        )
        for page in pages:
            for event in page.get("events", []):
                yield str(event.get("message", ""))
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot read log group {group}: {type(error).__name__}")


def unique(found: Iterable[tuple[str, UnsettledWrite]]) -> list[tuple[str, UnsettledWrite]]:
    """Each write once, in the order first seen (a line may be in two files, or a file twice)."""
    seen: set[str] = set()
    writes = []
    for request, write in found:
        identity = json.dumps([write.kind, write.marker, write.fields], sort_keys=True)
        if identity not in seen:
            seen.add(identity)
            writes.append((request, write))
    return writes


async def apply(write: UnsettledWrite, counters: Any, usage: Any) -> bool:
    """Apply one write: True if it was applied now, False if it already had been."""
    fields = write.fields
    if write.kind == "reconcile":
        return bool(
            await counters.settle(
                str(fields["key"]),
                marker=write.marker,
                requests=int(fields["requests"]),
                tokens=int(fields["tokens"]),
            )
        )
    if write.kind == "overshoot":
        return bool(
            await counters.add_tokens(
                str(fields["key"]),
                int(fields["tokens"]),
                expires_at=int(fields["expires_at"]),
                marker=write.marker,
            )
        )
    from chatgate.limits.tokens import TokenUsage
    from chatgate.limits.usage import COMPLETIONS

    arguments: dict[str, Any] = {
        "prompt_tokens": int(fields["prompt_tokens"]),
        "completion_tokens": int(fields["completion_tokens"]),
        "source": fields["source"],
    }
    if fields.get("resource"):  # upstream pools: the resource that answered (TokenUsage.resource)
        arguments["resource"] = str(fields["resource"])
    used = TokenUsage(**arguments)
    return bool(
        await usage.add(
            str(fields["workspace_id"]),
            str(fields["day"]),
            str(fields["model"]),
            used,
            marker=write.marker,
            api=str(fields.get("api") or COMPLETIONS),  # lines written before embeddings: completions
        )
    )


def run_replay(args: argparse.Namespace) -> int:
    from chatgate.stores.ratelimit_dynamodb import DynamoDBCounterStore
    from chatgate.stores.usage_dynamodb import DynamoDBUsageStore

    lines = _file_lines(args.file) if args.file else _log_group_lines(args.log_group, args.since_hours)
    writes = unique(unsettled_in(lines))
    settings = Settings()
    results: list[dict[str, Any]] = []
    if not args.dry_run and writes:
        client = dynamodb(settings)
        counters = DynamoDBCounterStore(client, settings.rate_limit_table_name)
        usage = DynamoDBUsageStore(client, settings.table_name)

        async def replay() -> None:
            for request, write in writes:
                try:
                    result = "applied" if await apply(write, counters, usage) else "already applied"
                except Exception as error:  # the stores' errors name the operation and code only
                    result = f"failed: {error}"
                results.append({"request": request, **write.to_dict(), "result": result})

        asyncio.run(replay())
    else:
        results = [{"request": r, **w.to_dict(), "result": "not applied (dry run)"} for r, w in writes]
    counts = {
        "writes": len(results),
        "applied": sum(r["result"] == "applied" for r in results),
        "already_applied": sum(r["result"] == "already applied" for r in results),
        "failed": sum(r["result"].startswith("failed") for r in results),
    }
    if args.json:
        print(json.dumps({"summary": counts, "writes": results}, indent=2))
    else:
        for r in results:
            print(f"{r['request']} {r['kind']} ({r['outcome']} when logged): {r['result']}")
        print(
            f"{counts['writes']} unsettled writes: {counts['applied']} applied, "
            f"{counts['already_applied']} already applied, {counts['failed']} failed"
        )
    return 1 if counts["failed"] else 0
