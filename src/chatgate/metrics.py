"""CloudWatch metrics as embedded metric format (EMF) lines: one JSON line on stdout per request.

In Lambda, CloudWatch Logs turns each line into metrics without an API call (and keeps it searchable in
Logs Insights); anywhere else (`chatgate dev`, tests) the same line is printed. The log records of
logs.py go to stderr through logging's handlers, so the two never share a line. The line goes to the
process's own stdout (`sys.__stdout__`), not to whatever replaced `sys.stdout` in-process, so a command's
own output is never mixed with it; `chatgate invoke`, whose stdout is the Lambda response, sends the
lines to stderr instead (`redirect`), as `sam local invoke` does with the function's logs.

Written here rather than with Powertools Metrics: Powertools keeps one metric set per namespace shared by
every instance of the class (a module-level dict), which mixes the dimensions of concurrent requests under
uvicorn, and flushes at the end of a Lambda handler, which Lambda Web Adapter never calls. One line per
request, built from one RequestObservation, needs only `json` (import cost: README, "Observability").

Names, units and dimensions are documented in docs/observability.md.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from chatgate.observability import RequestObservation

# Dimension sets. Region is constant per deployed stack; it keeps `chatgate dev` (both regions) apart and
# gives the alarms one stack-wide series per metric.
PER_WORKSPACE = ["Region", "Api", "Model", "Workspace"]
PER_MODEL = ["Region", "Api", "Model"]
STACK = ["Region"]
ERRORS_PER_CLASS = ["Region", "Api", "ErrorClass"]


class MetricsConfig:
    """Where and how the lines are written (from Settings; a plain class: no dataclass at import)."""

    __slots__ = ("enabled", "namespace", "per_workspace")

    def __init__(self, namespace: str = "chatgate", per_workspace: bool = True, enabled: bool = True) -> None:
        self.namespace, self.per_workspace, self.enabled = namespace, per_workspace, enabled


def metric_values(observation: RequestObservation) -> list[tuple[str, str, float]]:
    """(name, unit, value) of every metric this request reports."""
    status = observation.status
    values: list[tuple[str, str, float]] = [
        ("Requests", "Count", 1),
        ("Latency", "Milliseconds", round(observation.elapsed_ms(), 3)),
        ("Errors", "Count", 1 if observation.error else 0),
        ("ServerErrors", "Count", 1 if status >= 500 else 0),
        ("RateLimited", "Count", 1 if observation.rate_limited else 0),
        ("UpstreamErrors", "Count", 1 if (observation.error or "").startswith("upstream") else 0),
        ("UnsettledWrites", "Count", observation.unsettled_writes),
    ]
    if observation.input_tokens is not None and observation.output_tokens is not None:
        values.append(("InputTokens", "Count", observation.input_tokens))
        values.append(("OutputTokens", "Count", observation.output_tokens))
    upstream = observation.upstream_ms()
    if upstream is not None:
        values.append(("UpstreamLatency", "Milliseconds", round(upstream, 3)))
    ttft = observation.ttft_ms()
    if ttft is not None:
        values.append(("TimeToFirstToken", "Milliseconds", round(ttft, 3)))
    return values


def emf_record(observation: RequestObservation, config: MetricsConfig) -> dict[str, Any]:
    """The EMF object for one request: metrics, their dimensions, and searchable properties (ids, status,
    error class, token counts) that are not metrics."""
    values = metric_values(observation)
    dimension_sets = [PER_WORKSPACE, PER_MODEL, STACK] if config.per_workspace else [PER_MODEL, STACK]
    directives: list[dict[str, Any]] = [
        {
            "Namespace": config.namespace,
            "Dimensions": dimension_sets,
            "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in values],
        }
    ]
    if observation.error:
        directives.append(
            {
                "Namespace": config.namespace,
                "Dimensions": [ERRORS_PER_CLASS],
                "Metrics": [{"Name": "ErrorsByClass", "Unit": "Count"}],
            }
        )
    record: dict[str, Any] = {
        "_aws": {"Timestamp": int(observation.started_at * 1000), "CloudWatchMetrics": directives},
        "Region": observation.region,
        "Api": observation.api,
        "Model": observation.model,
        "Workspace": observation.workspace,
    }
    if observation.error:
        record["ErrorClass"] = observation.error
        record["ErrorsByClass"] = 1
    record.update({name: value for name, _, value in values})
    # Properties: in the log line for Logs Insights, not metrics.
    record.update(
        {
            "request_id": observation.request_id,
            "method": observation.method,
            "path": observation.path,
            "status": observation.status,
            "stream": observation.stream,
        }
    )
    optional = {
        "lambda_request_id": observation.lambda_request_id,
        "upstream_request_id": observation.upstream_request_id,
        "trace_id": trace_root(observation.trace_header),
        "tokens_counted": observation.tokens_counted or None,
    }
    record.update({key: value for key, value in optional.items() if value is not None})
    return record


def trace_root(header: str | None) -> str | None:
    """The X-Ray trace id (`Root=...`) of a trace header, if any."""
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


_output: TextIO | None = None


def redirect(stream: TextIO | None) -> None:
    """Write the metrics lines to `stream` (None: the process's stdout again)."""
    global _output
    _output = stream


def emit(observation: RequestObservation, config: MetricsConfig, out: TextIO | None = None) -> None:
    """Write the request's EMF line to stdout (once; never raises)."""
    if observation.emitted or not config.enabled:
        return
    observation.emitted = True
    line = json.dumps(emf_record(observation, config), separators=(",", ":")) + "\n"
    stream = out or _output or sys.__stdout__ or sys.stdout
    try:
        stream.write(line)  # one write per line: lines of concurrent requests never interleave
        stream.flush()
    except (OSError, ValueError):
        pass  # a closed stdout must not fail the request
