"""dynalite (an exact, in-memory DynamoDB implementation on Node) as a subprocess on a free loopback port.

moto is fine for functional tests, but its conditional writes are not atomic under concurrency; dynalite
serialises updates per item like DynamoDB, so the rate-limit concurrency tests and the benchmark use it.
`npm ci` (run by `make test` / `make install`) puts it in node_modules/; this helper does not install it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from chatgate.gateway.auth import ApiKey
from chatgate.stores.keys_dynamodb import key_item
from chatgate.stores.schema import control_table, data_table, rate_limit_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNALITE_CLI = REPO_ROOT / "node_modules" / "dynalite" / "cli.js"
START_TIMEOUT_SECONDS = 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _start(node: str, port: int) -> subprocess.Popen[bytes]:
    args = [node, str(DYNALITE_CLI), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextlib.contextmanager
def dynalite() -> Iterator[str]:
    """Start dynalite, yield its endpoint URL (http://127.0.0.1:PORT), stop it afterwards."""
    with dynalite_process() as (url, _process):
        yield url


@contextlib.contextmanager
def dynalite_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """dynalite() and its process (the fault suite stops and resumes it with SIGSTOP / SIGCONT)."""
    if not DYNALITE_CLI.exists():
        raise RuntimeError(
            f"dynalite is not installed ({DYNALITE_CLI} is missing): run `npm ci` in {REPO_ROOT}"
        )
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("`node` is not on PATH; dynalite needs Node.js 20 or later")
    for _attempt in range(3):  # another process may take the port between choosing and binding it
        port = _free_port()
        process = _start(node, port)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while process.poll() is None and not _accepts(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None and _accepts(port):
            break
        process.kill()
        _, stderr = process.communicate(timeout=5)
    else:
        raise RuntimeError(f"dynalite did not start: {stderr.decode(errors='replace')[-2000:]}")
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def client(endpoint: str, *, pool: int = 64, attempts: int = 2, timeout: float = 5.0) -> DynamoDBClient:
    """A DynamoDB client for `endpoint` with dummy credentials and a pool sized for concurrency tests."""
    config = Config(
        max_pool_connections=pool,
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=timeout,
        read_timeout=timeout,
    )
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="eu-central-1",
        aws_access_key_id="dynalite",
        aws_secret_access_key="dynalite",
        config=config,
    )


def create_rate_limit_table(dynamodb: DynamoDBClient, name: str) -> str:
    """Create the rate-limit table (chatgate's own schema) and return its name."""
    dynamodb.create_table(**rate_limit_table(name))  # ACTIVE at once: dynalite runs with --createTableMs 0
    return name


def create_data_table(dynamodb: DynamoDBClient, name: str) -> str:
    """Create the data table (keys, limits, usage records; chatgate's own schema) and return its name."""
    dynamodb.create_table(**data_table(name))
    return name


def create_control_table(dynamodb: DynamoDBClient, name: str) -> str:
    """Create the control table (workspaces, keys, limits, admin keys, audit log) and return its name."""
    dynamodb.create_table(**control_table(name))
    return name


def put_key(
    dynamodb: DynamoDBClient, table: str, *, key_id: str, key_hash: str, workspace_id: str, name: str
) -> None:
    """Store a workspace key's record directly (as the domain's create would, without its audit entry)."""
    record = ApiKey(key_id, workspace_id, key_hash, name=name, created_at=int(time.time()))
    dynamodb.put_item(TableName=table, Item=key_item(record))
