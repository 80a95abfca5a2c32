"""The contract's error shape, checked the same way by every test that looks at an error."""

from __future__ import annotations

import json
from typing import Any

import httpx


def check_error_body(body: Any) -> dict[str, Any]:
    """`{"error": {"message": str, "type": str, "param": str|null, "code": str|null}}`; returns the error."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert {"message", "type", "param", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    assert "Traceback" not in error["message"], error
    return error


def assert_error_shape(response: httpx.Response) -> dict[str, Any]:
    """The response is an error in the contract's shape, with a request id; returns the error."""
    assert response.status_code >= 400, response.status_code
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert response.headers.get("x-request-id"), response.headers
    return check_error_body(json.loads(response.content))
