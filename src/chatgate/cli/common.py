"""What the commands share: AWS-backed stores built on demand, tables, times, and error exits."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from chatgate.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from chatgate.stores.control_dynamodb import DynamoDBControlStore

T = TypeVar("T")

# argparse's `add_subparsers()` result (a private class; typed loosely on purpose).
Commands = Any


def dynamodb(settings: Settings) -> DynamoDBClient:
    from chatgate.wiring import aws_clients

    return aws_clients(settings)[0]


def control_store(settings: Settings) -> DynamoDBControlStore:
    """The control plane (workspaces, keys, limits, admin keys, audit log) the domain functions work on."""
    from chatgate.stores.control_dynamodb import DynamoDBControlStore

    return DynamoDBControlStore(dynamodb(settings), settings.control_table_name)


def secretsmanager(settings: Settings) -> SecretsManagerClient:
    from chatgate.wiring import aws_clients

    return aws_clients(settings)[1]


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a domain coroutine from a command on an event loop of its own, leaving the thread's current
    loop alone (asyncio.run unsets it, and the Mangum handler of `chatgate invoke`, in the same process,
    takes the current one)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(work)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class CommandError(Exception):
    """A user-facing failure: printed as `chatgate: <message>` on stderr, exit status `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def fail(message: str, status: int = 1) -> NoReturn:
    raise CommandError(message, status)


def runs(function: Any) -> Any:
    """Wrap a command so CommandError (or a refusal of the domain's, in the API's words) becomes a message
    on stderr and an exit status."""
    from chatgate.errors import ChatgateError

    def run(args: argparse.Namespace) -> int:
        try:
            result: int = function(args)
        except CommandError as error:
            print(f"chatgate: {error}", file=sys.stderr)
            return error.status
        except ChatgateError as error:
            print(f"chatgate: {error.message}", file=sys.stderr)
            return 1
        return result

    return run


def when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(timestamp: int | None) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
