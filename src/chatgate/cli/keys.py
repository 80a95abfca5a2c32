"""`chatgate keys create | list | revoke`: workspace API keys (only their hashes are stored).

A door onto chatgate.admin.keys, as the admin API is: the same functions, the same audit entries (the actor
is the CLI, that is whoever holds the AWS credentials)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from chatgate.admin import keys
from chatgate.admin.control import CLI
from chatgate.cli.common import (
    Commands,
    control_store,
    iso,
    print_table,
    run_async,
    runs,
    when,
    workspace_argument,
)
from chatgate.gateway.auth import ApiKey
from chatgate.settings import Settings


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


def create_key(settings: Settings, workspace: str, name: str, expires_at: int | None = None) -> str:
    """Create a key for a workspace (created too if new); returns the key (the only time it exists in
    clear)."""
    key, _ = run_async(keys.create_key(control_store(settings), CLI, workspace, name, expires_at=expires_at))
    return key


def run_create(args: argparse.Namespace) -> int:
    expires_at = None
    if args.expires_in_days is not None:
        expires_at = int(time.time() + args.expires_in_days * 86400)
    key = create_key(Settings(), args.workspace, args.name, expires_at)
    print(key)
    print("Store this key now: it is shown only once.", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    store = control_store(Settings())
    listed: list[ApiKey] = run_async(store.list_keys(args.workspace))  # revoked keys included
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
                "status": key.state_at(now),
            }
            for key in listed
        ]
        print(json.dumps({"workspace": args.workspace, "keys": document}, indent=2))
        return 0
    rows = [("KEY_ID", "NAME", "CREATED", "LAST USED", "EXPIRES", "STATUS")]
    for key in listed:
        rows.append(
            (
                key.key_id,
                key.name or "-",
                when(key.created_at),
                when(key.last_used_at),
                when(key.expires_at),
                key.state_at(now),
            )
        )
    print_table(rows)
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    key = run_async(keys.revoke_key(control_store(Settings()), CLI, None, args.key_id))
    print(f"revoked {key.key_id} (workspace {key.workspace_id})")
    return 0
