"""What one request did, observed once: the facts the metrics line, `server-timing` and the trace are made of.

The request-context middleware creates one RequestObservation per HTTP request and makes it reachable from
the ASGI scope (`scope["state"]["observation"]`) and from the `observation` contextvar. The pipeline tells it
what it learns with small setters (`identify`, `upstream_started`, `upstream_answered`, `first_token`,
`settled`, `failed`); none of them raises or blocks, and outside a request (tests, the CLI) they act on a
throw-away observation. The middleware writes the metrics line from it just before the response's last
body message (Lambda freezes the sandbox as the body ends), see middleware.py and metrics.py.

It holds ids, names from closed sets, counts and times: never a prompt, a completion or a key.
"""

from __future__ import annotations

import contextvars
import re
import time
from typing import Any

UNKNOWN = "-"

# Values that become metric dimensions must come from small closed sets: a dimension fed by a
# caller-controlled string would let any caller create custom metrics (and costs) at will.
_API_BY_SUFFIX = (
    ("/chat/completions", "chat.completions"),
    ("/responses", "responses"),
    ("/embeddings", "embeddings"),
    ("/models", "models"),
)
_RESPONSES_PATH = re.compile(r"/v1/responses(/|$)")
_MODELS_PATH = re.compile(r"/v1/models(/|$)")


def api_of(path: str) -> str:
    """The API a path belongs to, from a closed set (`other` for anything else)."""
    for suffix, api in _API_BY_SUFFIX:
        if path.endswith(suffix):
            return api
    if _RESPONSES_PATH.search(path):
        return "responses"
    if _MODELS_PATH.search(path):
        return "models"
    return "other"


def error_class(status: int, code: str | None = None, *, upstream: bool = False) -> str | None:
    """The class an error response falls in (a closed set, so it can be a dimension), None for success.

    rate_limited: chatgate's own limits (429); client: any other 4xx chatgate answers itself;
    upstream_rate_limited / upstream_rejected: Azure's 429 / other 4xx passed through; upstream: 502;
    upstream_timeout: 504; unavailable: 503 (DynamoDB, Secrets Manager); internal: any other 5xx."""
    if status < 400:
        return None
    if status == 429:
        return "upstream_rate_limited" if upstream else "rate_limited"
    if status < 500:
        return "upstream_rejected" if upstream else "client"
    return {502: "upstream", 504: "upstream_timeout", 503: "unavailable"}.get(status, "internal")


class Step:
    """One timed step of the pipeline (a subsegment when tracing is on), times in perf_counter seconds."""

    __slots__ = ("end", "name", "start")

    def __init__(self, name: str, start: float, end: float) -> None:
        self.name, self.start, self.end = name, start, end


class RequestObservation:
    """One request's facts. Times are `time.perf_counter()` seconds; durations are read in milliseconds.

    A plain class with slots rather than a dataclass: building a dataclass of this many fields costs about
    a millisecond of cold start, for nothing the class needs."""

    __slots__ = (
        "api",
        "attempt_start",
        "attempts",
        "cooling",
        "emitted",
        "error",
        "first_token_at",
        "input_tokens",
        "lambda_request_id",
        "method",
        "model",
        "output_tokens",
        "path",
        "pool",
        "pool_exhausted",
        "rate_limited",
        "region",
        "request_id",
        "resource",
        "started",
        "started_at",
        "status",
        "steps",
        "stream",
        "tokens_counted",
        "trace_header",
        "unsettled_writes",
        "upstream_end",
        "upstream_request_id",
        "upstream_start",
        "workspace",
    )

    def __init__(
        self,
        request_id: str,
        *,
        method: str = "-",
        path: str = "-",
        api: str = "other",
        lambda_request_id: str | None = None,
        trace_header: str | None = None,
        stream: bool = False,
    ) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.api = api
        self.started = time.perf_counter()
        self.started_at = time.time()  # epoch seconds, for the metrics timestamp
        self.lambda_request_id = lambda_request_id
        self.trace_header = trace_header
        # Set by the pipeline once each is known (and checked: region served, workspace authenticated,
        # model allowed), so that they are safe as dimensions.
        self.region = UNKNOWN
        self.workspace = UNKNOWN
        self.model = UNKNOWN
        self.stream = stream
        self.status = 0
        self.error: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.tokens_counted = False  # Azure sent no usage: chatgate counted the tokens itself
        self.rate_limited = False
        self.unsettled_writes = 0  # settlement writes that did not settle (an "unsettled" line names them)
        self.upstream_request_id: str | None = None
        self.upstream_start: float | None = None
        self.attempt_start: float | None = None
        self.upstream_end: float | None = None  # headers for a stream, the whole body otherwise
        self.first_token_at: float | None = None
        self.steps: list[Step] = []
        self.emitted = False
        # Upstream pools (upstream/pool.py): every attempt (resource, Azure's status, milliseconds), the
        # resource that served (or was tried last), whose pool ("stack" or "byok"), how many of the
        # pool's resources for the model were cooling down, and whether none could serve.
        self.attempts: list[tuple[str, int | str, float]] = []
        self.resource = UNKNOWN
        self.pool = UNKNOWN
        self.cooling: int | None = None
        self.pool_exhausted = False

    # --- setters the pipeline calls ---------------------------------------------------------------------

    def identify(
        self, *, region: str | None = None, workspace: str | None = None, model: str | None = None
    ) -> None:
        """The request's region, workspace and model, each once it has been checked."""
        if region:
            self.region = region
        if workspace:
            self.workspace = workspace
        if model:
            self.model = model

    def step(self, name: str, start: float, end: float | None = None) -> None:
        """A pipeline step that ran from `start` to `end` (default: now)."""
        self.steps.append(Step(name, start, time.perf_counter() if end is None else end))

    def upstream_started(self, *, stream: bool = False) -> None:
        """An upstream attempt starts. Azure's part of the request runs from the first attempt's start to
        the last one's answer (a failover's earlier attempts are Azure's time, not the gateway's)."""
        self.stream = stream
        self.attempt_start = time.perf_counter()
        if self.upstream_start is None:
            self.upstream_start = self.attempt_start

    def upstream_answered(self, upstream_request_id: str | None) -> None:
        """Azure's status line (a stream) or whole answer arrived, or the call failed."""
        self.upstream_end = time.perf_counter()
        if upstream_request_id:
            self.upstream_request_id = upstream_request_id[:128]
        if self.attempt_start is not None:
            self.step("upstream", self.attempt_start, self.upstream_end)  # one step per attempt

    def routed(self, pool: str, cooling: int, *, exhausted: bool = False) -> None:
        """The request's pool ("stack" or "byok"), how many of its resources were cooling down, and
        whether every one was (then nothing is sent to Azure)."""
        self.pool = pool
        self.cooling = cooling
        self.pool_exhausted = self.pool_exhausted or exhausted

    def attempted(self, resource: str, status: int | str, started: float) -> None:
        """One upstream attempt ended (begun at perf_counter `started`): Azure's status, or how it failed,
        and Azure's time for it (its HTTP call, as UpstreamLatency counts it; else the whole attempt)."""
        begin, end = started, time.perf_counter()
        call_start, call_end = self.attempt_start, self.upstream_end
        if call_start is not None and call_end is not None and started <= call_start <= call_end:
            begin, end = call_start, call_end
        self.attempts.append((resource, status, (end - begin) * 1000))
        self.resource = resource

    def first_token(self) -> None:
        """The first chunk carrying generated content was relayed to the client."""
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def settled(self, input_tokens: int, output_tokens: int, *, counted: bool = False) -> None:
        """The tokens the request is accounted with (Azure's usage, or what chatgate counted)."""
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.tokens_counted = counted

    def unsettled(self, writes: int) -> None:
        """Settlement writes still not applied after their retries (chatgate.limits.ledger)."""
        self.unsettled_writes += writes

    def failed(self, status: int, code: str | None = None, *, upstream: bool = False) -> None:
        """An error answered (or sent as the stream's error frame): its class, and 429s flagged."""
        self.error = error_class(status, code, upstream=upstream) or self.error
        if status == 429 and not upstream:
            self.rate_limited = True

    # --- read by the middleware, metrics and tracing ------------------------------------------------------

    def elapsed_ms(self, now: float | None = None) -> float:
        return ((time.perf_counter() if now is None else now) - self.started) * 1000

    def upstream_ms(self) -> float | None:
        if self.upstream_start is None:
            return None
        end = self.upstream_end if self.upstream_end is not None else time.perf_counter()
        return (end - self.upstream_start) * 1000

    def ttft_ms(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.started) * 1000

    def server_timing(self, now: float | None = None) -> str:
        """`server-timing`: the gateway's own time so far and the upstream's (for a stream: until its
        status line, all that is known before the first byte), in milliseconds."""
        total = self.elapsed_ms(now)
        upstream = self.upstream_ms()
        if upstream is None:
            return f"gateway;dur={total:.1f}"
        return f"gateway;dur={max(total - upstream, 0.0):.1f}, upstream;dur={upstream:.1f}"


observation_var: contextvars.ContextVar[RequestObservation | None] = contextvars.ContextVar(
    "observation", default=None
)


def current() -> RequestObservation:
    """The running request's observation; a throw-away one outside a request, so setters never fail."""
    found = observation_var.get()
    return found if found is not None else RequestObservation(request_id=UNKNOWN)


def observation_of(scope: Any) -> RequestObservation:
    """The observation of an ASGI scope (a throw-away one if the middleware did not run)."""
    found = (scope.get("state") or {}).get("observation") if isinstance(scope, dict) else None
    return found if isinstance(found, RequestObservation) else current()
