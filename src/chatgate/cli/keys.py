"""`chatgate keys create | list | revoke`: workspace API keys (only their hashes are stored)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from chatgate.cli.common import Commands, dynamodb, fail, iso, print_table, runs, when, workspace_argument
from chatgate.settings import Settings

if TYPE_CHECKING:
    from chatgate.auth import ApiKey
    from chatgate.stores.keys_dynamodb import DynamoDBKeyStore


def register(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke workspace API keys")
    key_commands = keys.add_subparsers(title="keys commands", required=True)
    create = key_commands.add_parser("create", help="create a key (printed once)")
    create.add_argument("--workspace", required=True, type=workspace_argument)
    create.add_argument("--name", default="")
    create.add_argument("--expires-in-days", type=float, default=None)
    create.set_defaults(run=runs(run_create))
    listing = key_commands.add_parser("list", help="list a workspace's keys (never the secrets)")
    listing.add_argument("--workspace", required=True, type=workspace_argument)
    listing.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    listing.set_defaults(run=runs(run_list))
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=runs(run_revoke))


def key_store(settings: Settings) -> DynamoDBKeyStore:
    from chatgate.stores.keys_dynamodb import DynamoDBKeyStore

    return DynamoDBKeyStore(dynamodb(settings), settings.table_name)


def create_key(settings: Settings, workspace: str, name: str, expires_at: int | None = None) -> str:
    """Create a key for a workspace; returns the key (the only time it exists in clear)."""
    from chatgate.auth import new_key

    key, key_id, key_hash = new_key()
    key_store(settings).create(
        key_id=key_id, key_hash=key_hash, workspace_id=workspace, name=name, expires_at=expires_at
    )
    return key


def run_create(args: argparse.Namespace) -> int:
    expires_at = None
    if args.expires_in_days is not None:
        expires_at = int(time.time() + args.expires_in_days * 86400)
    key = create_key(Settings(), args.workspace, args.name, expires_at)
    print(key)
    print("Store this key now: it is shown only once.", file=sys.stderr)
    return 0


def _status(key: ApiKey, now: float) -> str:
    if key.revoked:
        return "revoked"
    return "active" if key.usable_at(now) else "expired"


def run_list(args: argparse.Namespace) -> int:
    settings = Settings()
    keys = key_store(settings).list(args.workspace)
    now = time.time()
    if args.json:
        document = [
            {
                "key_id": key.key_id,
                "name": key.name,
                "created_at": iso(key.created_at),
                "last_used_at": iso(key.last_used_at),
                "expires_at": iso(key.expires_at),
                "revoked_at": iso(key.revoked_at),
                "status": _status(key, now),
            }
            for key in keys
        ]
        print(json.dumps({"workspace": args.workspace, "keys": document}, indent=2))
        return 0
    rows = [("KEY_ID", "NAME", "CREATED", "LAST USED", "EXPIRES", "STATUS")]
    for key in keys:
        rows.append(
            (
                key.key_id,
                key.name or "-",
                when(key.created_at),
                when(key.last_used_at),
                when(key.expires_at),
                _status(key, now),
            )
        )
    print_table(rows)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from chatgate.stores.keys_dynamodb import KeyNotFound

    try:
        key = key_store(Settings()).revoke(args.key_id)
    except KeyNotFound:
        fail(f"no key with id {args.key_id}")
    print(f"revoked {key.key_id} (workspace {key.workspace_id})")
    return 0
