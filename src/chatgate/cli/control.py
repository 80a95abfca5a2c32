"""`chatgate control migrate [--dry-run]`: copy a stack's keys and limits from its data table
(CHATGATE_TABLE_NAME) into the control table (CHATGATE_CONTROL_TABLE_NAME). Idempotent; docs/deploy.md
gives the order (EU first, then US)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from chatgate.admin.control import CLI
from chatgate.admin.migration import migrate
from chatgate.cli.common import Commands, control_store, dynamodb, run_async, runs
from chatgate.settings import Settings


def register(commands: Commands) -> None:
    control = commands.add_parser("control", help="the control table (workspaces, keys, limits, admin keys)")
    control_commands = control.add_subparsers(title="control commands", required=True)
    run = control_commands.add_parser("migrate", help="copy keys and limits from the data table (idempotent)")
    run.add_argument("--dry-run", action="store_true", help="count what would be copied, write nothing")
    run.set_defaults(run=runs(run_migrate))


def _data_items(settings: Settings) -> Iterator[dict[str, Any]]:
    """The data table's items, a page at a time (a Scan: run once per region, by the operator)."""
    paginator = dynamodb(settings).get_paginator("scan")
    for page in paginator.paginate(TableName=settings.table_name, ConsistentRead=True):
        yield from page.get("Items", [])


def run_migrate(args: argparse.Namespace) -> int:
    settings = Settings()
    items = list(_data_items(settings))
    report = run_async(migrate(items, control_store(settings), CLI, dry_run=args.dry_run))
    print(
        f"{settings.table_name} -> {settings.control_table_name}"
        + (" (dry run: nothing written)" if args.dry_run else "")
    )
    for line in report.lines(args.dry_run):
        print(f"  {line}")
    return 0
