"""`chatgate workspaces limits ...` (per-model rate-limit overrides) and `... byok ...` (its own Azure)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from chatgate.cli import byok
from chatgate.cli.common import Commands, dynamodb, fail, print_table, runs, workspace_argument
from chatgate.settings import Settings

if TYPE_CHECKING:
    from chatgate.stores.workspaces_dynamodb import DynamoDBWorkspaceStore


def register(commands: Commands) -> None:
    workspaces = commands.add_parser("workspaces", help="per-workspace settings: rate limits, own Azure")
    workspace_commands = workspaces.add_subparsers(title="workspaces commands", required=True)
    _register_limits(workspace_commands)
    byok.register(workspace_commands)


def _register_limits(workspace_commands: Commands) -> None:
    limits = workspace_commands.add_parser("limits", help="per-model rate-limit overrides")
    limit_commands = limits.add_subparsers(title="limits commands", required=True)
    limits_set = limit_commands.add_parser("set", help="override a workspace's limits for one model")
    limits_set.add_argument("--workspace", required=True, type=workspace_argument)
    limits_set.add_argument("--model", required=True, help="a model name, or '*' for every model")
    limits_set.add_argument("--rpm", type=int, required=True, help="requests per window")
    limits_set.add_argument("--tpm", type=int, required=True, help="tokens per window")
    limits_set.set_defaults(run=runs(run_limits_set))
    limits_show = limit_commands.add_parser("show", help="show a workspace's overrides")
    limits_show.add_argument("--workspace", required=True, type=workspace_argument)
    limits_show.set_defaults(run=runs(run_limits_show))
    limits_remove = limit_commands.add_parser("remove", help="go back to the stack's default limits")
    limits_remove.add_argument("--workspace", required=True, type=workspace_argument)
    limits_remove.add_argument("--model", required=True)
    limits_remove.set_defaults(run=runs(run_limits_remove))


def workspace_store(settings: Settings) -> DynamoDBWorkspaceStore:
    from chatgate.stores.workspaces_dynamodb import DynamoDBWorkspaceStore

    return DynamoDBWorkspaceStore(dynamodb(settings), settings.table_name)


def run_limits_set(args: argparse.Namespace) -> int:
    from chatgate.ratelimit import Limits

    if args.rpm < 0 or args.tpm < 0:
        fail("--rpm and --tpm must not be negative", 2)
    settings = Settings()
    workspace_store(settings).set_limits(args.workspace, args.model, Limits(args.rpm, args.tpm))
    print(
        f"workspace {args.workspace}, model {args.model}: {args.rpm} requests and {args.tpm} tokens per "
        f"{settings.rate_window_seconds} s (effective within {settings.key_cache_seconds:g} s)"
    )
    return 0


def run_limits_show(args: argparse.Namespace) -> int:
    settings = Settings()
    rows = [("MODEL", "RPM", "TPM")]
    rows.append(("(default)", str(settings.rpm_limit), str(settings.tpm_limit)))
    for model, limits in sorted(workspace_store(settings).list_limits(args.workspace).items()):
        rows.append((model, str(limits.requests), str(limits.tokens)))
    print_table(rows)
    return 0


def run_limits_remove(args: argparse.Namespace) -> int:
    workspace_store(Settings()).remove_limits(args.workspace, args.model)
    print(f"workspace {args.workspace}, model {args.model}: back to the default limits")
    return 0
