"""The processes floor_bench.py measures: dynalite, moto's server, two Azure emulators, a bare proxy and
the gateway, each started as its own process on a free loopback port, and the AWS resources seeded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
from tests.support import dynalite as dl

from chatgate.dev import aws
from chatgate.settings import Settings
from chatgate.stores.aws import DYNAMODB, AwsJsonClient, aws_http_client

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "functions" / "chat_completions" / "run.sh"
EMULATOR_KEYS = {"eu": "bench-key-eu", "us": "bench-key-us"}
API_VERSION = "2024-10-21"
BENCH_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "eu-central-1",
    "AWS_DEFAULT_REGION": "eu-central-1",
    "CHATGATE_RPM_LIMIT": str(10**9),  # measure the limiter, never hit it
    "CHATGATE_TPM_LIMIT": str(10**12),
    "CHATGATE_LOG_LEVEL": "WARNING",
}


def direct_url(emulator: str) -> str:
    return f"{emulator}/openai/deployments/gpt-4o-mini/chat/completions?api-version={API_VERSION}"


def run_sh_flags() -> list[str]:
    """uvicorn's flags as functions/chat_completions/run.sh passes them on Lambda (host and port aside)."""
    text = RUN_SH.read_text().split("uvicorn chatgate.asgi:app", 1)[1]
    flags: list[str] = []
    for flag, value in re.findall(r"^\s+(--[a-z-]+)(?:[ =]([^\s\\]+))?", text, re.MULTILINE):
        if flag not in ("--host", "--port"):
            # a shell default like "${NAME:-10}" is taken at its default
            value = re.sub(r'^"?\$\{[A-Z_]+:-([^}]*)\}"?$', r"\1", value)
            flags += [flag, value] if value else [flag]
    return flags


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@contextlib.contextmanager
def uvicorn_process(
    app: str,
    env: dict[str, str],
    *,
    app_dir: str | None = None,
    wait: bool = False,
    preexec_fn: Callable[[], object] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m uvicorn <app>` with run.sh's flags on a free port; yields (url, process). `preexec_fn`
    runs in the child before uvicorn starts (lambda_share.py puts it in a CPU-limited cgroup there)."""
    port = _free_port()
    args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), *run_sh_flags()]
    if app_dir:
        args += ["--app-dir", str(ROOT / app_dir)]
    process = subprocess.Popen(
        args,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=preexec_fn,
    )
    try:
        deadline = time.monotonic() + 90  # a loaded shared machine can take that long to import and bind
        while wait and not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Stack:
    dynamodb_url: str
    secrets_url: str
    emulators: dict[str, str]
    proxy: str
    gateway: str
    key: str
    settings: Settings

    def gateway_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CHATGATE_", "AZURE_"))}
        return {
            **env,
            **BENCH_ENV,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.secrets_url,
            "PYTHONPATH": str(ROOT / "src"),
        }

    def paths(self) -> dict[str, tuple[str, dict[str, str]]]:
        return {
            "direct": (direct_url(self.emulators["eu"]), {"api-key": EMULATOR_KEYS["eu"]}),
            "bare proxy": (f"{self.proxy}/", {}),
            "gateway": (
                f"{self.gateway}/openai/eu/v1/chat/completions",
                {"authorization": f"Bearer {self.key}"},
            ),
        }

    def wait_ready(self, url: str, headers: dict[str, str]) -> None:
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=10) as client:
            while True:
                try:
                    client.post(
                        url,
                        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                        headers=headers,
                    ).raise_for_status()
                    return
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)

    def bare_update_item(self) -> tuple[Callable[[], object], Callable[[], object]]:
        """One conditional UpdateItem as the admission writes it (ADD under a condition, ALL_NEW), on the
        gateway's dynalite: through boto3, and through chatgate's own async client on httpx."""
        table = self.settings.rate_limit_table_name
        args = {
            "TableName": table,
            "Key": {"pk": {"S": "RL#bench#gpt-4o-mini#0"}},
            "UpdateExpression": "ADD #r :r, #t :t SET #ttl = if_not_exists(#ttl, :ttl)",
            "ConditionExpression": "(attribute_not_exists(#r) OR #r <= :max_r) AND "
            "(attribute_not_exists(#t) OR #t <= :max_t)",
            "ExpressionAttributeNames": {"#r": "r", "#t": "t", "#ttl": "ttl"},
            "ExpressionAttributeValues": {
                ":r": {"N": "1"},
                ":t": {"N": "20"},
                ":max_r": {"N": str(10**12)},
                ":max_t": {"N": str(10**15)},
                ":ttl": {"N": str(int(time.time()) + 3600)},
            },
            "ReturnValues": "ALL_NEW",
        }
        boto = boto3.client(
            "dynamodb",
            endpoint_url=self.dynamodb_url,
            region_name="eu-central-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        loop = asyncio.new_event_loop()
        http = aws_http_client()
        client = AwsJsonClient(DYNAMODB, http, region="eu-central-1", endpoint=self.dynamodb_url)

        def through_boto3() -> object:
            return boto.update_item(**args)  # type: ignore[arg-type]

        def through_httpx() -> object:
            return loop.run_until_complete(client.call("UpdateItem", args))

        return through_boto3, through_httpx


def start_stack(context: ExitStack) -> Stack:
    for name, value in BENCH_ENV.items():
        os.environ[name] = value
    for name in aws.AWS_ENDPOINT_VARIABLES:
        os.environ.pop(name, None)
    dynamodb_url = context.enter_context(dl.dynalite())
    moto_port = _free_port()
    moto_server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    moto = subprocess.Popen(
        [moto_server, "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context.callback(moto.terminate)
    secrets_url = f"http://127.0.0.1:{moto_port}"
    emulators = {}
    for region, delay in (("eu", "0"), ("us", "10")):  # us paces its chunks: the 50-stream RSS test
        env = {**os.environ, "BENCH_EMULATOR_KEY": EMULATOR_KEYS[region], "BENCH_CHUNK_DELAY_MS": delay}
        url, _ = context.enter_context(uvicorn_process("emulator:app", env, app_dir="bench/apps", wait=True))
        emulators[region] = url
    deadline = time.monotonic() + 30
    while not _accepts(moto_port):
        if time.monotonic() > deadline:
            raise RuntimeError("moto_server did not start")
        time.sleep(0.05)

    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_url
    os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = secrets_url
    settings = Settings()
    dl.create_data_table(dl.client(dynamodb_url), settings.table_name)  # dynalite has no TTL settings
    dl.create_rate_limit_table(dl.client(dynamodb_url), settings.rate_limit_table_name)
    dl.create_control_table(dl.client(dynamodb_url), settings.control_table_name)
    secretsmanager = boto3.client("secretsmanager")
    for region, url in emulators.items():
        secret = {"endpoint": url, "api_key": EMULATOR_KEYS[region], "api_version": API_VERSION}
        aws.put_secret(secretsmanager, settings.upstream_secret_name(region), secret)
    from chatgate.cli.keys import create_key

    key = create_key(settings, "bench", "floor bench")
    # The same key item in the data table, where code from before the control plane looked keys up
    # (lambda_share.py --before-src runs such code beside the gateway).
    client = dl.client(dynamodb_url)
    key_id = key.split("_")[1]
    item = client.get_item(
        TableName=settings.control_table_name, Key={"pk": {"S": f"KEY#{key_id}"}, "sk": {"S": "KEY"}}
    )["Item"]
    client.put_item(TableName=settings.table_name, Item=item)

    proxy_env = {
        **os.environ,
        "BENCH_UPSTREAM": direct_url(emulators["eu"]),
        "BENCH_UPSTREAM_KEY": EMULATOR_KEYS["eu"],
    }
    proxy, _ = context.enter_context(
        uvicorn_process("bare_proxy:app", proxy_env, app_dir="bench/apps", wait=True)
    )
    stack = Stack(dynamodb_url, secrets_url, emulators, proxy, "", key, settings)
    gateway, _ = context.enter_context(uvicorn_process("chatgate.asgi:app", stack.gateway_env(), wait=True))
    stack.gateway = gateway
    stack.wait_ready(f"{gateway}/openai/eu/v1/chat/completions", {"authorization": f"Bearer {key}"})
    return stack
