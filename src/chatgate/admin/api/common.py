"""What every admin API route does first (`admin_entered`: services, the admin key, its rate budget), and
the translation helpers the routes share: JSON bodies, query parameters, list envelopes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.admin.admin_keys import AdminAuthenticator
from chatgate.admin.control import Actor, ControlStore
from chatgate.errors import InvalidRequest, NotFound
from chatgate.gateway.dependencies import read_body, services_of
from chatgate.limits.ratelimit import Limits
from chatgate.wiring import Services

T = TypeVar("T")
MAX_BODY_BYTES = 64 * 1024
MAX_LIMIT = 100
# The rate-limit "model" an admin key's budget is counted under (with the key's id as the workspace).
ADMIN_BUDGET = "admin-api"


class AdminEntered(NamedTuple):
    actor: Actor
    store: ControlStore
    services: Services


async def admin_entered(request: Request) -> AdminEntered:
    """The caller's admin key (401 otherwise, model keys included), then its budget (429 past
    CHATGATE_ADMIN_RPM_LIMIT calls per window)."""
    services = services_of(request)
    if services.control is None or services.admin_auth is None:
        raise NotFound("The admin API is not configured on this stack.", code="unknown_url")
    authenticator: AdminAuthenticator = services.admin_auth
    request_id = getattr(request.state, "request_id", None)
    actor = await authenticator.authenticate(request.headers.get("authorization"), request_id)
    budget = Limits(requests=services.settings.admin_rpm_limit, tokens=0)
    await services.limiter.reserve(f"admin-key-{actor.key_id}", ADMIN_BUDGET, 0, budget)
    return AdminEntered(actor, services.control, services)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is an empty object); 400 otherwise."""
    raw = await read_body(request, MAX_BODY_BYTES)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def optional_string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.", param=name, code="invalid_type")
    return value


def optional_int(body: dict[str, Any], name: str, *, minimum: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequest(
            f"'{name}' must be an integer of at least {minimum}.", param=name, code="invalid_value"
        )
    return value


def query_int(request: Request, name: str, default: int | None, *, low: int, high: int) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidRequest(
            f"'{name}' must be an integer between {low} and {high}.", param=name, code="invalid_value"
        )
    return value


def query_bool(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise InvalidRequest(f"'{name}' must be true or false.", param=name, code="invalid_value")
    return text in ("true", "1")


def query_list(request: Request, name: str) -> list[str]:
    """An array parameter, as `name=a&name=b`, `name[]=a&name[]=b` (what SDKs send) or `name=a,b`."""
    values = [*request.query_params.getlist(name), *request.query_params.getlist(f"{name}[]")]
    return [part for value in values for part in value.split(",") if part]


def limit_of(request: Request, default: int = 20) -> int:
    limit = query_int(request, "limit", default, low=1, high=MAX_LIMIT)
    assert limit is not None
    return limit


def listing(data: Sequence[dict[str, Any]], has_more: bool) -> JSONResponse:
    """OpenAI's list envelope."""
    return JSONResponse(
        {
            "object": "list",
            "data": list(data),
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


def page_after(
    items: Sequence[T], id_of: Callable[[T], str], after: str | None, limit: int
) -> tuple[list[T], bool]:
    """Cursor pagination over a listing held in memory: the items after the one with id `after`."""
    start = 0
    if after is not None:
        ids = [id_of(item) for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chosen = list(items[start : start + limit])
    return chosen, start + limit < len(items)
