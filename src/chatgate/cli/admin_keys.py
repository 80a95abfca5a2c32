"""`chatgate admin-keys create [--name N]`: an organisation admin key, the admin API's bootstrap.

Printed once, alone on its line on stdout (stored as its hash); everything else is the admin API
(docs/admin.md). A door onto chatgate.admin.admin_keys, audited with the CLI as the actor."""

from __future__ import annotations

import argparse
import sys

from chatgate.admin.admin_keys import create_admin_key
from chatgate.admin.control import CLI
from chatgate.cli.common import Commands, control_store, run_async, runs
from chatgate.settings import Settings


def register(commands: Commands) -> None:
    admin_keys = commands.add_parser("admin-keys", help="organisation admin keys (the admin API's bootstrap)")
    admin_commands = admin_keys.add_subparsers(title="admin-keys commands", required=True)
    create = admin_commands.add_parser("create", help="create an organisation admin key (printed once)")
    create.add_argument("--name", default="organisation admin key")
    create.set_defaults(run=runs(run_create))


def run_create(args: argparse.Namespace) -> int:
    key, _ = run_async(create_admin_key(control_store(Settings()), CLI, args.name))
    print(key)
    print("Store this admin key now: it is shown only once.", file=sys.stderr)
    return 0
