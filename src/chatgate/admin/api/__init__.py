"""The admin API: OpenAI's Administration API shape under /v1/organization (and /api/public/v1/...).

One thin route per operation over the domain functions of chatgate.admin (the CLI and the console are the
other doors onto them). docs/admin.md lists what is served, the extensions, and what is not."""

from __future__ import annotations

from fastapi import FastAPI

from chatgate.admin.api import admin_keys, audit, byok, keys, limits, projects, usage

BASE = "/v1/organization"


def add_admin_routes(app: FastAPI, prefixes: tuple[str, ...]) -> None:
    for prefix in prefixes:
        base = f"{prefix}{BASE}"
        project = f"{base}/projects/{{project_id}}"
        routes = [
            (f"{base}/projects", projects.list_projects, "GET"),
            (f"{base}/projects", projects.create_project, "POST"),
            (project, projects.retrieve_project, "GET"),
            (project, projects.modify_project, "POST"),
            (f"{project}/archive", projects.archive_project, "POST"),
            (f"{project}/service_accounts", keys.list_service_accounts, "GET"),
            (f"{project}/service_accounts", keys.create_service_account, "POST"),
            (f"{project}/service_accounts/{{service_account_id}}", keys.retrieve_service_account, "GET"),
            (f"{project}/service_accounts/{{service_account_id}}", keys.delete_service_account, "DELETE"),
            (f"{project}/api_keys", keys.list_api_keys, "GET"),
            (f"{project}/api_keys/{{api_key_id}}", keys.retrieve_api_key, "GET"),
            (f"{project}/api_keys/{{api_key_id}}", keys.delete_api_key, "DELETE"),
            (f"{project}/rate_limits", limits.list_rate_limits, "GET"),
            (f"{project}/rate_limits/{{rate_limit_id}}", limits.update_rate_limit, "POST"),
            (f"{project}/byok", byok.list_byok, "GET"),
            (f"{project}/byok/{{region}}", byok.set_byok, "POST"),
            (f"{project}/byok/{{region}}", byok.delete_byok, "DELETE"),
            (f"{base}/usage/completions", usage.usage_completions, "GET"),
            (f"{base}/usage/embeddings", usage.usage_embeddings, "GET"),
            (f"{base}/admin_api_keys", admin_keys.list_admin_keys, "GET"),
            (f"{base}/admin_api_keys", admin_keys.create_admin_key, "POST"),
            (f"{base}/admin_api_keys/{{key_id}}", admin_keys.get_admin_key, "GET"),
            (f"{base}/admin_api_keys/{{key_id}}", admin_keys.delete_admin_key, "DELETE"),
            (f"{base}/audit_logs", audit.list_audit_logs, "GET"),
            (f"{base}/me", admin_keys.me, "GET"),
        ]
        for path, endpoint, method in routes:
            app.add_route(path, endpoint, methods=[method])
