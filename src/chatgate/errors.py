"""One error tree. Every failure a client can see is a ChatgateError, rendered in OpenAI's error shape:

    {"error": {"message": str, "type": str, "param": str | None, "code": str | None}}

Adapters translate their library's exceptions into these; the HTTP edge (app.py) renders them as JSON
responses or, once a stream has started, as an SSE error frame (see streaming.py). Nothing else is ever
shown to a client: unexpected exceptions become a generic 500 that names only the request id.
"""

from __future__ import annotations

import json
from typing import Any


class ChatgateError(Exception):
    """Base class: an HTTP status, an OpenAI error body and optional response headers."""

    status_code: int = 500
    error_type: str = "server_error"
    default_code: str | None = None
    # An answer of Azure's (or its absence), not of chatgate's own checks: metrics class it "upstream".
    from_upstream: bool = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        if error_type is not None:
            self.error_type = error_type
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI error body."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        return {"error": error}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


class InvalidRequest(ChatgateError):
    """400: the request body or a parameter is not acceptable."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidApiKey(ChatgateError):
    """401: missing, malformed, unknown, expired or revoked API key."""

    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class NotFound(ChatgateError):
    """404: unknown region, model or path."""

    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFound(NotFound):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
        )


class MethodNotAllowed(ChatgateError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class RateLimitExceeded(ChatgateError):
    """429: a workspace's requests or tokens per window are used up (error_type "requests"/"tokens")."""

    status_code = 429
    default_code = "rate_limit_exceeded"


class ServiceUnavailable(ChatgateError):
    """503: a dependency of chatgate itself (DynamoDB, Secrets Manager) is failing; retry later."""

    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"


class UpstreamError(ChatgateError):
    """502: Azure OpenAI answered with a 5xx, an unusable response, or could not be reached."""

    status_code = 502
    error_type = "server_error"
    default_code = "upstream_error"
    from_upstream = True


class UpstreamTimeout(ChatgateError):
    """504: Azure OpenAI did not answer in time."""

    status_code = 504
    error_type = "server_error"
    default_code = "upstream_timeout"
    from_upstream = True


class UpstreamRejected(ChatgateError):
    """A 4xx from Azure OpenAI passed through to the client (content filter, Azure's own 429, bad input)."""

    from_upstream = True

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str,
        param: str | None,
        code: str | None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, error_type=error_type, headers=headers, extra=extra)
        self.status_code = status_code


class InternalError(ChatgateError):
    """500: a bug. The message names the request id and nothing else."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"The server had an error while processing your request. Request id: {request_id}.",
            code="internal_error",
        )


class PermissionDenied(ChatgateError):
    """403: the caller is who it says, but may not do this (a workspace admin key on an organisation
    operation)."""

    status_code = 403
    error_type = "invalid_request_error"
    default_code = "insufficient_permissions"


class Conflict(ChatgateError):
    """409: the thing to create exists already (a project id taken)."""

    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"
