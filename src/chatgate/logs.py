"""Structured logs: one JSON object per line, with the request id, for CloudWatch Logs Insights.

Never log prompts, completions, keys or secrets: log ids, counts, statuses and exception types.
A record may carry more such fields as `extra={"fields": {...}}` (the access line does: workspace, model,
Lambda's and Azure's request ids); they are added to the object, never replacing the ones above.
The metrics lines (metrics.py) are written to stdout on their own, never through these handlers.
"""

from __future__ import annotations

import json
import logging
import time

from chatgate.middleware import request_id_var


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on the root handlers (the Lambda runtime's, or a stderr handler under uvicorn), and
    chatgate's own level. Idempotent."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        if type(handler).__module__.startswith("_pytest"):
            continue  # leave pytest's capture alone
        handler.setFormatter(JsonFormatter())
    logging.getLogger("chatgate").setLevel(level.upper())
