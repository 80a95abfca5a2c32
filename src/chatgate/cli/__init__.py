"""The `chatgate` command line: dev | keys | invoke.

    chatgate dev [--host 127.0.0.1] [--port 8000]
    chatgate keys create --workspace W [--name N] [--expires-in-days D]
    chatgate keys list --workspace W
    chatgate keys revoke KEY_ID
    chatgate workspaces limits set --workspace W --model M --rpm N --tpm N   (and show / remove)
    chatgate invoke EVENT.json

Key administration and `invoke` use the AWS endpoints boto3 finds in the environment (AWS_ENDPOINT_URL*
for an emulator, or your AWS credentials and CHATGATE_TABLE_NAME for a deployed stack).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from chatgate.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatgate", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(title="commands")

    dev = commands.add_parser("dev", help="run the whole gateway on this machine")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(run=run_dev)

    keys = commands.add_parser("keys", help="create, list and revoke workspace API keys")
    key_commands = keys.add_subparsers(title="keys commands", required=True)
    create = key_commands.add_parser("create", help="create a key (printed once)")
    create.add_argument("--workspace", required=True)
    create.add_argument("--name", default="")
    create.add_argument("--expires-in-days", type=float, default=None)
    create.set_defaults(run=run_keys_create)
    listing = key_commands.add_parser("list", help="list a workspace's keys (never the secrets)")
    listing.add_argument("--workspace", required=True)
    listing.set_defaults(run=run_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=run_keys_revoke)

    workspaces = commands.add_parser("workspaces", help="per-workspace settings: rate limits")
    workspace_commands = workspaces.add_subparsers(title="workspaces commands", required=True)
    limits = workspace_commands.add_parser("limits", help="per-model rate-limit overrides")
    limit_commands = limits.add_subparsers(title="limits commands", required=True)
    limits_set = limit_commands.add_parser("set", help="override a workspace's limits for one model")
    limits_set.add_argument("--workspace", required=True)
    limits_set.add_argument("--model", required=True, help="a model name, or '*' for every model")
    limits_set.add_argument("--rpm", type=int, required=True, help="requests per window")
    limits_set.add_argument("--tpm", type=int, required=True, help="tokens per window")
    limits_set.set_defaults(run=run_limits_set)
    limits_show = limit_commands.add_parser("show", help="show a workspace's overrides")
    limits_show.add_argument("--workspace", required=True)
    limits_show.set_defaults(run=run_limits_show)
    limits_remove = limit_commands.add_parser("remove", help="go back to the stack's default limits")
    limits_remove.add_argument("--workspace", required=True)
    limits_remove.add_argument("--model", required=True)
    limits_remove.set_defaults(run=run_limits_remove)

    invoke = commands.add_parser("invoke", help="run the Lambda handler on an API Gateway event file")
    invoke.add_argument("event", help="path to an API Gateway REST proxy event (JSON)")
    invoke.set_defaults(run=run_invoke)
    return parser


# --- keys ---------------------------------------------------------------------------------------------


def _key_store(settings: Settings) -> Any:
    from chatgate.stores.keys_dynamodb import DynamoDBKeyStore
    from chatgate.wiring import aws_clients

    dynamodb, _ = aws_clients(settings)
    return DynamoDBKeyStore(dynamodb, settings.table_name)


def create_key(settings: Settings, workspace: str, name: str, expires_at: int | None = None) -> str:
    """Create a key for a workspace; returns the key (the only time it exists in clear)."""
    from chatgate.auth import new_key

    key, key_id, key_hash = new_key()
    _key_store(settings).create(
        key_id=key_id, key_hash=key_hash, workspace_id=workspace, name=name, expires_at=expires_at
    )
    return key


def run_keys_create(args: argparse.Namespace) -> int:
    expires_at = None
    if args.expires_in_days is not None:
        expires_at = int(time.time() + args.expires_in_days * 86400)
    key = create_key(Settings(), args.workspace, args.name, expires_at)
    print(key)
    print("Store this key now: it is shown only once.", file=sys.stderr)
    return 0


def _when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def run_keys_list(args: argparse.Namespace) -> int:
    keys = _key_store(Settings()).list(args.workspace)
    rows = [("KEY_ID", "NAME", "CREATED", "LAST USED", "EXPIRES", "STATUS")]
    now = time.time()
    for key in keys:
        status = "revoked" if key.revoked else ("expired" if not key.usable_at(now) else "active")
        rows.append(
            (
                key.key_id,
                key.name or "-",
                _when(key.created_at),
                _when(key.last_used_at),
                _when(key.expires_at),
                status,
            )
        )
    _print_table(rows)
    return 0


def run_keys_revoke(args: argparse.Namespace) -> int:
    from chatgate.stores.keys_dynamodb import KeyNotFound

    try:
        key = _key_store(Settings()).revoke(args.key_id)
    except KeyNotFound:
        print(f"chatgate: no key with id {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {key.key_id} (workspace {key.workspace_id})")
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# --- workspaces -----------------------------------------------------------------------------------------


def _workspace_store(settings: Settings) -> Any:
    from chatgate.stores.workspaces_dynamodb import DynamoDBWorkspaceStore
    from chatgate.wiring import aws_clients

    dynamodb, _ = aws_clients(settings)
    return DynamoDBWorkspaceStore(dynamodb, settings.table_name)


def run_limits_set(args: argparse.Namespace) -> int:
    from chatgate.ratelimit import Limits

    if args.rpm < 0 or args.tpm < 0:
        print("chatgate: --rpm and --tpm must not be negative", file=sys.stderr)
        return 2
    settings = Settings()
    _workspace_store(settings).set_limits(args.workspace, args.model, Limits(args.rpm, args.tpm))
    print(
        f"workspace {args.workspace}, model {args.model}: {args.rpm} requests and {args.tpm} tokens per "
        f"{settings.rate_window_seconds} s (effective within {settings.key_cache_seconds:g} s)"
    )
    return 0


def run_limits_show(args: argparse.Namespace) -> int:
    settings = Settings()
    rows = [("MODEL", "RPM", "TPM")]
    rows.append(("(default)", str(settings.rpm_limit), str(settings.tpm_limit)))
    for model, limits in sorted(_workspace_store(settings).list_limits(args.workspace).items()):
        rows.append((model, str(limits.requests), str(limits.tokens)))
    _print_table(rows)
    return 0


def run_limits_remove(args: argparse.Namespace) -> int:
    _workspace_store(Settings()).remove_limits(args.workspace, args.model)
    print(f"workspace {args.workspace}, model {args.model}: back to the default limits")
    return 0


# --- invoke -------------------------------------------------------------------------------------------


class _LambdaContext:
    """The parts of a Lambda context object Mangum reads."""

    function_name = "ChatCompletionsFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:ChatCompletionsFunction"

    def __init__(self) -> None:
        self.aws_request_id = secrets.token_hex(16)

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def invoke_event(event: dict[str, Any], handler: Any = None) -> dict[str, Any]:
    """Run the Lambda handler in-process on one API Gateway event, like `sam local invoke -e`."""
    if handler is None:
        from chatgate.lambda_handler import handler
    result: dict[str, Any] = handler(event, _LambdaContext())
    return result


def run_invoke(args: argparse.Namespace) -> int:
    with open(args.event, encoding="utf-8") as file:
        event = json.load(file)
    print(json.dumps(invoke_event(event), indent=2))
    return 0


# --- dev ----------------------------------------------------------------------------------------------


def run_dev(args: argparse.Namespace) -> int:
    from chatgate.dev.server import serve

    serve(host=args.host, port=args.port, environ=os.environ)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
