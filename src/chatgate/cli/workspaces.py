"""`chatgate workspaces limits ...` (per-model rate-limit overrides) and `... byok ...` (its own Azure)."""

from __future__ import annotations

import argparse

from chatgate.admin import limits
from chatgate.admin.control import CLI
from chatgate.cli import byok
from chatgate.cli.common import (
    Commands,
    control_store,
    fail,
    print_table,
    run_async,
    runs,
    workspace_argument,
)
from chatgate.limits.ratelimit import Limits
from chatgate.settings import Settings


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


def run_limits_set(args: argparse.Namespace) -> int:
    if args.rpm < 0 or args.tpm < 0:
        fail("--rpm and --tpm must not be negative", 2)
    settings = Settings()
    run_async(
        limits.set_limits(
            control_store(settings),
            CLI,
            args.workspace,
            args.model,
            requests=args.rpm,
            tokens=args.tpm,
            defaults=Limits.from_settings(settings),
        )
    )
    print(
        f"workspace {args.workspace}, model {args.model}: {args.rpm} requests and {args.tpm} tokens per "
        f"{settings.rate_window_seconds} s (effective within {settings.key_cache_seconds:g} s)"
    )
    return 0


def run_limits_show(args: argparse.Namespace) -> int:
    settings = Settings()
    rows = [("MODEL", "RPM", "TPM")]
    rows.append(("(default)", str(settings.rpm_limit), str(settings.tpm_limit)))
    overrides = run_async(control_store(settings).get_limits(args.workspace))
    for model, override in sorted(overrides.items()):
        rows.append((model, str(override.requests), str(override.tokens)))
    print_table(rows)
    return 0


def run_limits_remove(args: argparse.Namespace) -> int:
    run_async(limits.remove_limits(control_store(Settings()), CLI, args.workspace, args.model))
    print(f"workspace {args.workspace}, model {args.model}: back to the default limits")
    return 0
