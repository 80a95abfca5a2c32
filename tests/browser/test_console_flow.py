"""The admin console in headless Chromium against `chatgate dev` (the real gateway and admin API), as a
platform team's workspace admin would use it:

sign in with the organisation admin key (keyboard only) -> create a workspace named like a script (it
renders as text) -> create a key (shown once, copied) -> a chat completion with that key through the
OpenAI SDK (and one request chatgate refuses with a 429) -> the request and the refusal in the usage chart
and table -> the CSV download equals the admin API's numbers
-> a limit changed -> the key revoked, and the next call refused -> the audit log of the workspace ->
a workspace admin who edits the URL to reach another workspace gets the API's 404.

Screenshots of each page go to tests/browser/screenshots/ (gitignored); docs/console.md shows copies.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openai
import pytest

from tests.browser.devstack import DevServer, chatgate_dev
from tests.browser.support import Watched, chromium, new_page, screenshot, sign_in

XSS = "<img src=x onerror=alert(1)>"
WORKSPACE = "acme-web"
MODEL = "gpt-4o-mini"
# A first load of the console (page, modules, styles, chart library; gzip) stays under this many bytes.
PAGE_WEIGHT_BUDGET = 64_000

pytestmark = pytest.mark.slow


# Instances trust a key lookup for CHATGATE_KEY_CACHE_SECONDS (30 s by default): a revocation shows
# within that bound. One second here, so the test sees it without waiting half a minute.
KEY_CACHE_SECONDS = 1
REFUSED_WITHIN = 15  # seconds: the cache bound, with room for a loaded machine


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with chatgate_dev({"CHATGATE_KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS)}) as server:
        yield server


def refused_soon(call: Any) -> Exception:
    """The 401 `call` raises, polling (bounded) while a cached lookup still lets the key through."""
    deadline = time.monotonic() + REFUSED_WITHIN
    while True:
        try:
            call()
        except (openai.APIStatusError, httpx.HTTPStatusError) as error:
            status = (
                error.status_code if isinstance(error, openai.APIStatusError) else error.response.status_code
            )
            if status == 401:
                return error
        assert time.monotonic() < deadline, f"still accepted {REFUSED_WITHIN} s after the revocation"
        time.sleep(0.25)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def cells(watched: Watched, row_text: str) -> list[str]:
    row = watched.page.locator("main table.data tbody tr", has_text=row_text).first
    return [cell.strip() for cell in row.locator("td").all_text_contents()]


def number(text: str) -> int:
    return int(text.replace(",", ""))


def usage_rows(dev: DevServer, project_id: str, start: str, end: str) -> list[list[str]]:
    """The admin API's own numbers for the range, as the CSV's rows."""
    start_time = int(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp())
    end_time = int(datetime.fromisoformat(end).replace(tzinfo=UTC).timestamp()) + 86400
    with dev.admin() as admin:
        page = admin.get(
            "usage/completions",
            params={
                "start_time": start_time,
                "end_time": end_time,
                "bucket_width": "1d",
                "project_ids": project_id,
                "group_by": "model",
                "limit": 31,
            },
        )
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["has_more"] is False
    rows = []
    for bucket in body["data"]:
        day = datetime.fromtimestamp(bucket["start_time"], UTC).date().isoformat()
        for result in bucket["results"]:
            limited = result.get("num_rate_limited_requests")
            rows.append(
                [
                    day,
                    result["model"],
                    str(result["input_tokens"]),
                    str(result["output_tokens"]),
                    str(result["num_model_requests"]),
                    "" if limited is None else str(limited),
                ]
            )
    return sorted(rows)


def test_the_admin_console_end_to_end(browser: Any, dev: DevServer) -> None:
    watched = new_page(browser, permissions=["clipboard-read", "clipboard-write"])
    page = watched.page

    # `make dev` names the console and prints the organisation admin key to sign in with.
    assert f"console:   {dev.base}/console" in "".join(dev.output)

    # Sign in with the organisation admin key, keyboard only.
    sign_in(page, dev.base, dev.admin_key)
    page.get_by_role("heading", name="Workspaces").wait_for()
    assert "organisation admin" in page.locator("#who").text_content()

    # A workspace named like a script: created from the form, rendered as text everywhere.
    page.get_by_label("Name", exact=True).fill(XSS)
    page.get_by_label("Id (optional)").fill(WORKSPACE)
    page.get_by_role("button", name="Create workspace").click()
    page.get_by_role("heading", name=XSS, exact=True).wait_for()
    assert page.url.endswith(f"#/workspaces/{WORKSPACE}/keys")
    assert page.locator("main img").count() == 0

    # A key: shown once, with a copy button that puts it on the clipboard.
    page.get_by_label("Key name").fill("web backend")
    page.get_by_role("button", name="Create key").click()
    once = page.get_by_role("region", name="New key")
    once.wait_for()
    assert "you will not see it again" in once.text_content()
    key = page.locator("#new-key-value").text_content().strip()
    assert key.startswith("cg_")
    page.get_by_role("button", name="Copy key").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == key
    page.get_by_role("cell", name="web backend", exact=True).wait_for()
    screenshot(page, "keys-created")
    page.get_by_role("button", name="I have stored it").click()
    assert page.locator("#new-key-value").count() == 0  # gone for good

    # The key works through the OpenAI SDK.
    client = openai.OpenAI(base_url=f"{dev.base}/openai/eu/v1", api_key=key, max_retries=0)
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Write a short poem about cats."}]
    )
    assert completion.usage is not None
    # A request no window of the workspace's token limit can admit: chatgate's own 429, in the ledger.
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Too long."}],
            max_completion_tokens=10_000_000,
        )
    assert refused.value.code == "rate_limit_exceeded"

    # ... and shows in the usage table (the 429s column too) and chart.
    page.get_by_role("link", name="Usage").click()
    today = datetime.now(UTC).date()
    start, end = (today - timedelta(days=6)).isoformat(), today.isoformat()
    page.get_by_role("cell", name=MODEL, exact=True).wait_for()
    row = cells(watched, MODEL)
    assert row[0] == today.isoformat() and row[1] == MODEL
    assert [number(v) for v in row[2:6]] == [
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
        1,
        1,  # the refusal: num_rate_limited_requests
    ]
    legend = page.locator(".chart .u-legend").first
    assert MODEL in legend.text_content()
    # Hovering today's bar puts its tokens in the legend; switching to output tokens changes it.
    plot = page.locator(".chart .u-over").first.bounding_box()
    assert plot is not None
    page.mouse.move(plot["x"] + plot["width"] * 6.5 / 7, plot["y"] + plot["height"] - 2)
    total = completion.usage.prompt_tokens + completion.usage.completion_tokens
    page.wait_for_function(
        "([model, total]) => [...document.querySelectorAll('.chart .u-legend .u-series')]"
        ".some((s) => s.textContent.includes(model) && s.textContent.includes(total))",
        arg=[MODEL, f"{total:,}"],
    )
    screenshot(page, "usage")
    page.get_by_label("Output (completion)").check()
    page.mouse.move(plot["x"] + plot["width"] * 6.5 / 7, plot["y"] + plot["height"] - 3)
    page.wait_for_function(
        "([model, total]) => [...document.querySelectorAll('.chart .u-legend .u-series')]"
        ".some((s) => s.textContent.includes(model) && s.textContent.includes(total))",
        arg=[MODEL, f"{completion.usage.completion_tokens:,}"],
    )

    # The CSV download holds the admin API's numbers.
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download CSV").click()
    download = downloading.value
    assert download.suggested_filename == f"usage-{WORKSPACE}-{start}-{end}.csv"
    text = download.path().read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == [
        "date",
        "model",
        "input_tokens",
        "output_tokens",
        "num_model_requests",
        "num_rate_limited_requests",
    ]
    assert sorted(table[1:]) == usage_rows(dev, WORKSPACE, start, end)
    assert [MODEL, str(completion.usage.prompt_tokens)] in [r[1:3] for r in table[1:]]
    assert [MODEL, "1", "1"] in [[r[1], *r[4:6]] for r in table[1:]]  # one request served, one refused

    # Limits: an organisation admin changes one.
    page.get_by_role("link", name="Limits").click()
    page.get_by_label(f"Requests per minute for {MODEL}").fill("120")
    page.get_by_label(f"Tokens per minute for {MODEL}").fill("30000")
    page.get_by_role("button", name=f"Save limits for {MODEL}").click()
    page.get_by_text(f"Saved the limits of {MODEL}.", exact=False).wait_for()
    assert [number(v) for v in cells(watched, MODEL)[1:3]] == [120, 30000]
    with dev.admin() as admin:
        limits = admin.get(f"projects/{WORKSPACE}/rate_limits").json()["data"]
    [changed] = [limit for limit in limits if limit["model"] == MODEL]
    assert (changed["max_requests_per_1_minute"], changed["max_tokens_per_1_minute"]) == (120, 30000)
    screenshot(page, "limits")

    # Revoke the key, after a confirmation; the next call is refused.
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("button", name="Revoke key web backend").click()
    dialog = page.get_by_role("dialog")
    assert "cannot be undone" in dialog.text_content()
    page.keyboard.press("Escape")  # cancel first: nothing happens
    assert dialog.count() == 0
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "still here?"}])
    page.get_by_role("button", name="Revoke key web backend").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    page.get_by_text("No keys yet").wait_for()
    refused = refused_soon(
        lambda: client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "now?"}])
    )
    assert isinstance(refused, openai.AuthenticationError), refused
    assert refused.status_code == 401 and refused.code == "invalid_api_key"

    # The audit log, filtered by the workspace: what was done here, newest first.
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Workspace").select_option(WORKSPACE)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function(  # the filtered page replaced the unfiltered one
        "(id) => { const rows = [...document.querySelectorAll('main table.data tbody tr')];"
        " return rows.length > 0 && rows.every((r) => r.cells[2].textContent.includes(id)); }",
        arg=WORKSPACE,
    )
    events = page.locator("main table.data tbody tr td:nth-child(2)").all_text_contents()
    assert events[0] == "api_key.deleted"
    assert {"project.created", "rate_limit.updated"} <= set(events)
    workspaces = page.locator("main table.data tbody tr td:nth-child(3)").all_text_contents()
    assert all(WORKSPACE in workspace for workspace in workspaces)
    assert f"{XSS} ({WORKSPACE})" in workspaces  # the name, as text, where the entry carries it
    screenshot(page, "audit-log")
    page.goto(f"{dev.base}/console#/")
    page.get_by_role("link", name=XSS).wait_for()
    screenshot(page, "workspaces")
    assert page.locator("main img").count() == 0
    assert watched.complaints() == []


def test_a_workspace_admin_stays_in_its_workspace(browser: Any, dev: DevServer) -> None:
    with dev.admin() as admin:
        created = admin.post("projects", json={"name": "Team Blue", "id": "team-blue"})
        assert created.status_code == 200, created.text
        scoped = admin.post("admin_api_keys", json={"name": "blue admin", "project_id": "team-blue"})
        assert scoped.status_code == 200, scoped.text
    key = scoped.json()["value"]
    watched = new_page(browser, width=400, height=860)
    page = watched.page
    sign_in(page, dev.base, key)
    page.get_by_role("heading", name="Team Blue").wait_for()  # it lands in its own workspace
    assert page.url.endswith("#/workspaces/team-blue/keys")
    assert "workspace admin of team-blue" in page.locator("#who").text_content()
    page.get_by_role("link", name="Limits").click()
    page.get_by_text("Only an organisation admin can change limits.").wait_for()
    assert page.get_by_role("button", name="Save limits for gpt-4o-mini").count() == 0
    screenshot(page, "workspace-admin-400px")

    # Another workspace by editing the URL: the API's 404, nothing of the other workspace shown.
    page.goto(f"{dev.base}/console#/workspaces/demo/usage")
    page.get_by_role("heading", name="Workspace not available").wait_for()
    message = page.get_by_role("alert").text_content()
    with dev.admin(key) as admin:
        direct = admin.get("projects/demo")
    assert direct.status_code == 404
    assert message == direct.json()["error"]["message"]
    page.goto(f"{dev.base}/console#/")
    page.get_by_role("heading", name="Team Blue").wait_for()  # the home page is its workspace again
    assert page.locator("text=demo").count() == 0

    # An admin key revoked while it is in use returns the tab to the key prompt with the API's message.
    with dev.admin() as admin:
        keys = admin.get("admin_api_keys").json()["data"]
        [blue] = [k for k in keys if k["name"] == "blue admin"]
        assert admin.delete(f"admin_api_keys/{blue['id']}").status_code == 200
    with dev.admin(key) as admin:
        gone = refused_soon(lambda: admin.get("me").raise_for_status())
    assert isinstance(gone, httpx.HTTPStatusError) and gone.response.status_code == 401, gone
    page.get_by_role("link", name="Usage").click()
    page.get_by_label("Admin key").wait_for()
    assert page.get_by_role("alert").text_content().startswith("Your admin key was not accepted: ")
    assert page.evaluate("sessionStorage.getItem('chatgate.adminKey')") is None


def test_page_weight_and_time_to_interactive(browser: Any, dev: DevServer) -> None:
    """A first load (empty cache) transfers the page, its modules, styles and the chart library, gzipped,
    under the budget; the figures are printed for the report (bench/console_load.py measures medians)."""
    watched = new_page(browser)
    page = watched.page
    started = time.monotonic()
    page.goto(f"{dev.base}/console")
    page.get_by_label("Admin key").wait_for()
    page.wait_for_function("performance.getEntriesByName('console:interactive').length > 0")
    elapsed = time.monotonic() - started
    resources = page.evaluate(
        "[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]"
        ".map((e) => [e.name, e.transferSize, e.encodedBodySize, e.decodedBodySize])"
    )
    interactive = page.evaluate("performance.getEntriesByName('console:interactive')[0].startTime")
    transferred = sum(entry[1] for entry in resources)
    assert all(entry[0].startswith(dev.base) for entry in resources), resources  # nothing from elsewhere
    assert all(entry[2] < entry[3] for entry in resources if entry[3] > 1024), resources  # gzip applied
    assert 0 < transferred < PAGE_WEIGHT_BUDGET, resources
    print(
        f"console first load: {len(resources)} requests, {transferred} bytes transferred, "
        f"interactive at {interactive:.0f} ms ({elapsed * 1000:.0f} ms wall)"
    )
    assert watched.complaints() == []


def test_byok_resources_are_set_shown_without_the_key_and_removed(browser: Any, dev: DevServer) -> None:
    secret = "azure-key-that-must-never-show-" + "x" * 8
    with dev.admin() as admin:
        assert admin.post("projects", json={"name": "Own Azure", "id": "own-azure"}).status_code == 200
    watched = new_page(browser)
    page = watched.page
    sign_in(page, dev.base, dev.admin_key)
    page.goto(f"{dev.base}/console#/workspaces/own-azure/byok")
    page.get_by_text("No resource of its own").wait_for()

    # An endpoint the gateway would never call: the API's refusal, as written.
    page.get_by_label("Region").select_option("eu")
    page.get_by_label("Azure endpoint").fill("https://attacker.example.com")
    page.get_by_label("Azure API key").fill(secret)
    page.get_by_role("button", name="Save resource").click()
    refusal = page.get_by_role("alert")
    refusal.wait_for()
    with dev.admin() as admin:
        direct = admin.post(
            "projects/own-azure/byok/eu", json={"endpoint": "https://attacker.example.com", "api_key": secret}
        )
    assert direct.status_code == 400
    assert refusal.text_content() == direct.json()["error"]["message"]
    assert page.get_by_label("Azure API key").input_value() == ""  # the key is not kept in the form

    # A real-looking resource with a deployment map: listed without its key.
    page.get_by_label("Azure endpoint").fill("https://acme-eu.openai.azure.com")
    page.get_by_label("Azure API key").fill(secret)
    page.get_by_label("Deployments (optional, one model=deployment per line)").fill(
        "gpt-4o-mini=acme-mini\ngpt-4o = acme-4o"
    )
    page.get_by_role("button", name="Save resource").click()
    page.get_by_text("Saved the eu resource.").wait_for()
    page.get_by_role("cell", name="https://acme-eu.openai.azure.com", exact=True).wait_for()
    row = cells(watched, "acme-eu.openai.azure.com")
    assert row[0] == "eu" and row[1] == "https://acme-eu.openai.azure.com"
    assert row[3] == "gpt-4o-mini → acme-mini, gpt-4o → acme-4o"
    assert secret not in page.content()
    with dev.admin() as admin:
        listed = admin.get("projects/own-azure/byok").json()
    assert listed["data"][0]["deployments"] == {"gpt-4o-mini": "acme-mini", "gpt-4o": "acme-4o"}
    assert secret not in str(listed)
    screenshot(page, "byok")

    # Removed, after a confirmation.
    page.get_by_role("button", name="Remove the eu resource").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    page.get_by_text("No resource of its own").wait_for()
    with dev.admin() as admin:
        assert admin.get("projects/own-azure/byok").json()["data"] == []
    assert watched.errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    assert watched.dialogs == []

    # Then the workspace itself is archived, after a confirmation: gone from the list, shown on request.
    page.goto(f"{dev.base}/console#/")
    page.get_by_role("button", name="Archive workspace Own Azure").click()
    page.get_by_role("dialog").get_by_role("button", name="Archive").click()
    page.get_by_role("link", name="Own Azure").wait_for(state="detached")
    page.get_by_label("Show archived workspaces").check()
    page.get_by_role("link", name="Own Azure").wait_for()
    assert cells(watched, "own-azure")[2] == "archived"
    with dev.admin() as admin:
        assert admin.get("projects/own-azure").json()["status"] == "archived"


def test_the_console_under_the_public_prefix_calls_the_api_under_it(browser: Any, dev: DevServer) -> None:
    watched = new_page(browser)
    page = watched.page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, dev.base, dev.admin_key, path="/api/public/console")
    page.get_by_role("link", name="demo", exact=True).wait_for()
    api_calls = [url for url in requested if "/v1/organization/" in url]
    assert api_calls and all(url.startswith(f"{dev.base}/api/public/v1/organization/") for url in api_calls)
    assert all(url.startswith(f"{dev.base}/api/public/console") for url in requested if "/console" in url)
    assert watched.complaints() == []
