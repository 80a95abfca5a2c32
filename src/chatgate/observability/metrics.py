"""CloudWatch metrics as embedded metric format (EMF) lines: one JSON line on stdout per request.

In Lambda, CloudWatch Logs turns each line into metrics without an API call (and keeps it searchable in
Logs Insights); anywhere else (`chatgate dev`, tests) the same line is printed. The log records of
logs.py go to stderr through logging's handlers, so the two never share a line. The line goes to the
process's own stdout (`sys.__stdout__`), not to whatever replaced `sys.stdout` in-process, so a command's
own output is never mixed with it; `chatgate invoke`, whose stdout is the Lambda response, sends the
lines to stderr instead (`redirect`), as `sam local invoke` does with the function's logs.

The line is Powertools for AWS Lambda's EMF: one `EphemeralMetrics` per request (Powertools' `Metrics`
keeps one metric set per namespace shared by every instance, which would mix the dimensions of requests
uvicorn serves at once; EphemeralMetrics is Powertools' multi-tenant answer). Lambda Web Adapter never
calls a handler that `log_metrics` could wrap, so the middleware writes the line itself before the last
body message: Powertools serializes it (`serialize_metric_set`, what `flush_metrics` prints), and it is
written here in one write to the chosen stream; `POWERTOOLS_METRICS_DISABLED` is honoured as flush_metrics
does. No `service` dimension: the namespace names the service, and the series stay those the dashboard,
the alarms and docs/observability.md name (Powertools would add `service` to the first set from
POWERTOOLS_SERVICE_NAME, so it is set empty). The dimension values still come from chatgate's closed sets.
Powertools' ColdStart metric needs a handler's context; here an instance's first request adds it.

Names, units and dimensions are documented in docs/observability.md.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from aws_lambda_powertools.metrics import EphemeralMetrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from chatgate import workspace_ids
from chatgate.observability.observation import RequestObservation

# Dimension sets. Region is constant per deployed stack; it keeps `chatgate dev` (both regions) apart and
# gives the alarms one stack-wide series per metric.
PER_WORKSPACE = ["Region", "Api", "Model", "Workspace"]
PER_MODEL = ["Region", "Api", "Model"]
STACK = ["Region"]
ERRORS_PER_CLASS = ["Region", "Api", "ErrorClass"]
# Upstream pools: traffic and failover per resource (the one that served, or was tried last), and a pool
# with no healthy resource per kind of pool ("stack" or "byok"), which the stack's alarm watches.
PER_RESOURCE = ["Region", "Model", "Resource"]
PER_POOL = ["Region", "Pool"]


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


def _metric_set(namespace: str, observation: RequestObservation) -> EphemeralMetrics:
    metrics = EphemeralMetrics(namespace=namespace, service="")  # "": no service dimension (module doc)
    metrics.set_timestamp(int(observation.started_at * 1000))
    return metrics


def emf_record(
    observation: RequestObservation, config: MetricsConfig, *, cold_start: bool = False
) -> dict[str, Any]:
    """The EMF object for one request: metrics, their dimensions, and searchable properties (ids, status,
    error class, token counts) that are not metrics. Errors add a directive (`ErrorsByClass` per class) to
    the same object, and so does a Lambda instance's first request (`ColdStart`): one line per request."""
    dimensions = {
        "Region": observation.region,
        "Api": observation.api,
        "Model": observation.model,
        "Workspace": workspace_ids.dimension(observation.workspace),
    }
    metrics = _metric_set(config.namespace, observation)
    first, *others = [PER_WORKSPACE, PER_MODEL, STACK] if config.per_workspace else [PER_MODEL, STACK]
    for name in first:
        metrics.add_dimension(name=name, value=dimensions[name])
    for dimension_set in others:
        metrics.add_dimensions(**{name: dimensions[name] for name in dimension_set})
    for name, unit, value in metric_values(observation):
        metrics.add_metric(name=name, unit=unit, value=value)
    # Properties: in the log line for Logs Insights, not metrics.
    properties: dict[str, Any] = {
        "request_id": observation.request_id,
        "method": observation.method,
        "path": observation.path,
        "status": observation.status,
        "stream": observation.stream,
        "lambda_request_id": observation.lambda_request_id,
        "upstream_request_id": observation.upstream_request_id,
        "trace_id": trace_root(observation.trace_header),
        "tokens_counted": observation.tokens_counted or None,
    }
    for key, value in properties.items():
        if value is not None:
            metrics.add_metadata(key=key, value=value)
    record: dict[str, Any] = dict(metrics.serialize_metric_set())
    if observation.error:
        errors = _metric_set(config.namespace, observation)
        for name in ERRORS_PER_CLASS:
            errors.add_dimension(name=name, value={**dimensions, "ErrorClass": observation.error}[name])
        errors.add_metric(name="ErrorsByClass", unit="Count", value=1)
        _add_directive(record, errors)
    pool = pool_values(observation)
    if pool:  # upstream pools: traffic per resource, attempts, failovers (docs/upstreams.md)
        by_resource = _metric_set(config.namespace, observation)
        names = {**dimensions, "Resource": observation.resource, "Pool": observation.pool}
        for name in PER_RESOURCE:
            by_resource.add_dimension(name=name, value=names[name])
        by_resource.add_dimensions(**{name: names[name] for name in PER_POOL})
        for name, value in pool.items():
            by_resource.add_metric(name=name, unit="Count", value=value)
        _add_directive(record, by_resource)
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    if cold_start and function_name:
        # Powertools' ColdStart metric (what log_metrics(capture_cold_start_metric=True) writes in a handler),
        # by function_name as there, with no service dimension like every other series here.
        cold = _metric_set(config.namespace, observation)
        cold.add_dimension(name="function_name", value=function_name)
        cold.add_metric(name="ColdStart", unit="Count", value=1)
        _add_directive(record, cold)
    return record


def pool_values(observation: RequestObservation) -> dict[str, int]:
    """The upstream pool's metrics of a request that reached one: whether the resource answered it
    (ServedRequests: traffic per resource), attempts, failovers (attempts after the first), resources
    cooling down, and whether none could serve (PoolExhausted)."""
    if observation.cooling is None:
        return {}
    attempts = len(observation.attempts)
    served = bool(observation.attempts) and observation.attempts[-1][1] == 200
    return {
        "ServedRequests": 1 if served else 0,
        "UpstreamAttempts": attempts,
        "Failovers": max(attempts - 1, 0),
        "CoolingResources": observation.cooling,
        "PoolExhausted": 1 if observation.pool_exhausted else 0,
    }


def _add_directive(record: dict[str, Any], metrics: EphemeralMetrics) -> None:
    """Add another metric set to the same line: its directive, and its dimension and metric values."""
    other: dict[str, Any] = dict(metrics.serialize_metric_set())
    record["_aws"]["CloudWatchMetrics"].extend(other.pop("_aws")["CloudWatchMetrics"])
    record.update(other)


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


def emit(
    observation: RequestObservation,
    config: MetricsConfig,
    out: TextIO | None = None,
    *,
    cold_start: bool = False,
) -> None:
    """Write the request's EMF line to stdout (once; never raises)."""
    if observation.emitted or not config.enabled or is_metrics_disabled():
        return
    observation.emitted = True
    line = json.dumps(emf_record(observation, config, cold_start=cold_start), separators=(",", ":")) + "\n"
    stream = out or _output or sys.__stdout__ or sys.stdout
    try:
        stream.write(line)  # one write per line: lines of concurrent requests never interleave
        stream.flush()
    except (OSError, ValueError):
        pass  # a closed stdout must not fail the request
