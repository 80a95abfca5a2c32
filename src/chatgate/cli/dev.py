"""`chatgate dev`: the whole gateway on this machine (chatgate.dev.server)."""

from __future__ import annotations

import argparse
import os

from chatgate.cli.common import Commands


def register(commands: Commands) -> None:
    dev = commands.add_parser("dev", help="run the whole gateway on this machine")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(run=run_dev)


def run_dev(args: argparse.Namespace) -> int:
    from chatgate.dev.server import serve

    serve(host=args.host, port=args.port, environ=os.environ)
    return 0
