"""The console page's own behaviour in headless Chromium, against a FAKE admin API defined below (not the
real one: tests/browser/test_console_flow.py drives `chatgate dev`). The fake answers what the page must
survive and is awkward to provoke on the real API: every name a script, errors with odd messages, a key
that stops working between two clicks.

- Names render as text: no element is created from them, no script runs, no dialog opens.
- The strict Content-Security-Policy holds on every page: the console logs no refusal (CSP, Trusted
  Types) and no error.
- A key that stops working (401) returns to the key prompt with the API's message; any other error of
  the API is shown as the API wrote it.
- Keyboard only, and readable at 400 px wide.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chatgate.console import add_console_routes
from tests.browser.support import Watched, chromium, new_page, screenshot, sign_in
from tests.support.servers import serve

XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "</code><script>alert(2)</script>"
ORG_KEY = "sk-admin-fake-org"
WORKSPACE_KEY = "sk-admin-fake-ws"
NOW = 1_796_000_000
Handler = Callable[[Request], Awaitable[JSONResponse]]


def error(status: int, message: str, code: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


class FakeAdminApi:
    """Just enough of /v1/organization for the page, with hostile names everywhere."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.limit_error: str | None = None

    def caller(self, request: Request) -> dict[str, Any] | None:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        if key in self.revoked or key not in (ORG_KEY, WORKSPACE_KEY):
            return None
        project = None if key == ORG_KEY else "w1"
        return {
            "object": "organization.admin_api_key",
            "id": f"key_{key[-3:]}",
            "name": XSS,
            "project_id": project,
        }

    def app(self) -> Starlette:
        base = "/v1/organization"
        routes = [
            Route(f"{base}/me", self.guarded(self.me)),
            Route(f"{base}/projects", self.guarded(self.projects)),
            Route(f"{base}/projects/{{pid}}", self.guarded(self.project)),
            Route(f"{base}/projects/{{pid}}/api_keys", self.guarded(self.keys)),
            Route(f"{base}/projects/{{pid}}/rate_limits", self.guarded(self.limits)),
            Route(
                f"{base}/projects/{{pid}}/rate_limits/{{rid}}", self.guarded(self.set_limit), methods=["POST"]
            ),
            Route(f"{base}/projects/{{pid}}/byok", self.guarded(self.byok)),
            Route(f"{base}/usage/completions", self.guarded(self.usage)),
            Route(f"{base}/audit_logs", self.guarded(self.audit)),
        ]
        app = Starlette(routes=routes)
        add_console_routes(app, ("",))
        return app

    def guarded(self, handler: Handler) -> Handler:
        """The admin API's two refusals before any handler: a key it does not know (401), a project the
        key may not see (404, as if it did not exist)."""

        async def endpoint(request: Request) -> JSONResponse:
            caller = self.caller(request)
            if caller is None:
                return error(401, "Incorrect admin key provided <b>(revoked)</b>.", "invalid_api_key")
            pid = request.path_params.get("pid")
            hidden = caller["project_id"] and pid not in (None, "w1")
            if (pid is not None and pid not in ("w1", XSS)) or hidden:
                return error(404, f"No project with id '{pid}'.", "not_found")
            return await handler(request)

        return endpoint

    async def me(self, request: Request) -> JSONResponse:
        return JSONResponse(self.caller(request))

    def project_object(self, pid: str) -> dict[str, Any]:
        return {
            "object": "organization.project",
            "id": pid,
            "name": XSS,
            "created_at": NOW,
            "status": "active",
        }

    async def projects(self, request: Request) -> JSONResponse:
        caller = self.caller(request)
        assert caller is not None
        data = [self.project_object("w1")] + ([] if caller["project_id"] else [self.project_object(XSS)])
        return JSONResponse({"object": "list", "data": data, "has_more": False, "last_id": data[-1]["id"]})

    async def project(self, request: Request) -> JSONResponse:
        return JSONResponse(self.project_object(request.path_params["pid"]))

    async def keys(self, request: Request) -> JSONResponse:
        key = {
            "object": "organization.project.api_key",
            "id": "key_1",
            "name": SCRIPT,
            "redacted_value": XSS,
            "created_at": NOW,
            "last_used_at": None,
            "expires_at": NOW + 86400,
            "owner": {"type": "service_account", "service_account": {"id": "svc_1", "name": XSS}},
        }
        return JSONResponse({"object": "list", "data": [key], "has_more": False})

    async def limits(self, request: Request) -> JSONResponse:
        limit = {
            "object": "project.rate_limit",
            "id": "rl-gpt-4o",
            "model": "gpt-4o",
            "max_requests_per_1_minute": 500,
            "max_tokens_per_1_minute": 60000,
        }
        return JSONResponse({"object": "list", "data": [limit], "has_more": False})

    async def set_limit(self, request: Request) -> JSONResponse:
        return error(400, self.limit_error or "nope", "invalid_value")

    async def byok(self, request: Request) -> JSONResponse:
        resource = {
            "object": "organization.project.byok",
            "region": "eu",
            "endpoint": f"https://x.openai.azure.com/{XSS}",
            "api_version": SCRIPT,
            "deployments": {XSS: SCRIPT},
        }
        return JSONResponse({"object": "list", "data": [resource]})

    async def usage(self, request: Request) -> JSONResponse:
        start = int(request.query_params["start_time"])
        end = int(request.query_params["end_time"])
        buckets = []
        for day, t in enumerate(range(start, end, 86400)):
            results = [
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": 1000 * (day + 1),
                    "output_tokens": 300 * (day + 1),
                    "num_model_requests": 10 + day,
                    "num_rate_limited_requests": day % 3,
                    "model": model,
                    "project_id": None,
                }
                for model in ("gpt-4o", XSS)
            ]
            buckets.append({"object": "bucket", "start_time": t, "end_time": t + 86400, "results": results})
        return JSONResponse({"object": "page", "data": buckets, "has_more": False, "next_page": None})

    async def audit(self, request: Request) -> JSONResponse:
        entry = {
            "id": "audit_1",
            "type": "project.created",
            "effective_at": NOW,
            "project": {"id": "w1", "name": XSS},
            "actor": {"type": "api_key", "api_key": {"id": SCRIPT, "type": "user"}},
            "project.created": {"id": "w1", "data": {"name": XSS}},
            "request_id": "req_1",
        }
        return JSONResponse({"object": "list", "data": [entry], "has_more": False, "last_id": "audit_1"})


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeAdminApi, str]]:
    api = FakeAdminApi()
    with serve(api.app(), lifespan="off") as base:
        yield api, base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def no_markup_ran(watched: Watched) -> None:
    page = watched.page
    assert page.locator("main img, main script").count() == 0
    assert watched.complaints() == []
    unnamed = page.evaluate(
        "[...document.querySelectorAll('input, select, textarea, button')]"
        ".filter((e) => !(e.labels?.length || e.getAttribute('aria-label') || e.textContent.trim()))"
        ".map((e) => e.outerHTML)"
    )
    assert unnamed == [], f"controls without a label: {unnamed}"


def test_names_render_as_text_on_every_page(browser: Any, fake: tuple[FakeAdminApi, str]) -> None:
    _, base = fake
    watched = new_page(browser)
    page = watched.page
    sign_in(page, base, ORG_KEY)
    page.get_by_role("link", name=XSS).nth(1).wait_for()  # the list is fetched after signing in
    assert page.get_by_role("link", name=XSS).count() == 2  # both workspaces, named the same script
    assert XSS in page.locator("#who").text_content()
    no_markup_ran(watched)
    for tab, expected in [("keys", SCRIPT), ("limits", "gpt-4o"), ("byok", SCRIPT), ("usage", XSS)]:
        page.goto(f"{base}/console#/workspaces/w1/{tab}")
        page.get_by_role("heading", name=XSS, exact=True).wait_for()
        page.get_by_text(expected, exact=False).first.wait_for()
        no_markup_ran(watched)
    page.goto(f"{base}/console#/audit")
    page.get_by_role("cell", name=SCRIPT).wait_for()
    assert json.dumps({"name": XSS}, separators=(",", ":")) in page.locator("main table.data").text_content()
    no_markup_ran(watched)


def test_a_key_that_stops_working_returns_to_the_prompt_with_the_apis_message(
    browser: Any, fake: tuple[FakeAdminApi, str]
) -> None:
    api, base = fake
    watched = new_page(browser)
    page = watched.page
    sign_in(page, base, WORKSPACE_KEY)
    page.get_by_role("heading", name=XSS).wait_for()  # a workspace admin lands in its own workspace
    assert page.url.endswith("#/workspaces/w1/keys")
    assert page.evaluate("sessionStorage.getItem('chatgate.adminKey')") == WORKSPACE_KEY
    api.revoked.add(WORKSPACE_KEY)
    try:
        page.get_by_role("link", name="Limits").click()
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert alert.text_content() == (
            "Your admin key was not accepted: Incorrect admin key provided <b>(revoked)</b>."
        )
        assert page.get_by_label("Admin key").is_visible()
        assert page.evaluate("sessionStorage.getItem('chatgate.adminKey')") is None
        assert page.get_by_role("button", name="Sign out").is_hidden()
    finally:
        api.revoked.discard(WORKSPACE_KEY)
    page.get_by_label("Admin key").fill("not-a-key")
    page.keyboard.press("Enter")
    page.get_by_text("Incorrect admin key provided <b>(revoked)</b>.", exact=True).wait_for()
    assert watched.errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ] * len(watched.errors)


def test_the_apis_error_message_is_shown_as_written(browser: Any, fake: tuple[FakeAdminApi, str]) -> None:
    api, base = fake
    api.limit_error = "max_tokens_per_1_minute must be <= 10,000,000 & an integer."
    watched = new_page(browser)
    page = watched.page
    sign_in(page, base, ORG_KEY)
    page.goto(f"{base}/console#/workspaces/w1/limits")
    page.get_by_label("Tokens per minute for gpt-4o").fill("99999999999")
    page.get_by_role("button", name="Save limits for gpt-4o").click()
    page.get_by_role("alert").wait_for()
    assert page.get_by_role("alert").text_content() == api.limit_error


def test_a_workspace_admin_cannot_open_another_workspace(
    browser: Any, fake: tuple[FakeAdminApi, str]
) -> None:
    _, base = fake
    watched = new_page(browser)
    page = watched.page
    sign_in(page, base, WORKSPACE_KEY)
    page.get_by_role("heading", name=XSS).wait_for()
    page.goto(f"{base}/console#/workspaces/w2/usage")
    page.get_by_role("heading", name="Workspace not available").wait_for()
    assert page.get_by_role("alert").text_content() == "No project with id 'w2'."
    assert page.get_by_role("link", name="All workspaces").count() == 0


def test_keyboard_only_and_readable_at_400_px(browser: Any, fake: tuple[FakeAdminApi, str]) -> None:
    _, base = fake
    watched = new_page(browser, width=400, height=800)
    page = watched.page
    sign_in(page, base, ORG_KEY)  # typed, and submitted with Enter
    page.get_by_role("link", name=XSS).first.wait_for()
    # Tab reaches the first workspace link, Enter opens it; every control on the way has a name.
    for _ in range(30):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "(() => { const e = document.activeElement;"
            " return [e.tagName, e.getAttribute('href'), e.labels?.length ?? 0,"
            " e.getAttribute('aria-label') || e.textContent.trim()]; })()"
        )
        assert focused[3] or focused[2], f"a control without a name: {focused}"
        if focused[1] == "#/workspaces/w1/keys":
            break
    else:
        pytest.fail("Tab never reached the workspace link")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Keys").wait_for()
    for tab in ("keys", "usage", "byok"):
        page.goto(f"{base}/console#/workspaces/w1/{tab}")
        page.locator("main table.data").first.wait_for()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{tab}: {overflow} px wider than the 400 px window"
    screenshot(page, "fake-usage-400px")
    assert watched.complaints() == []


def test_usage_for_a_chosen_range_with_totals(browser: Any, fake: tuple[FakeAdminApi, str]) -> None:
    _, base = fake
    watched = new_page(browser)
    page = watched.page
    sign_in(page, base, ORG_KEY)
    page.goto(f"{base}/console#/workspaces/w1/usage")
    page.locator("main table.data").wait_for()
    page.get_by_label("From (UTC)").fill("2026-03-01")
    page.get_by_label("To (UTC, included)").fill("2026-03-03")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("cell", name="2026-03-03", exact=True).first.wait_for()
    days = page.locator("main table.data tbody tr td:first-child").all_text_contents()
    assert days == ["2026-03-01"] * 2 + ["2026-03-02"] * 2 + ["2026-03-03"] * 2 + ["Total"]
    total = page.locator("main table.data tbody tr", has_text="Total").locator("td").all_text_contents()
    # the fake: day d (from 0) has 1000(d+1) input, 300(d+1) output, 10+d requests, d % 3 429s, per model
    assert total[2:] == ["12,000", "3,600", "66", "6"]
    page.get_by_label("From (UTC)").fill("2026-03-04")
    page.get_by_role("button", name="Show").click()
    page.get_by_text("The range starts after it ends.").wait_for()
    assert watched.complaints() == []
