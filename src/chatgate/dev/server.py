"""`chatgate dev`: the whole gateway on this machine, on embedded defaults.

1. AWS: moto in server mode (DynamoDB + Secrets Manager), unless AWS_ENDPOINT_URL* point elsewhere.
2. Tables and the per-region upstream secrets, created if missing.
3. Upstream: the built-in Azure OpenAI emulator (one per region, so residency is visible; two for the EU,
   "sweden" then "france" by priority, an upstream pool where a failover can be seen: a prompt holding
   `[[rate_limit:sweden]]` gets Sweden's 429 and France's answer), unless AZURE_OPENAI_ENDPOINT (or
   AZURE_OPENAI_ENDPOINT_EU / _US) is set.
4. A demo workspace key and an organisation admin key, printed; then uvicorn serves the app until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chatgate.settings import Settings
from chatgate.upstream.config import DEFAULT_API_VERSION

DEMO_WORKSPACE = "demo"
# Regions whose emulated upstream is a pool: its resources' names, by priority (docs/upstreams.md).
EMULATED_POOLS: dict[str, tuple[str, ...]] = {"eu": ("sweden", "france")}
DEMO_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Write a short poem about cats."}]}
)


@dataclass
class LocalStack:
    """What `prepare` started and seeded; `close()` stops it."""

    settings: Settings
    demo_key: str
    admin_key: str
    aws_endpoint: str | None
    upstream_urls: dict[str, str]
    emulators: dict[str, Any] = field(default_factory=dict)
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()


def prepare(environ: Mapping[str, str] | None = None, *, settings: Settings | None = None) -> LocalStack:
    """Start (or connect to) local AWS and upstreams, seed tables, secrets and a demo key."""
    from chatgate.admin.admin_keys import create_admin_key
    from chatgate.admin.control import CLI
    from chatgate.admin.keys import create_key
    from chatgate.dev import aws
    from chatgate.dev.azure_emulator import EmulatorState, start_emulator
    from chatgate.stores.control_dynamodb import DynamoDBControlStore
    from chatgate.wiring import aws_clients

    environ = os.environ if environ is None else environ
    settings = settings or Settings()
    if settings.byok_endpoint_suffixes_csv is None:  # contract: dev also allows http loopback BYOK endpoints
        settings = settings.model_copy(update={"byok_allow_http_loopback": True})
    stops: list[Callable[[], None]] = []
    aws_endpoint = None
    if not aws.external_aws_configured():
        aws.use_local_credentials()
        server, aws_endpoint = aws.start_moto()
        os.environ["AWS_ENDPOINT_URL"] = aws_endpoint
        stops.append(server.stop)
    dynamodb, secretsmanager = aws_clients(settings)
    aws.ensure_tables(dynamodb, settings)

    configured = aws.upstreams_from_environment(settings.regions, environ)
    emulators: dict[str, Any] = {}
    upstream_urls: dict[str, str] = {}
    for region in settings.regions:
        upstream: dict[str, Any] | None = configured.get(region)
        if upstream is None:
            resources: list[dict[str, Any]] = []
            for priority, name in enumerate(EMULATED_POOLS.get(region, ("",)), start=1):
                state = EmulatorState(
                    api_key=secrets.token_urlsafe(24),
                    name=f"azure-{region}-{name}" if name else f"azure-{region}",
                )
                emulator = start_emulator(state)
                stops.append(emulator.stop)
                emulators[f"{region}-{name}" if priority > 1 else region] = emulator
                resource = {
                    "endpoint": emulator.url,
                    "api_key": state.api_key,
                    "api_version": DEFAULT_API_VERSION,
                }
                resources.append({"name": name, "priority": priority, **resource} if name else resource)
            upstream = {"resources": resources} if len(resources) > 1 else resources[0]
        aws.put_secret(secretsmanager, settings.upstream_secret_name(region), upstream)
        listed: list[dict[str, Any]] = upstream.get("resources", [upstream])
        upstream_urls[region] = ", ".join(f"{r.get('name', 'default')} {r['endpoint']}" for r in listed)

    control = DynamoDBControlStore(dynamodb, settings.control_table_name)
    demo_key, _ = asyncio.run(create_key(control, CLI, DEMO_WORKSPACE, "chatgate dev demo key"))
    admin_key, _ = asyncio.run(create_admin_key(control, CLI, "chatgate dev admin key"))
    return LocalStack(settings, demo_key, admin_key, aws_endpoint, upstream_urls, emulators, stops)


def banner(stack: LocalStack, host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    region = stack.settings.regions[0]
    lines = [
        "",
        "chatgate dev is running.",
        f"  regions:   {', '.join(stack.settings.regions)}",
        *(f"  upstream {r}: {url}" for r, url in stack.upstream_urls.items()),
        f"  AWS:       {stack.aws_endpoint or 'from AWS_ENDPOINT_URL*'}",
        f"  base URL:  {base}/openai/{region}/v1",
        f"  console:   {base}/console (sign in with the organisation admin key below)",
        "",
        "Upstream pools: the EU has two emulated resources, sweden then france. A prompt holding",
        "  [[rate_limit:sweden]] gets Sweden's 429 and is answered by France (see the access log's",
        "  `attempts`); Sweden is then skipped for its retry-after (7 s). docs/upstreams.md.",
        "",
        f"Demo key (workspace '{DEMO_WORKSPACE}'):",
        f"  {stack.demo_key}",
        "",
        "Organisation admin key (the admin API, docs/admin.md):",
        f"  {stack.admin_key}",
        f"  curl -s {base}/v1/organization/projects -H 'Authorization: Bearer {stack.admin_key}'",
        "",
        "Try it:",
        f"  curl -s {base}/openai/{region}/v1/chat/completions \\",
        f"    -H 'Authorization: Bearer {stack.demo_key}' -H 'Content-Type: application/json' \\",
        "    -d '" + DEMO_BODY + "'",
        "",
        "Other terminals can use the same AWS emulator:",
        f"  export AWS_ENDPOINT_URL={stack.aws_endpoint or os.environ.get('AWS_ENDPOINT_URL', '')}"
        " AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION="
        f"{os.environ.get('AWS_DEFAULT_REGION', 'eu-central-1')}",
        "  chatgate keys create --workspace demo",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def serve(host: str, port: int, environ: Mapping[str, str] | None = None) -> None:
    import uvicorn

    from chatgate.app import create_app
    from chatgate.observability.logs import configure_logging

    stack = prepare(environ)
    log_format = stack.settings.log_format  # readable log lines on a terminal; metrics lines on stdout
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    configure_logging(stack.settings.log_level, console=console)
    try:
        print(banner(stack, host, port), flush=True)
        uvicorn.run(
            create_app(stack.settings),
            host=host,
            port=port,
            log_level="info",
            # On SIGTERM / Ctrl-C: requests in flight finish and settle, within this bound.
            timeout_graceful_shutdown=max(1, round(stack.settings.shutdown_grace_seconds)),
        )
    finally:
        stack.close()
