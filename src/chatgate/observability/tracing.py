"""X-Ray subsegments for the pipeline steps, sent to the Lambda X-Ray daemon over UDP without an SDK.

With active tracing, Lambda itself records the function's segment and hands each invocation a trace
header (`Root=...;Parent=<the function segment>;Sampled=1`): Mangum's runtime puts it in the
`_X_AMZN_TRACE_ID` environment variable, Lambda Web Adapter in the `x-amzn-lambda-context` header
(`xray_trace_id`). When the request is sampled, this module sends ONE document to the daemon
(`AWS_XRAY_DAEMON_ADDRESS`) just before the response's last byte: a `chatgate` subsegment under the
function's segment, with the pipeline steps (authenticate, validate, reserve, upstream, settle) nested in
it, annotations to search by (model, workspace, region, api, status, error class, request id) and the
OpenTelemetry GenAI attribute names as metadata (`gen_ai.request.model`, `gen_ai.usage.input_tokens`,
`gen_ai.usage.output_tokens`).

Why not the X-Ray SDK (or Powertools Tracer, which wraps it) or OpenTelemetry: their imports and patching
cost tens to hundreds of milliseconds of cold start, and all chatgate needs is one UDP datagram of JSON
(the daemon protocol: a `{"format": "json", "version": 1}` line, then the document). Nothing is sent
when tracing is off, unsampled, or outside Lambda; sending never raises and never blocks.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from chatgate.observability.observation import RequestObservation

_HEADER = b'{"format":"json","version":1}\n'
_socket: socket.socket | None = None


def lambda_trace_header(scope: Any) -> str | None:
    """The trace header of a Mangum invocation (the runtime sets it per invocation); None elsewhere."""
    if isinstance(scope, dict) and "aws.event" in scope:
        return os.environ.get("_X_AMZN_TRACE_ID") or None
    return None


def parse_header(header: str | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key and value:
            fields[key] = value
    return fields


def daemon_address(value: str | None = None) -> tuple[str, int] | None:
    """AWS_XRAY_DAEMON_ADDRESS: `host:port`, or `udp:host:port tcp:host:port`."""
    value = os.environ.get("AWS_XRAY_DAEMON_ADDRESS", "") if value is None else value
    for part in value.split():
        if part.startswith("tcp:"):
            continue
        host, _, port = part.removeprefix("udp:").rpartition(":")
        if host and port.isdigit():
            return host, int(port)
    return None


def _new_id() -> str:
    return os.urandom(8).hex()


def document(observation: RequestObservation, trace_id: str, parent_id: str, now: float) -> dict[str, Any]:
    """The `chatgate` subsegment of one request, its steps nested in it (times in epoch seconds)."""

    def epoch(perf: float) -> float:
        return round(observation.started_at + (perf - observation.started), 6)

    status = observation.status
    annotations: dict[str, Any] = {
        "request_id": observation.request_id,
        "api": observation.api,
        "region": observation.region,
        "workspace": observation.workspace,
        "model": observation.model,
        "status": status,
        "stream": observation.stream,
    }
    if observation.error:
        annotations["error_class"] = observation.error
    gen_ai: dict[str, Any] = {
        "gen_ai.provider.name": "azure.ai.openai",
        "gen_ai.request.model": observation.model,
    }
    if observation.input_tokens is not None:
        gen_ai["gen_ai.usage.input_tokens"] = observation.input_tokens
        gen_ai["gen_ai.usage.output_tokens"] = observation.output_tokens
    if observation.upstream_request_id:
        gen_ai["azure.apim_request_id"] = observation.upstream_request_id
    steps = [
        {
            "name": step.name,
            "id": _new_id(),
            "start_time": epoch(step.start),
            "end_time": epoch(step.end),
            **({"namespace": "remote"} if step.name == "upstream" else {}),
        }
        for step in observation.steps
    ]
    return {
        "name": "chatgate",
        "id": _new_id(),
        "trace_id": trace_id,
        "parent_id": parent_id,
        "type": "subsegment",
        "start_time": epoch(observation.started),
        "end_time": epoch(now),
        "http": {"request": {"method": observation.method}, "response": {"status": status}},
        "error": 400 <= status < 500,
        "throttle": status == 429,
        "fault": status >= 500,
        "annotations": annotations,
        "metadata": {"gen_ai": gen_ai},
        "subsegments": steps,
    }


def send(observation: RequestObservation, now: float | None = None) -> bool:
    """Send the request's subsegment if it is sampled and a daemon is configured; True if sent."""
    global _socket
    header = parse_header(observation.trace_header)
    address = daemon_address()
    if header.get("Sampled") != "1" or "Root" not in header or "Parent" not in header or address is None:
        return False
    doc = document(observation, header["Root"], header["Parent"], time.perf_counter() if now is None else now)
    try:
        if _socket is None:
            _socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            _socket.setblocking(False)
        _socket.sendto(_HEADER + json.dumps(doc, separators=(",", ":")).encode(), address)
    except OSError:
        return False
    return True
