"""Log lines: Powertools for AWS Lambda's Logger, with the request's keys filled from Lambda Web Adapter.

Every line of the function is one JSON object in Powertools' shape (`level`, `location`, `message`,
`timestamp`, `service`, `cold_start`, `function_name`, `function_memory_size`, `function_arn`,
`function_request_id`, `xray_trace_id`, ...) plus chatgate's `logger` and `request_id` (API Gateway's).
Code logs as before, through `logging.getLogger("chatgate....")`; a record may carry more fields as
`extra={"fields": {...}}` (the access line does: status, workspace, model, timings), added to the object
and never replacing a key above.

Under Lambda Web Adapter there is no Lambda context object, so Powertools' `inject_lambda_context` cannot
run: the middleware binds each request's keys (`bind_request`) from what the adapter passes (the
`x-amzn-lambda-context` and `x-amzn-request-context` headers) in a contextvar, so a request's keys are on its
own lines only, however many requests the loop serves at once. Process-wide keys (function name and memory
size) come from the environment Lambda sets.

Settings, as Powertools documents them: `POWERTOOLS_SERVICE_NAME`, `POWERTOOLS_LOGGER_SAMPLE_RATE` (drawn
again for every request, as `inject_lambda_context` does), and the level: `AWS_LAMBDA_LOG_LEVEL` (Lambda's
advanced logging controls) over `POWERTOOLS_LOG_LEVEL` over chatgate's `CHATGATE_LOG_LEVEL`.
`chatgate dev` writes the same records in a readable console format instead (`console=True`).

Never log prompts, completions, keys or secrets: log ids, counts, statuses and exception types. The metrics
lines (metrics.py) are written to stdout on their own; these lines go to stderr.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

SERVICE = "chatgate"

# What a request binds (cold_start, function_request_id, function_arn, xray_trace_id, request_id).
_request_keys: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "log_keys", default=None
)
_cold = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency"
_logger: Logger | None = None


def cold_start() -> bool:
    """True for the first request this process serves (never under provisioned concurrency)."""
    global _cold
    cold, _cold = _cold, False
    return cold


def bind_request(**keys: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Put these keys on every line logged in the current context (a request's task and what it starts)
    until `unbind_request(token)`; None values are left out."""
    if _logger is not None and _logger.sampling_rate:
        _logger.refresh_sample_rate_calculation()
    return _request_keys.set({key: value for key, value in keys.items() if value is not None})


def unbind_request(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _request_keys.reset(token)


def request_keys() -> dict[str, Any]:
    """The keys bound for the current request ({} outside one)."""
    return _request_keys.get() or {}


def _flat(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of the record with `logger` and the request's keys, and `fields` spread out, as attributes
    (Powertools writes a record's extra attributes as keys); the record itself is left as it was."""
    attributes = dict(record.__dict__)
    fields = attributes.pop("fields", None)
    extra: dict[str, Any] = {"logger": record.name, **request_keys()}
    if isinstance(fields, dict):
        extra.update({str(k): v for k, v in fields.items() if k not in extra})
    attributes.update({k: v for k, v in extra.items() if k not in attributes})
    return logging.makeLogRecord(attributes)


class ChatgateFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, plus the request's keys and a record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(_flat(record))

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        # Powertools reads xray_trace_id from _X_AMZN_TRACE_ID, which the Lambda runtime sets for a handler
        # but Lambda Web Adapter does not pass to the app: take the request's own when it has one.
        trace = request_keys().get("xray_trace_id")
        if trace:
            log["xray_trace_id"] = trace
        return super().serialize(log)


class ConsoleFormatter(logging.Formatter):
    """`chatgate dev`: `12:00:01.234 INFO chatgate.access POST /x 200 3.1ms request_id=req_... status=200`
    (the request id and the record's `fields` as key=value pairs)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        pairs: dict[str, Any] = {"request_id": request_keys().get("request_id")}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            pairs.update(fields)
        line = " ".join(
            [stamp, record.levelname, record.name, record.getMessage()]
            + [f"{key}={value}" for key, value in pairs.items() if value is not None]
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _process_keys() -> dict[str, Any]:
    """What Lambda's environment says of the function (absent outside Lambda)."""
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    return {
        "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        "function_memory_size": int(memory) if memory and memory.isdigit() else None,
    }


def configure_logging(level: str | None = "INFO", *, console: bool = False) -> Logger:
    """Powertools' Logger as the `chatgate` logger, so every `chatgate.*` logger writes through it, and its
    formatter on the root handlers too (uvicorn's and libraries' lines get the same shape). `level` is
    chatgate's own setting, below `POWERTOOLS_LOG_LEVEL` and `AWS_LAMBDA_LOG_LEVEL`. Idempotent: a second
    call only changes the level and the format."""
    global _logger
    chosen = None if os.environ.get("POWERTOOLS_LOG_LEVEL") else (level or "INFO").upper()
    root = logging.getLogger()
    if not root.handlers:  # before the Logger exists: it keeps chatgate's records off the root handlers
        root.addHandler(logging.StreamHandler())
    formatter = ChatgateFormatter(utc=True, use_rfc3339=True, **_process_keys())
    if _logger is None:
        _logger = Logger(service=SERVICE, level=chosen, stream=sys.stderr, logger_formatter=formatter)
        _logger.append_keys(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE)
    else:
        _logger.setLevel(chosen)
    shown: logging.Formatter = ConsoleFormatter() if console else _logger.registered_formatter
    _logger.registered_handler.setFormatter(shown)
    for handler in root.handlers:
        if type(handler).__module__.startswith("_pytest"):
            continue  # leave pytest's capture alone
        handler.setFormatter(shown)
    return _logger
