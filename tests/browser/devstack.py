"""`chatgate dev` as a subprocess on a free loopback port, with the keys it printed: the real gateway and
admin API (embedded AWS, the Azure emulators), exactly what `make dev` runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

START_SECONDS = 120  # moto, the emulators and the tables on a loaded two-core machine


@dataclass
class DevServer:
    base: str
    demo_key: str
    admin_key: str
    output: list[str] = field(default_factory=list)

    def admin(self, key: str | None = None) -> httpx.Client:
        """An admin API client (the organisation admin key unless told otherwise)."""
        return httpx.Client(
            base_url=f"{self.base}/v1/organization/",
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
            timeout=30,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _key_after(lines: list[str], heading: str) -> str | None:
    for index, line in enumerate(lines[:-1]):
        if line.startswith(heading):
            return lines[index + 1].strip()
    return None


@contextmanager
def chatgate_dev(extra_env: dict[str, str] | None = None) -> Iterator[DevServer]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "CHATGATE_"))}
    env.update(extra_env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "chatgate.cli", "dev", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_SECONDS
        demo = admin = None
        while time.monotonic() < deadline and not (demo and admin):
            line = process.stdout.readline()
            assert line or process.poll() is None, "chatgate dev exited:\n" + "".join(lines)
            lines.append(line)
            demo = _key_after(lines, "Demo key")
            admin = _key_after(lines, "Organisation admin key")
        assert demo and admin, "chatgate dev printed no keys:\n" + "".join(lines)
        # Keep reading its output (a full pipe would block the server).
        threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("chatgate dev never answered /healthz:\n" + "".join(lines))
        yield DevServer(base=base, demo_key=demo, admin_key=admin, output=lines)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
