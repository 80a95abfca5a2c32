"""The outermost layer of every request: its id, its observation, and a last-resort 500.

A pure ASGI middleware (not BaseHTTPMiddleware, which would buffer streamed responses). It
- names the request: API Gateway's `requestId` when there is one (Mangum's `scope["aws.event"]`, or the
  `x-amzn-request-context` header Lambda Web Adapter adds), a fresh `req_...` id otherwise; every
  response carries it as `x-request-id`, every log line as `request_id`, with Powertools' per-invocation
  keys (`cold_start`, `function_request_id`, `function_arn`, `xray_trace_id`) bound for the request's lines
  only (logs.bind_request);
- creates the request's RequestObservation (observability.py) and stamps `server-timing` on the response;
- writes the request's metrics line and access log line just BEFORE the response's last body message is
  passed on: Lambda freezes the sandbox as the body ends (Lambda Web Adapter) or the handler returns
  (Mangum), so nothing may be written after it;
- answers an unexpected exception that escapes the app before the response started with a generic
  OpenAI-shaped 500 naming only the request id.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.errors import InternalError
from chatgate.observability import logs, tracing
from chatgate.observability.metrics import MetricsConfig, emit, trace_root
from chatgate.observability.observation import RequestObservation, api_of, observation_var

logger = logging.getLogger("chatgate.access")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# API Gateway request ids are UUIDs; Lambda's too. Anything else (a header forged outside API Gateway) is
# ignored rather than echoed into logs and headers.
_AWS_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{7,63}")
_TRACE_HEADER = re.compile(r"[A-Za-z0-9=;:._-]{1,256}")
_FUNCTION_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_:.$-]{1,170}")
_UNTRACED_PATHS = frozenset({"/healthz"})


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _aws_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _AWS_ID.fullmatch(value) else None


def aws_context(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """(API Gateway request id, Lambda request id, X-Ray trace header) of a request, where known.

    Mangum: the event is `scope["aws.event"]`, the Lambda context `scope["aws.context"]`, and the Lambda
    runtime sets `_X_AMZN_TRACE_ID` (read by tracing.py). Lambda Web Adapter: the headers
    `x-amzn-request-context` and `x-amzn-lambda-context` (JSON), which it sets on every request it
    forwards, replacing any a client sent, and `x-amzn-trace-id`."""
    event = scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext")
        api_id = _aws_id(context.get("requestId")) if isinstance(context, dict) else None
        lambda_id = _aws_id(getattr(scope.get("aws.context"), "aws_request_id", None))
        return api_id, lambda_id, None
    request_context = _json_object(_header(scope, b"x-amzn-request-context"))
    lambda_context = _json_object(_header(scope, b"x-amzn-lambda-context"))
    # The adapter also passes the invocation's trace as `x-amzn-trace-id` (it cannot set the app's
    # _X_AMZN_TRACE_ID): the fallback when the context carries none.
    trace = lambda_context.get("xray_trace_id") or _header(scope, b"x-amzn-trace-id")
    return (
        _aws_id(request_context.get("requestId")),
        _aws_id(lambda_context.get("request_id")),
        trace if isinstance(trace, str) and _TRACE_HEADER.fullmatch(trace) else None,
    )


def function_arn(scope: Scope) -> str | None:
    """The ARN the function was invoked by (Mangum's context, or Lambda Web Adapter's
    `x-amzn-lambda-context`), where known."""
    context = scope.get("aws.context")
    if context is not None:
        arn = getattr(context, "invoked_function_arn", None)
    else:
        arn = _json_object(_header(scope, b"x-amzn-lambda-context")).get("invoked_function_arn")
    return arn if isinstance(arn, str) and _FUNCTION_ARN.fullmatch(arn) else None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: MetricsConfig | None = None) -> None:
        self.app = app
        self.metrics = metrics or MetricsConfig()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api_request_id, lambda_request_id, trace_header = aws_context(scope)
        request_id = api_request_id or new_request_id()
        path = str(scope.get("path", ""))
        observation = RequestObservation(
            request_id=request_id,
            method=str(scope.get("method", "-")),
            path=path,
            api=api_of(path),
            lambda_request_id=lambda_request_id,
            trace_header=trace_header or tracing.lambda_trace_header(scope),
        )
        observed = path not in _UNTRACED_PATHS
        token = request_id_var.set(request_id)
        # Lambda Web Adapter's readiness checks (/healthz) come before the first invocation.
        cold_start = logs.cold_start() if observed else None
        log_token = logs.bind_request(
            request_id=request_id,
            cold_start=cold_start,
            function_request_id=lambda_request_id,
            function_arn=function_arn(scope),
            xray_trace_id=trace_root(observation.trace_header),
        )
        observation_token = observation_var.set(observation)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["observation"] = observation
        id_header = (b"x-request-id", request_id.encode())

        def finish() -> None:
            """The request's last words, before its last byte: access log, metrics line, trace."""
            if observation.emitted:
                return
            if not observed:
                observation.emitted = True
                return
            logger.info(
                "%s %s %s %.1fms",
                observation.method,
                path,
                observation.status,
                observation.elapsed_ms(),
                extra={"fields": _access_fields(observation)},
            )
            emit(observation, self.metrics, cold_start=bool(cold_start))
            tracing.send(observation)

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                observation.status = message["status"]
                if observation.status >= 400 and observation.error is None:
                    observation.failed(observation.status)
                timing = (b"server-timing", observation.server_timing().encode())
                message["headers"] = [*message.get("headers", []), id_header, timing]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()
            await send(message)

        try:
            await self.app(scope, receive, observe)
        except Exception:
            logger.exception("unhandled error request_id=%s", request_id)
            if observation.status == 0:
                observation.status = 500
                observation.failed(500)
                await _send_json(observe, 500, InternalError(request_id).to_json())
        finally:
            finish()  # a response that never sent its last body message (client gone, exception)
            observation_var.reset(observation_token)
            logs.unbind_request(log_token)
            request_id_var.reset(token)


def _access_fields(observation: RequestObservation) -> dict[str, Any]:
    fields = {
        "status": observation.status,
        "workspace": observation.workspace,
        "model": observation.model,
        "upstream_request_id": observation.upstream_request_id,
        "error_class": observation.error,
        "resource": observation.resource,
        "latency_ms": round(observation.elapsed_ms(), 1),
        "upstream_ms": _rounded(observation.upstream_ms()),
        "ttft_ms": _rounded(observation.ttft_ms()),
    }
    found = {key: value for key, value in fields.items() if value not in (None, "-")}
    if observation.attempts:  # every upstream attempt, in order (upstream pools: failover is visible here)
        found["attempts"] = [
            {"resource": resource, "status": status, "ms": round(ms, 1)}
            for resource, status, ms in observation.attempts
        ]
    return found


def _rounded(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else round(milliseconds, 1)


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
