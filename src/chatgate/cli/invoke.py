"""`chatgate invoke EVENT.json`: the Lambda handler in-process on one API Gateway event."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

from chatgate.cli.common import Commands


def register(commands: Commands) -> None:
    invoke = commands.add_parser("invoke", help="run the Lambda handler on an API Gateway event file")
    invoke.add_argument("event", help="path to an API Gateway REST proxy event (JSON)")
    invoke.set_defaults(run=run_invoke)


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
    from chatgate.observability import metrics

    with open(args.event, encoding="utf-8") as file:
        event = json.load(file)
    metrics.redirect(sys.stderr)  # stdout is the Lambda response; the function's log lines go to stderr
    try:
        result = invoke_event(event)
    finally:
        metrics.redirect(None)
    print(json.dumps(result, indent=2))
    return 0
