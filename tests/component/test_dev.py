"""`chatgate dev` from a clean environment: embedded AWS, emulated Azure, a demo key, the seeds' examples."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import openai

SEED_BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a short poem about cats."},
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_chatgate_dev_serves_the_seed_examples(tmp_path: object) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE_", "CHATGATE_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "chatgate.cli", "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        key = None
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(lines)
            lines.append(line)
            if line.startswith("Demo key"):
                key = process.stdout.readline().strip()
                break
        assert key and key.startswith("cg_"), "".join(lines)
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)

        # The seeds' curl example.
        response = httpx.post(
            f"{base}/openai/eu/v1/chat/completions",
            json=SEED_BODY,
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["model"].startswith("gpt-4o-mini")

        # The seeds' OpenAI SDK example.
        client = openai.OpenAI(base_url=f"{base}/openai/eu/v1", api_key=key)
        completion = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Write a short poem about cats."}]
        )
        assert completion.choices[0].message.content
    finally:
        process.terminate()
        process.wait(timeout=20)
