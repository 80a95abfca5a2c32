"""The admin API over HTTP, on the gateway `chatgate dev` runs (moto, both regions, the emulators): the
newcomer's walkthrough of docs/admin.md, every body validated against OpenAI's schemas
(tests/openapi/admin.json), and the audit entry of every change."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import httpx
import openai
import pytest

from chatgate.cli import main
from chatgate.stores.usage_dynamodb import DynamoDBUsageStore
from tests.conftest import EMULATOR_KEYS, Stack
from tests.openapi import validator

HI = [{"role": "user", "content": "hi"}]


def org_admin_key(capsys: pytest.CaptureFixture[str]) -> str:
    """`chatgate admin-keys create`: the key alone on its line on stdout."""
    capsys.readouterr()
    assert main(["admin-keys", "create", "--name", "bootstrap"]) == 0
    [key] = capsys.readouterr().out.splitlines()
    return key


class Admin:
    """An admin API client holding one admin key; every answer's body is checked against its schema."""

    def __init__(self, gateway: str, key: str, prefix: str = "") -> None:
        self.http = httpx.Client(
            base_url=f"{gateway}{prefix}/v1/organization", headers={"authorization": f"Bearer {key}"}
        )
        self.last: httpx.Response | None = None

    def call(self, method: str, path: str, schema: str | None = None, **kwargs: Any) -> Any:
        response = self.last = self.http.request(method, path, **kwargs)
        assert response.headers["x-request-id"]
        body = response.json()
        if response.status_code >= 400:
            assert set(body["error"]) >= {"message", "type", "param", "code"}, body
            return response
        assert response.status_code == 200, response.text
        if schema is not None:
            validator("admin.json", schema).validate(body)
        return body

    def error(self, method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
        response = self.call(method, path, **kwargs)
        assert isinstance(response, httpx.Response) and response.status_code == status, response
        error: dict[str, Any] = response.json()["error"]
        return error


def chat(gateway: str, key: str, region: str = "eu") -> Any:
    client = openai.OpenAI(base_url=f"{gateway}/openai/{region}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=HI)


def test_the_newcomers_walkthrough(stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    org = Admin(gateway, org_admin_key(capsys))

    me = org.call("GET", "/me", "AdminApiKey")
    assert me["project_id"] is None  # an organisation admin
    assert isinstance(me["last_used_at"], int)  # this very call

    project = org.call("POST", "/projects", "Project", json={"name": "Acme", "id": "acme"})
    assert project == {
        "id": "acme",
        "object": "organization.project",
        "name": "Acme",
        "created_at": project["created_at"],
        "archived_at": None,
        "status": "active",
    }
    created_project_request = org.last.headers["x-request-id"]  # type: ignore[union-attr]
    generated = org.call("POST", "/projects", "Project", json={"name": "No id given"})
    assert generated["id"].startswith("proj_")

    admin = org.call(
        "POST",
        "/admin_api_keys",
        "AdminApiKeyCreateResponse",
        json={"name": "acme ops", "project_id": "acme"},
    )
    assert admin["project_id"] == "acme" and admin["value"].startswith("cga_")
    acme = Admin(gateway, admin["value"])
    assert acme.call("GET", "/me", "AdminApiKey")["project_id"] == "acme"

    account = acme.call(
        "POST", "/projects/acme/service_accounts", "ProjectServiceAccountCreateResponse", json={"name": "ci"}
    )
    key = account["api_key"]["value"]
    for region in ("eu", "us"):  # one key, both regions
        assert chat(gateway, key, region).choices[0].message.content
    assert stack.upstream("eu").requests and stack.upstream("us").requests

    keys = acme.call("GET", "/projects/acme/api_keys", "ProjectApiKeyListResponse")
    [listed] = keys["data"]
    assert listed["id"] == account["api_key"]["id"] and keys["first_id"] == keys["last_id"] == listed["id"]
    assert listed["owner"]["service_account"]["id"] == account["id"] and listed["expires_at"] is None
    assert key not in str(keys) and listed["redacted_value"].endswith("...")

    limit = org.call(
        "POST",
        "/projects/acme/rate_limits/rl-gpt-4o-mini",
        "ProjectRateLimit",
        json={"max_requests_per_1_minute": 20, "max_tokens_per_1_minute": 5000},
    )
    assert limit["id"] == "rl-gpt-4o-mini" and limit["max_requests_per_1_minute"] == 20
    limits = acme.call("GET", "/projects/acme/rate_limits", "ProjectRateLimitListResponse")
    by_model = {item["model"]: item for item in limits["data"]}
    assert set(stack.settings.models) <= set(by_model)
    assert by_model["gpt-4o-mini"]["max_tokens_per_1_minute"] == 5000
    assert by_model["gpt-4o"]["max_tokens_per_1_minute"] == stack.settings.tpm_limit
    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": HI},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.headers["x-ratelimit-limit-requests"] == "20"  # the new limit is in force

    embeddings = openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=key, max_retries=0).embeddings
    for texts in (["The food was delicious."], ["Cats sleep.", "Most of the day."]):
        assert len(embeddings.create(model="text-embedding-3-small", input=texts).data) == len(texts)

    # Each usage endpoint sums its own API's records: the chat above in completions, the embeddings apart.
    since = {"start_time": int(project["created_at"]) - 86_400, "group_by": ["project_id", "model"]}
    usage = acme.call("GET", "/usage/completions", "UsageResponse", params=since)
    results = [result for bucket in usage["data"] for result in bucket["results"]]
    assert [(r["project_id"], r["model"], r["num_model_requests"]) for r in results] == [
        ("acme", "gpt-4o-mini", 3)
    ]
    assert {r["object"] for r in results} == {"organization.usage.completions.result"}
    records = asyncio.run(
        DynamoDBUsageStore(boto3.client("dynamodb"), stack.settings.table_name).records(
            "acme", "2000-01-01", "2100-01-01"
        )
    )
    [record] = [r for r in records if r.api == "completions"]
    assert (results[0]["input_tokens"], results[0]["output_tokens"]) == (
        record.prompt_tokens,
        record.completion_tokens,
    )
    usage = acme.call("GET", "/usage/embeddings", "UsageResponse", params=since)
    [embedded] = [result for bucket in usage["data"] for result in bucket["results"]]
    [record] = [r for r in records if r.api == "embeddings"]
    assert embedded == {
        "object": "organization.usage.embeddings.result",
        "input_tokens": record.prompt_tokens,
        "num_model_requests": 2,
        "project_id": "acme",
        "user_id": None,
        "api_key_id": None,
        "model": "text-embedding-3-small",
        "num_rate_limited_requests": 0,
    }
    assert record.prompt_tokens > 0 and record.completion_tokens == 0

    log = org.call("GET", "/audit_logs", "ListAuditLogsResponse", params={"project_ids[]": "acme"})
    types = [entry["type"] for entry in log["data"]]
    assert types == ["rate_limit.updated", "api_key.created", "api_key.created", "project.created"]
    created = log["data"][-1]
    assert created["project"] == {"id": "acme", "name": "Acme"}
    assert created["actor"]["api_key"]["id"] == me["id"]
    assert created["request_id"] == created_project_request
    assert log["data"][1]["actor"]["api_key"]["id"] == admin["id"]  # the workspace admin made the key
    assert log["data"][0]["rate_limit.updated"]["changes_requested"]["max_tokens_per_1_minute"] == 5000


def test_the_same_api_under_api_public(
    stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    org = Admin(gateway, org_admin_key(capsys), prefix="/api/public")
    org.call("POST", "/projects", "Project", json={"name": "Acme", "id": "acme"})
    assert [p["id"] for p in org.call("GET", "/projects", "ProjectListResponse")["data"]] == ["acme"]


def test_a_workspace_admin_cannot_read_change_or_detect_another_workspace(
    stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    org = Admin(gateway, org_admin_key(capsys))
    for name in ("acme", "globex"):
        org.call("POST", "/projects", "Project", json={"name": name, "id": name})
    globex_account = org.call("POST", "/projects/globex/service_accounts", json={"name": "globex ci"})
    globex_key_id = globex_account["api_key"]["id"]
    org_keys = org.call("GET", "/admin_api_keys", "ApiKeyList")["data"]
    acme_admin = org.call("POST", "/admin_api_keys", json={"name": "acme", "project_id": "acme"})
    acme = Admin(gateway, acme_admin["value"])

    # Another workspace answers exactly as one that does not exist.
    for suffix in ("", "/api_keys", "/service_accounts", "/rate_limits", f"/api_keys/{globex_key_id}"):
        hidden = acme.error("GET", f"/projects/globex{suffix}", 404)
        missing = acme.error("GET", f"/projects/nosuch{suffix}", 404)
        assert hidden == {**missing, "message": missing["message"].replace("nosuch", "globex")}
    writes = [
        ("POST", "/projects/globex", {"name": "mine now"}),
        ("POST", "/projects/globex/archive", None),
        ("POST", "/projects/globex/service_accounts", {"name": "intruder"}),
        ("DELETE", f"/projects/globex/api_keys/{globex_key_id}", None),
        ("DELETE", f"/projects/acme/api_keys/{globex_key_id}", None),  # globex's key through acme's path
        ("POST", "/projects/globex/rate_limits/rl-gpt-4o", {"max_requests_per_1_minute": 1}),
        ("POST", "/admin_api_keys", {"name": "escalate", "project_id": "globex"}),
        ("GET", f"/admin_api_keys/{org_keys[0]['id']}", None),
        ("DELETE", f"/admin_api_keys/{org_keys[0]['id']}", None),
    ]
    for method, path, body in writes:
        assert acme.error(method, path, 404, json=body)["code"] == "not_found", (method, path)
    assert chat(gateway, globex_account["api_key"]["value"]).choices  # globex's key still works

    assert [p["id"] for p in acme.call("GET", "/projects", "ProjectListResponse")["data"]] == ["acme"]
    assert [k["id"] for k in acme.call("GET", "/admin_api_keys", "ApiKeyList")["data"]] == [acme_admin["id"]]
    for params in ({"project_ids[]": "globex"}, {}):
        log = acme.call("GET", "/audit_logs", "ListAuditLogsResponse", params=params)
        assert all(entry["project"]["id"] == "acme" for entry in log["data"])
        assert "globex" not in str(log)
    for api in ("completions", "embeddings"):
        usage = acme.call(
            "GET",
            f"/usage/{api}",
            "UsageResponse",
            params={
                "start_time": 0,
                "project_ids": "globex",
                "group_by": "project_id",
                "limit": 1,
                "page": 86_400 * 20_000,
            },
        )
        assert all(not bucket["results"] for bucket in usage["data"])

    # Its own workspace: organisation operations are refused, in the error shape.
    assert acme.error("POST", "/projects", 403, json={"name": "new"})["code"] == "insufficient_permissions"
    assert acme.error("POST", "/projects/acme/archive", 403)["code"] == "insufficient_permissions"
    denied = acme.error(
        "POST", "/projects/acme/rate_limits/rl-gpt-4o", 403, json={"max_requests_per_1_minute": 9}
    )
    assert denied["code"] == "insufficient_permissions"
    renamed = acme.call("POST", "/projects/acme", "Project", json={"name": "Acme Corp"})
    assert renamed["name"] == "Acme Corp"


def test_admin_keys_and_model_keys_never_cross(
    stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_key = org_admin_key(capsys)
    with pytest.raises(openai.AuthenticationError) as refused:
        chat(gateway, admin_key)
    assert refused.value.code == "invalid_api_key"
    as_admin = Admin(gateway, stack.key)  # the events/ workspace's model key
    error = as_admin.error("GET", "/projects", 401)
    assert error["code"] == "invalid_api_key" and "model API key" in error["message"]
    assert admin_key not in error["message"] and stack.key not in error["message"]
    assert Admin(gateway, "cga_0123456789abcdef_forged").error("GET", "/me", 401)["code"] == "invalid_api_key"
    assert httpx.get(f"{gateway}/v1/organization/projects").status_code == 401


def test_revocation_archive_and_admin_key_deletion_take_effect(
    stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With CHATGATE_KEY_CACHE_SECONDS=0 (the tests' setting) the bound is the next request."""
    org = Admin(gateway, org_admin_key(capsys))
    org.call("POST", "/projects", json={"name": "acme", "id": "acme"})
    first = org.call("POST", "/projects/acme/service_accounts", json={"name": "one"})
    second = org.call("POST", "/projects/acme/service_accounts", json={"name": "two"})
    assert chat(gateway, first["api_key"]["value"]).choices

    deleted = org.call(
        "DELETE", f"/projects/acme/api_keys/{first['api_key']['id']}", "ProjectApiKeyDeleteResponse"
    )
    assert deleted == {
        "object": "organization.project.api_key.deleted",
        "id": first["api_key"]["id"],
        "deleted": True,
    }
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        chat(gateway, first["api_key"]["value"])
    org.error("GET", f"/projects/acme/api_keys/{first['api_key']['id']}", 404)
    assert chat(gateway, second["api_key"]["value"]).choices

    acme_admin = org.call("POST", "/admin_api_keys", json={"name": "acme", "project_id": "acme"})
    archived = org.call("POST", "/projects/acme/archive", "Project")
    assert archived["status"] == "archived" and archived["archived_at"]
    with pytest.raises(openai.AuthenticationError, match="archived"):
        chat(gateway, second["api_key"]["value"])
    assert Admin(gateway, acme_admin["value"]).error("GET", "/me", 401)["code"] == "invalid_api_key"
    assert org.error("POST", "/projects/acme/service_accounts", 400, json={"name": "late"})["code"] == (
        "project_archived"
    )
    assert org.call("GET", "/projects", "ProjectListResponse")["data"] == []
    listed = org.call("GET", "/projects", "ProjectListResponse", params={"include_archived": "true"})
    assert [p["id"] for p in listed["data"]] == ["acme"]

    other = org.call("POST", "/admin_api_keys", "AdminApiKeyCreateResponse", json={"name": "temporary"})
    gone = org.call("DELETE", f"/admin_api_keys/{other['id']}")
    assert gone == {"object": "organization.admin_api_key.deleted", "id": other["id"], "deleted": True}
    assert Admin(gateway, other["value"]).error("GET", "/me", 401)["code"] == "invalid_api_key"

    log = org.call("GET", "/audit_logs", "ListAuditLogsResponse", params={"limit": 100})["data"]
    assert log[-1]["actor"] == {"type": "session", "session": {"user": {"id": "chatgate-cli"}}}
    types = [entry["type"] for entry in log]
    assert types == [
        "api_key.deleted",
        "api_key.created",
        "project.archived",
        "api_key.created",
        "api_key.deleted",
        "api_key.created",
        "api_key.created",
        "project.created",
        "api_key.created",  # the bootstrap key, by the CLI
    ]


def test_bad_input_and_what_chatgate_cannot_mean(
    stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    org = Admin(gateway, org_admin_key(capsys))
    org.call("POST", "/projects", json={"name": "acme", "id": "acme"})
    for path in ("/users", "/invites", "/certificates", "/projects/acme/users", "/usage/images"):
        assert org.error("GET", path, 404)["code"] == "unknown_url"
    assert org.error("POST", "/projects", 400, content=b"{not json")["code"] == "invalid_json"
    assert org.error("POST", "/projects", 400, json=["a list"])["code"] == "invalid_json"
    assert org.error("POST", "/projects", 400, json={"name": ""})["param"] == "name"
    assert org.error("POST", "/projects", 400, json={"name": "x", "id": "a/b"})["param"] == "id"
    assert org.error("POST", "/projects", 409, json={"name": "again", "id": "acme"})["param"] == "id"
    assert org.error("GET", "/projects", 400, params={"limit": "0"})["param"] == "limit"
    bad_limit = {"max_requests_per_1_minute": -1}
    assert org.error("POST", "/projects/acme/rate_limits/rl-gpt-4o", 400, json=bad_limit)["param"] == (
        "max_requests_per_1_minute"
    )
    assert org.error("POST", "/projects/acme/rate_limits/nope", 404)["code"] == "not_found"
    past = {"name": "old", "expires_at": 1}
    assert org.error("POST", "/projects/acme/service_accounts", 400, json=past)["param"] == "expires_at"
    for params, param in (
        ({}, "start_time"),
        ({"start_time": 0, "bucket_width": "1h"}, "bucket_width"),
        ({"start_time": 0, "group_by": "api_key_id"}, "group_by"),
        ({"start_time": 0, "api_key_ids": "x"}, "api_key_ids"),
        ({"start_time": 10, "end_time": 5}, "end_time"),
    ):
        for api in ("completions", "embeddings"):
            assert org.error("GET", f"/usage/{api}", 400, params=params)["param"] == param


def test_admin_calls_have_a_budget(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatgate.app import create_app
    from chatgate.settings import Settings
    from tests.support.servers import serve

    monkeypatch.setenv("CHATGATE_ADMIN_RPM_LIMIT", "3")
    key = org_admin_key(capsys)
    with serve(create_app(Settings())) as gateway:
        org = Admin(gateway, key)
        for _ in range(3):
            org.call("GET", "/me", "AdminApiKey")
        refused = org.error("GET", "/me", 429)
        assert refused["code"] == "rate_limit_exceeded"
        assert int(org.last.headers["retry-after"]) >= 1  # type: ignore[union-attr]
        other = Admin(gateway, org_admin_key(capsys))
        assert other.call("GET", "/me", "AdminApiKey")  # a budget per key


def test_bring_your_own_keys_through_the_api(
    stack: Stack, gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    org = Admin(gateway, org_admin_key(capsys))
    for name in ("acme", "globex"):
        org.call("POST", "/projects", json={"name": name, "id": name})
    acme_admin = org.call("POST", "/admin_api_keys", json={"name": "acme", "project_id": "acme"})
    acme = Admin(gateway, acme_admin["value"])
    key = acme.call("POST", "/projects/acme/service_accounts", json={"name": "ci"})["api_key"]["value"]
    own = stack.emulators["us"]  # stands in for acme's own Azure resource in the EU
    resource = {"endpoint": own.url, "api_key": EMULATOR_KEYS["us"], "deployments": {"gpt-4o-mini": "mini"}}

    shown = acme.call("POST", "/projects/acme/byok/eu", json=resource)
    assert (
        shown["region"] == "eu"
        and shown["endpoint"] == own.url
        and shown["deployments"] == {"gpt-4o-mini": "mini"}
    )
    assert EMULATOR_KEYS["us"] not in str(shown)
    listed = acme.call("GET", "/projects/acme/byok")
    assert [item["region"] for item in listed["data"]] == ["eu"] and EMULATOR_KEYS["us"] not in str(listed)

    before = len(own.state.requests)
    assert chat(gateway, key, "eu").choices  # served by acme's own resource
    assert len(own.state.requests) == before + 1

    # Another workspace's admin cannot see or change it; bad input is a 400 naming the field.
    globex = Admin(
        gateway, org.call("POST", "/admin_api_keys", json={"name": "g", "project_id": "globex"})["value"]
    )
    assert globex.error("GET", "/projects/acme/byok", 404)["code"] == "not_found"
    assert globex.error("DELETE", "/projects/acme/byok/eu", 404)["code"] == "not_found"
    bad = {**resource, "endpoint": "https://evil.example.com"}
    assert acme.error("POST", "/projects/acme/byok/eu", 400, json=bad)["param"] == "endpoint"
    assert (
        acme.error("POST", "/projects/acme/byok/eu", 400, json={**resource, "api_key": "a\nb"})["param"]
        == "api_key"
    )
    assert acme.error("POST", "/projects/acme/byok/mars", 404)["code"] == "region_not_found"

    removed = acme.call("DELETE", "/projects/acme/byok/eu")
    assert removed == {"object": "organization.project.byok.deleted", "region": "eu", "deleted": True}
    assert acme.call("GET", "/projects/acme/byok")["data"] == []
    log = acme.call("GET", "/audit_logs", "ListAuditLogsResponse")["data"]
    assert [entry["type"] for entry in log[:2]] == ["external_key.removed", "external_key.registered"]
    assert EMULATOR_KEYS["us"] not in str(log)
