"""`chatgate dev` as a separate process, as the platform runs an instance: configured only through the
contract's variables, its output (log lines on stderr, metrics lines on stdout) in a file, frozen and
resumed with SIGSTOP / SIGCONT, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support import emf

START_TIMEOUT_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Instance:
    """A `chatgate dev` process, its URL, the demo key it printed and the file holding its output."""

    process: subprocess.Popen[bytes]
    url: str
    key: str
    log: Path
    down: bool = False

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def lines(self) -> list[dict[str, Any]]:
        """Its JSON output lines so far: log records and metrics (EMF) lines, each metric's value as
        CloudWatch reads it (tests.support.emf.read_values)."""
        found = []
        for raw in self.log.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                with contextlib.suppress(ValueError):
                    line = json.loads(raw)
                    found.append(emf.read_values(line) if "_aws" in line else line)
        return found


def _demo_key(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines[:-1]):
        if line.startswith("Demo key"):
            return lines[index + 1].strip()
    return ""


@contextlib.contextmanager
def chatgate_dev(environment: dict[str, str], log: Path) -> Iterator[Instance]:
    """Start `chatgate dev` with exactly `environment` (plus the process's own non-AWS, non-chatgate
    variables), wait until it serves, stop it (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "CHATGATE_"))}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatgate.cli", "dev", "--port", str(port)],
            env={**env, **environment},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz").status_code == 200 and _demo_key(log):
                    break
            time.sleep(0.1)
        key = _demo_key(log)
        assert key.startswith("cg_"), log.read_text(errors="replace")
        yield Instance(process, url, key, log)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def contract_environment(
    dynamodb: str, secrets_manager: str, azure: str, monkeypatch: Any, **settings: str
) -> dict[str, str]:
    """The contract's variables for instances on `dynamodb` (dynalite: fresh tables are created there),
    `secrets_manager` (moto) and the Azure emulator at `azure`, plus `settings` (CHATGATE_* names); also
    set in this process (monkeypatch), so the CLI run in-process sees the same stack."""
    from tests.support import dynalite as dl

    client = dl.client(dynamodb)
    suffix = uuid.uuid4().hex[:8]
    values = {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets_manager,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AZURE_OPENAI_ENDPOINT": azure,
        "AZURE_OPENAI_API_KEY": "azure-key",
        "CHATGATE_TABLE_NAME": dl.create_data_table(client, f"data-{suffix}"),
        "CHATGATE_CONTROL_TABLE_NAME": dl.create_control_table(client, f"control-{suffix}"),
        "CHATGATE_LOG_FORMAT": "json",  # the lines `chatgate ledger replay --file` reads
        "CHATGATE_RATE_LIMIT_TABLE_NAME": dl.create_rate_limit_table(client, f"rl-{suffix}"),
        "CHATGATE_SECRET_PREFIX": f"instances-{suffix}",
        **settings,
    }
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values
