"""The `chatgate` command line.

    chatgate dev [--host 127.0.0.1] [--port 8000]
    chatgate keys create --workspace W [--name N] [--expires-in-days D]
    chatgate keys list --workspace W [--json]
    chatgate keys revoke KEY_ID
    chatgate workspaces limits set --workspace W --model M --rpm N --tpm N   (and show / remove)
    chatgate workspaces byok set --workspace W --region R --endpoint URL --api-key-stdin
                                 [--api-version V] [--deployment MODEL=DEPLOYMENT ...]   (and show / remove)
    chatgate usage --workspace W [--from DATE] [--to DATE] [--json]
    chatgate admin-keys create [--name N]
    chatgate control migrate [--dry-run]
    chatgate invoke EVENT.json

Administration commands use the AWS endpoints boto3 finds in the environment (AWS_ENDPOINT_URL* for an
emulator, or your AWS credentials and CHATGATE_TABLE_NAME / CHATGATE_SECRET_PREFIX for a deployed stack).
Secrets are never taken from the command line and never printed (except a new API key, once).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from chatgate.cli import admin_keys, control, dev, invoke, keys, usage, workspaces
from chatgate.cli.invoke import invoke_event
from chatgate.cli.keys import create_key

__all__ = ["build_parser", "create_key", "invoke_event", "main"]


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
    parser = argparse.ArgumentParser(prog="chatgate", description="chatgate: an OpenAI-compatible gateway.")
    commands = parser.add_subparsers(title="commands")
    dev.register(commands)
    keys.register(commands)
    admin_keys.register(commands)
    control.register(commands)
    workspaces.register(commands)
    usage.register(commands)
    invoke.register(commands)
    return parser
